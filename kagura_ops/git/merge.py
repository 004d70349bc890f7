"""The git merge driver for encrypted files: a three-way merge of the plaintext trees.

git runs ``kagura-ops merge-driver %O %A %B %P`` with the common ancestor, our
version (also where the result goes) and their version in temporary files.
We decrypt the three in memory, merge key by key and re-encrypt the result with
*our* file's data key and recipients, so:

- a value neither side changed keeps our ``ENC[...]`` string byte for byte, and
  a value only they changed keeps *their* ``ENC[...]`` string when both files
  share a data key (as stable ciphertext makes them, unless one side rotated);
- two people editing different keys of one file never conflict.

Per key: equal on both sides, or changed on one side only, merges cleanly;
mappings merge key by key; anything else (both changed a value differently,
one deleted what the other changed, both added one key with different values)
is a conflict. Lists are values: a list changed on both sides conflicts unless
both made the same change. On a conflict nothing is written: our version stays
in place, encrypted, and only the conflicting key paths are reported.

Nothing plaintext is ever written to disk: decryption, merge and re-encryption
all happen in memory, and the only write is the encrypted result.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagura_ops.compiler.model import dotted
from kagura_ops.errors import FormatError, InputError, KaguraOpsError
from kagura_ops.sops.document import Decrypted

if TYPE_CHECKING:
    from kagura_ops.keys.identities import Keyring

__all__ = ["MergeResult", "merge_files", "merge_texts", "merge_trees"]

_MISSING: Any = type("_Missing", (), {"__repr__": lambda self: "<missing>"})()


@dataclass
class MergeResult:
    """The merged file (encrypted) or the conflicting key paths."""

    text: str | None
    """The merged file, None on a conflict."""
    conflicts: list[str] = field(default_factory=list)
    """Dotted key paths changed differently on both sides (never values)."""
    from_theirs: int = 0
    """How many keys took their side's value."""

    @property
    def clean(self) -> bool:
        return not self.conflicts

    def __str__(self) -> str:
        if self.conflicts:
            return f"{len(self.conflicts)} conflicting keys"
        return f"{self.from_theirs} change{'s' if self.from_theirs != 1 else ''} from theirs"


# -- the tree merge ------------------------------------------------------------------------------


def _equal(a: Any, b: Any) -> bool:
    """Equal values of equal types (``1``, ``1.0``, ``True`` and ``"1"`` all differ)."""
    if a is _MISSING or b is _MISSING:
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def merge_trees(base: Any, ours: Any, theirs: Any) -> tuple[Any, list[tuple[str | int, ...]]]:
    """Three-way merge of plaintext trees: (merged, conflicting paths).

    On a conflict at a path the merged tree holds our value there.
    """
    conflicts: list[tuple[str | int, ...]] = []
    merged = _merge(base, ours, theirs, (), conflicts)
    return merged, conflicts


def _merge(
    base: Any, ours: Any, theirs: Any, path: tuple[str | int, ...], conflicts: list[Any]
) -> Any:
    if _equal(ours, theirs) or _equal(base, theirs):
        return ours
    if _equal(base, ours):
        return theirs
    if isinstance(ours, dict) and isinstance(theirs, dict):
        old = base if isinstance(base, dict) else {}
        out: dict[str, Any] = {}
        for key in [*ours, *(k for k in theirs if k not in ours)]:
            value = _merge(
                old.get(key, _MISSING),
                ours.get(key, _MISSING),
                theirs.get(key, _MISSING),
                (*path, key),
                conflicts,
            )
            if value is not _MISSING:
                out[key] = value
        return out
    conflicts.append(path)
    return ours


# -- files --------------------------------------------------------------------------------------


def _plain_trees(text: str, fmt: str, source: str) -> list[Any]:
    from kagura_ops.sops.files import parse

    if not text.strip():
        return [{}]
    return [dict(tree) for tree in parse(text, fmt, source=source).trees()]


@dataclass
class _Previous(Decrypted):
    """Our decrypted file, whose stash of ciphertexts also offers their unchanged ones."""

    extra: dict[tuple[Any, ...], str] = field(default_factory=dict)

    def stash(self) -> dict[tuple[Any, ...], str]:
        combined = dict(self.extra)
        combined.update(super().stash())
        return combined


def _edits(ours: Any, merged: Any, path: tuple[str | int, ...]) -> list[tuple[Any, ...]]:
    """``(path, value)`` to set and ``(path,)`` to remove, turning ``ours`` into ``merged``.

    Mappings are edited key by key so that untouched keys keep their text (and so
    their ciphertext); anything else is replaced whole.
    """
    if not (isinstance(ours, dict) and isinstance(merged, dict)):
        return [(path, merged)]
    out: list[tuple[Any, ...]] = [((*path, key),) for key in ours if key not in merged]
    for key, value in merged.items():
        if key not in ours:
            out.append(((*path, key), value))
        elif not _equal(ours[key], value):
            out.extend(_edits(ours[key], value, (*path, key)))
    return out


