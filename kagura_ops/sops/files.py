"""Encrypted files on disk: format detection, creation rules, and the file operations.

These are the library calls behind ``kagura-ops encrypt/decrypt/edit/set/unset/
updatekeys/rotate/filestatus``: each takes paths and options and returns text or
writes the file atomically; the CLI only parses arguments and prints.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kagura_ops.errors import ConfigError, InputError, KaguraOpsError, NoIdentityError
from kagura_ops.keys.base import MasterKey
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.document import (
    Decrypted,
    Parsed,
    decrypt_document,
    encrypt_document,
    new_data_key,
    wrap_data_key,
)
from kagura_ops.sops.selection import Selection

__all__ = [
    "FORMATS",
    "EncryptionSettings",
    "decrypt_file",
    "decrypt_text",
    "detect_format",
    "encrypt_text",
    "is_encrypted_text",
    "parse",
    "settings_for",
]

FORMATS = ("yaml", "json", "dotenv")


def detect_format(path: str | Path, explicit: str | None = None) -> str:
    """``yaml``, ``json`` or ``dotenv`` from ``explicit`` or the file name (as sops does)."""
    if explicit:
        if explicit not in FORMATS:
            raise InputError(f"unknown format {explicit!r}; use one of {', '.join(FORMATS)}")
        return explicit
    name = Path(path).name.lower()
    if name.endswith(".json"):
        return "json"
    if name.endswith(".env") or name == ".env" or name.startswith(".env."):
        return "dotenv"
    return "yaml"


def parse(text: str, fmt: str, *, source: str = "") -> Parsed:
    """Parse ``text`` with the store for ``fmt``."""
    if fmt == "json":
        from kagura_ops.sops.jsonstore import parse_json

        return parse_json(text, source=source)
    if fmt == "dotenv":
        from kagura_ops.sops.dotenvstore import parse_dotenv

        return parse_dotenv(text, source=source)
    from kagura_ops.sops.yamlstore import parse_yaml

    return parse_yaml(text, source=source)


def _with_comment_stacks(parsed: Parsed, selection: Selection) -> None:
    if selection.unencrypted_comment_regex or selection.encrypted_comment_regex:
        fill = getattr(parsed, "fill_comment_stacks", None)
        if fill is not None:
            fill()


def read_text(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("no such file", file=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, not a file", file=str(path)) from None
    except UnicodeDecodeError:
        raise InputError("is not UTF-8 text", file=str(path)) from None
    except PermissionError:
        raise InputError("permission denied", file=str(path)) from None


def is_encrypted_text(text: str, fmt: str, *, source: str = "") -> bool:
    """Whether ``text`` carries sops metadata."""
    return parse(text, fmt, source=source).metadata is not None


def decrypt_text(
    text: str,
    fmt: str,
    keyring: Keyring,
    *,
    source: str = "",
    verify_mac: bool = True,
) -> Decrypted:
    parsed = parse(text, fmt, source=source)
    if parsed.metadata is not None:
        from kagura_ops.sops.metadata import Metadata

        try:
            selection = Metadata.from_mapping(parsed.metadata, source=source).selection
        except KaguraOpsError:
            selection = Selection.default()
        _with_comment_stacks(parsed, selection)
    return decrypt_document(parsed, keyring, source=source, verify_mac=verify_mac)


def decrypt_file(
    path: str | Path, keyring: Keyring, *, fmt: str | None = None, verify_mac: bool = True
) -> Decrypted:
    """Decrypt an encrypted file and verify its MAC."""
    fmt = detect_format(path, fmt)
    return decrypt_text(read_text(path), fmt, keyring, source=str(path), verify_mac=verify_mac)


# -- encryption settings ---------------------------------------------------------------------


@dataclass
class EncryptionSettings:
    """Recipients and selection for a new file (from flags or a creation rule)."""

    key_groups: list[list[MasterKey]]
    selection: Selection
    shamir_threshold: int = 0


def key_from_spec(kind: str, params: dict[str, str]) -> MasterKey:
    """A key source for one key named in ``.sops.yaml`` (or on the command line)."""
    if kind == "age":
        from kagura_ops.keys.age import AgeKey

        return AgeKey(params["recipient"])
    from kagura_ops.keys.registry import OpaqueKey

    key = OpaqueKey(kind, params)
    # Fail now, with the kind named, rather than half-way through writing.
    raise key._unsupported()


def settings_for(
    path: str | Path,
    *,
    age: Sequence[str] = (),
    selection: Selection | None = None,
    config: str | Path | None = None,
) -> EncryptionSettings:
    """What a new encrypted file at ``path`` gets.

    Recipients given on the command line win; otherwise the first matching
    creation rule of the nearest ``.sops.yaml`` (or ``config``) decides.
    """
    if age:
        from kagura_ops.keys.age import AgeKey, parse_recipients

        recipients = parse_recipients(list(age))
        if not recipients:
            raise ConfigError("no recipients given", hint="--age takes age1... or ssh-... keys")
        return EncryptionSettings(
            [[AgeKey(r) for r in recipients]], selection or Selection.default()
        )
    from kagura_ops.sops.rules import find_config, rule_for

    config_path = Path(config) if config else find_config(Path(path).absolute().parent)
    if config_path is None:
        raise ConfigError(
            "no recipients: no --age given and no .sops.yaml found above the file",
            file=str(path),
            hint="pass --age age1... or add a .sops.yaml with creation_rules",
        )
    rule = rule_for(Path(path).absolute(), config_path)
    groups = [
        [key_from_spec(spec.kind, dict(spec.params)) for spec in group] for group in rule.key_groups
    ]
    if not groups or not any(groups):
        raise ConfigError(
            "the matching creation rule names no keys",
            file=rule.location,
            hint="add an age: recipient to the rule",
        )
    return EncryptionSettings(groups, selection or rule.selection, rule.shamir_threshold)


# -- previous versions (stable ciphertext) -------------------------------------------------------


def _in_git_work_tree(path: Path) -> bool:
    """A cheap check before spawning git: is there a ``.git`` above ``path``?"""
    return any((parent / ".git").exists() for parent in path.absolute().parents)


def _git_head_version(path: Path) -> str | None:
    """The file's content at ``HEAD`` when it is tracked by git, else None."""
    if not _in_git_work_tree(path):
        return None
    import subprocess

    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=path.absolute().parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if top.returncode != 0:
            return None
        rel = path.absolute().relative_to(Path(top.stdout.strip()).resolve())
        shown = subprocess.run(
            ["git", "show", f"HEAD:{rel.as_posix()}"],
            cwd=top.stdout.strip(),
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0:
        return None
    try:
        return shown.stdout.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _may_be_encrypted(text: str) -> bool:
    return "ENC[AES256_GCM," in text or "sops_mac=" in text


def find_previous(
    target: Path,
    fmt: str,
    keyring: Keyring,
    *,
    explicit: str | Path | None = None,
    source: Path | None = None,
) -> Decrypted | None:
    """The previous encrypted version of ``target``, decrypted, for stable re-encryption.

    Looked for in ``explicit`` (``--previous``), then the file at ``target`` if it is
    encrypted (and is not the plaintext ``source`` itself), then ``git show
    HEAD:<target>``. Without an identity for it, there is no previous version (a
    fresh encryption follows).
    """
    candidates: list[tuple[str, str]] = []
    same_as_source = source is not None and target.absolute() == source.absolute()
    if explicit is not None:
        candidates.append((read_text(explicit), str(explicit)))
    elif target.exists() and not same_as_source:
        with contextlib.suppress(OSError, UnicodeDecodeError):
            candidates.append((target.read_text(encoding="utf-8"), str(target)))
    if explicit is None:
        head = _git_head_version(target)
        if head is not None:
            candidates.append((head, f"HEAD:{target}"))
    for text, where in candidates:
        if not _may_be_encrypted(text):
            continue
        try:
            parsed = parse(text, fmt, source=where)
        except KaguraOpsError:
            continue
        if parsed.metadata is None:
            continue
        try:
            return decrypt_text(text, fmt, keyring, source=where)
        except NoIdentityError:
            if explicit is not None:
                raise
            return None
        except KaguraOpsError:
            if explicit is not None:
                raise
            continue
    return None


def _reuse_keys(
    new_groups: list[list[MasterKey]], previous: Decrypted
) -> tuple[list[list[MasterKey]], bytes]:
    """Keep the previous data key and wrapped stanzas when the recipients allow it.

    Returns key groups whose ``enc`` all wrap the returned data key. Same
    recipients: everything is reused. Recipients only added: the data key is
    reused and wrapped for the new ones. Any recipient removed: a new data key
    (someone who lost access must not be able to read the new version).
    """
    old_groups = previous.metadata.key_groups
    old_names = {k.name for g in old_groups for k in g}
    new_names = {k.name for g in new_groups for k in g}
    threshold = previous.metadata.shamir_threshold
    if not old_names <= new_names or len(old_groups) != len(new_groups):
        fresh = [[_fresh(k) for k in g] for g in new_groups]
        data_key = new_data_key()
        wrap_data_key(data_key, fresh, threshold)
        return fresh, data_key
    if len(new_groups) > 1:
        same = all(
            {k.name for k in a} == {k.name for k in b}
            for a, b in zip(old_groups, new_groups, strict=True)
        )
        if same:
            return old_groups, previous.data_key
        fresh = [[_fresh(k) for k in g] for g in new_groups]
        wrap_data_key(previous.data_key, fresh, threshold)
        return fresh, previous.data_key
    by_name = {k.name: k for k in old_groups[0]}
    merged = [by_name.get(k.name) or _fresh(k) for k in new_groups[0]]
    missing = [k for k in merged if not k.enc]
    if missing:
        wrap_data_key(previous.data_key, [missing], 0)
    return [merged], previous.data_key


def _fresh(key: MasterKey) -> MasterKey:
    return key.without_enc()


def encrypt_text(
    text: str,
    fmt: str,
    settings: EncryptionSettings,
    *,
    previous: Decrypted | None = None,
    source: str = "",
) -> str:
    """Encrypt plaintext ``text``; with ``previous``, unchanged values keep their ciphertext."""
    parsed = parse(text, fmt, source=source)
    _with_comment_stacks(parsed, settings.selection)
    groups = settings.key_groups
    data_key: bytes | None = None
    selection = settings.selection
    wrapped = False
    if previous is not None:
        groups, data_key = _reuse_keys(groups, previous)
        wrapped = True
        if data_key != previous.data_key:
            previous = None
    return encrypt_document(
        parsed,
        key_groups=groups,
        wrapped=wrapped,
        selection=selection,
        shamir_threshold=settings.shamir_threshold,
        data_key=data_key,
        previous=previous,
        source=source,
    )


def reencrypt(decrypted: Decrypted, new_plaintext: str, fmt: str, *, source: str = "") -> str:
    """Encrypt an edited plaintext with the file's own keys and settings, stably."""
    meta = decrypted.metadata
    settings = EncryptionSettings(meta.key_groups, meta.selection, meta.shamir_threshold)
    return encrypt_text(new_plaintext, fmt, settings, previous=decrypted, source=source)


# -- paths for --extract / set / unset --------------------------------------------------------


def parse_key_path(expr: str) -> list[str | int]:
    """``'["a"]["b"][0]'`` (sops' syntax) or ``a.b[0]`` into path components."""
    import json
    import re

    text = expr.strip()
    if not text:
        raise InputError("empty key path")
    if text.startswith("["):
        parts: list[str | int] = []
        for match in re.finditer(r'\[\s*("(?:[^"\\]|\\.)*"|\'[^\']*\'|-?\d+)\s*\]|(.)', text):
            if match.group(2) is not None:
                raise InputError(f"invalid key path {expr!r}", hint='use the form ["key"][0]')
            token = match.group(1)
            if token.startswith('"'):
                parts.append(json.loads(token))
            elif token.startswith("'"):
                parts.append(token[1:-1])
            else:
                parts.append(int(token))
        return parts
    out: list[str | int] = []
    for piece in re.finditer(r"([^.\[\]]+)|\[(-?\d+)\]", text):
        out.append(int(piece.group(2)) if piece.group(2) is not None else piece.group(1))
    if not out:
        raise InputError(f"invalid key path {expr!r}")
    return out


def extract(tree: Any, path: Sequence[str | int], *, source: str = "") -> Any:
    """The value at ``path`` in a decrypted tree."""
    node = tree
    for depth, part in enumerate(path):
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            shown = "".join(
                f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in path[: depth + 1]
            )
            raise InputError(f"key path {shown} not found", file=source or None) from None
    return node