def _apply(text: str, fmt: str, edits: list[tuple[Any, ...]], source: str) -> str:
    from kagura_ops.sops.edits import set_value, unset_value

    try:
        for edit in edits:
            if len(edit) == 1:
                text = unset_value(text, fmt, edit[0], source=source)
            else:
                text = set_value(text, fmt, edit[0], edit[1], source=source)
    except KaguraOpsError:
        # The underlying message may quote the plaintext (a YAML error shows its line).
        raise InputError(
            "cannot write the merged values back into the file's layout",
            file=source or None,
            hint="merge it by hand: kagura-ops edit FILE",
        ) from None
    return text


def merge_texts(
    base: str, ours: str, theirs: str, fmt: str, keyring: Keyring, *, source: str = ""
) -> MergeResult:
    """Merge three versions of one encrypted file (``base`` may be empty: added on both sides)."""
    from kagura_ops.sops.files import decrypt_text, is_encrypted_text, reencrypt

    ours_encrypted = is_encrypted_text(ours, fmt, source=source)
    theirs_encrypted = is_encrypted_text(theirs, fmt, source=source)
    if not (ours_encrypted and theirs_encrypted):
        raise FormatError(
            "cannot merge: the file is encrypted on one side only"
            if ours_encrypted or theirs_encrypted
            else "is not encrypted on either side",
            file=source or None,
            hint="merge it by hand, then encrypt it: kagura-ops encrypt -i FILE",
        )
    mine = decrypt_text(ours, fmt, keyring, source=f"{source} (ours)")
    other = decrypt_text(theirs, fmt, keyring, source=f"{source} (theirs)")
    if base.strip() and is_encrypted_text(base, fmt, source=source):
        base_trees = decrypt_text(base, fmt, keyring, source=f"{source} (base)").trees()
    else:
        base_trees = _plain_trees(base, fmt, source)
    our_trees, their_trees = mine.trees(), other.trees()
    if len(our_trees) != len(their_trees):
        return MergeResult(None, ["(the number of YAML documents)"])
    while len(base_trees) < len(our_trees):
        base_trees.append({})
    merged_trees: list[Any] = []
    conflicts: list[str] = []
    for index, (b, o, t) in enumerate(zip(base_trees, our_trees, their_trees, strict=False)):
        merged, found = merge_trees(b, o, t)
        prefix = f"(document {index + 1}) " if len(our_trees) > 1 else ""
        conflicts += [prefix + (dotted(p) or "(the whole document)") for p in found]
        merged_trees.append(merged)
    if conflicts:
        return MergeResult(None, conflicts)
    if all(_equal(m, o) for m, o in zip(merged_trees, our_trees, strict=True)):
        return MergeResult(ours)
    edits = _edits(our_trees[0], merged_trees[0], ())
    if any(not _equal(m, o) for m, o in zip(merged_trees[1:], our_trees[1:], strict=True)):
        raise InputError(
            "cannot merge changes outside the first YAML document automatically",
            file=source or None,
            hint="merge it by hand with kagura-ops edit",
        )
    if all(
        _equal(m, t) for m, t in zip(merged_trees, their_trees, strict=True)
    ) and _same_recipients(mine, other):
        return MergeResult(theirs, from_theirs=len(edits))
    extra = other.stash() if other.data_key == mine.data_key else {}
    previous = _Previous(
        mine.parsed, mine.metadata, mine.data_key, mine.plaintext, mine.encrypted, extra
    )
    plaintext = _apply(mine.render(), fmt, edits, source)
    text = reencrypt(previous, plaintext, fmt, source=source)
    return MergeResult(text, from_theirs=len(edits))


def _same_recipients(a: Decrypted, b: Decrypted) -> bool:
    def names(d: Decrypted) -> list[list[str]]:
        return [sorted(k.name for k in group) for group in d.metadata.key_groups]

    return names(a) == names(b) and a.metadata.shamir_threshold == b.metadata.shamir_threshold


def merge_files(
    base: Path, ours: Path, theirs: Path, shown: str | Path, keyring: Keyring
) -> MergeResult:
    """Merge in place (git's ``%O %A %B``): the result replaces ``ours`` only when clean.

    Files that are encrypted on neither side are merged as text by ``git merge-file``.
    """
    from kagura_ops.atomicfile import atomic_write
    from kagura_ops.sops.files import detect_format, is_encrypted_text, read_text

    fmt = detect_format(shown)
    source = str(shown)
    texts = [read_text(p) for p in (base, ours, theirs)]
    if not any(is_encrypted_text(t, fmt, source=source) for t in texts[1:]):
        return _text_merge(base, ours, theirs, source)
    result = merge_texts(texts[0], texts[1], texts[2], fmt, keyring, source=source)
    if result.text is not None and result.text != texts[1]:
        atomic_write(ours, result.text)
    return result


def _text_merge(base: Path, ours: Path, theirs: Path, source: str) -> MergeResult:
    """An ordinary line merge for a plaintext file matched by the attributes."""
    done = subprocess.run(
        [
            "git",
            "merge-file",
            "-L",
            "ours",
            "-L",
            "base",
            "-L",
            "theirs",
            str(ours),
            str(base),
            str(theirs),
        ],
        capture_output=True,
        check=False,
    )
    if done.returncode < 0 or done.returncode > 127:
        raise InputError("git merge-file failed", file=source)
    if done.returncode:
        return MergeResult(None, ["(text conflict: see the conflict markers)"])
    return MergeResult(ours.read_text(encoding="utf-8"))
