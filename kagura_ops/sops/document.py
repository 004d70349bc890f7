"""Encrypting and decrypting whole documents: data key, values, comments, MAC.

This is the format's core, independent of YAML/JSON/dotenv: a store parses a
file into *leaves* (values and comments in sops' walk order, each with its key
path) and renders new leaf values back into the file. Here we decide which
leaves are encrypted, run the cipher, compute and check the MAC, and wrap or
unwrap the data key for the recipients.

Stable ciphertext: when a previous encrypted version of the same file is given,
the data key and every recipient stanza are reused and each value whose key
path and plaintext did not change keeps its exact ``ENC[...]`` string (the same
IV under the same key and additional data gives the same ciphertext). If
nothing changed at all the output is byte-identical to the previous file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from kagura_ops.errors import (
    DecryptionError,
    EncryptionError,
    FormatError,
    IntegrityError,
    KaguraOpsError,
    NoIdentityError,
)
from kagura_ops.sops.codec import Cipher, Comment, is_encrypted, to_bytes
from kagura_ops.sops.metadata import Metadata, rfc3339
from kagura_ops.sops.selection import Selection

if TYPE_CHECKING:
    from kagura_ops.keys.base import MasterKey
    from kagura_ops.keys.identities import Keyring
    from kagura_ops.sops.yamlstore import Leaf

__all__ = ["Decrypted", "Parsed", "decrypt_document", "encrypt_document", "new_data_key"]

#: sops' ``MACOnlyEncryptedInitialization``: sha256(b"sops"), hashed first with mac_only_encrypted.
_MAC_ONLY_PREFIX = hashlib.sha256(b"sops").digest()


class Parsed(Protocol):
    """What every store gives the format core: leaves, metadata and a renderer."""

    leaves: list[Leaf]

    @property
    def metadata(self) -> dict[str, Any] | None: ...

    def trees(self) -> list[dict[str, Any]]: ...

    def render_with(self, values: list[Any], metadata: Metadata | None) -> str: ...


@dataclass
class Decrypted:
    """A decrypted document: plaintext per leaf plus what is needed to write it back."""

    parsed: Parsed
    metadata: Metadata
    data_key: bytes
    plaintext: list[Any]
    """The plaintext of every leaf, aligned with ``parsed.leaves`` (comments as :class:`Comment`)."""
    encrypted: list[bool]
    """Whether each leaf was encrypted in the file."""

    def __repr__(self) -> str:
        return (
            f"Decrypted({len(self.plaintext)} leaves, {len(self.metadata.recipients)} recipients)"
        )

    def render(self) -> str:
        """The plaintext file (metadata removed)."""
        values = [
            (p.value if isinstance(p, Comment) else p) if enc else None
            for p, enc in zip(self.plaintext, self.encrypted, strict=True)
        ]
        return self.parsed.render_with(values, None)

    def trees(self) -> list[dict[str, Any]]:
        """The plaintext documents as Python values (comments dropped)."""
        replacements = {
            id(leaf): value
            for leaf, value, enc in zip(
                self.parsed.leaves, self.plaintext, self.encrypted, strict=True
            )
            if enc and not isinstance(value, Comment)
        }
        out = []
        trees = self.parsed.trees()
        for doc_index, tree in enumerate(trees):
            leaves = [
                (leaf, replacements[id(leaf)])
                for leaf in self.parsed.leaves
                if leaf.doc == doc_index and id(leaf) in replacements
            ]
            out.append(_replace_leaves(tree, leaves))
        return out

    def stash(self) -> dict[tuple[Any, ...], str]:
        """Previous ciphertexts by (key path, type, plaintext), for stable re-encryption."""
        stash: dict[tuple[Any, ...], str] = {}
        for leaf, value, enc in zip(
            self.parsed.leaves, self.plaintext, self.encrypted, strict=True
        ):
            if not enc or not is_encrypted(_ciphertext(leaf)):
                continue
            token = _ciphertext(leaf)
            stash.setdefault(_stash_key(leaf.keys, leaf.aad, value), token)
            stash.setdefault(_stash_key(None, leaf.aad, value), token)
        return stash


def _ciphertext(leaf: Leaf) -> str:
    value = leaf.value
    if isinstance(value, Comment):
        return value.value
    return value if isinstance(value, str) else ""


def _stash_key(keys: Sequence[Any] | None, aad: str, value: Any) -> tuple[Any, ...]:
    kind = type(value).__name__
    return (tuple(keys) if keys is not None else None, aad, kind, to_bytes(value))


def _replace_leaves(tree: Any, leaves: list[tuple[Leaf, Any]]) -> Any:
    import copy

    result = copy.deepcopy(tree)
    for leaf, value in leaves:
        if not leaf.keys:
            continue
        node = result
        for part in leaf.keys[:-1]:
            node = node[part]
        node[leaf.keys[-1]] = value
    return result


def new_data_key() -> bytes:
    return os.urandom(32)


# -- data key --------------------------------------------------------------------------------


def wrap_data_key(data_key: bytes, key_groups: list[list[MasterKey]], threshold: int) -> None:
    """Wrap ``data_key`` (or its Shamir shares, one per group) for every recipient."""
    if not key_groups or not all(key_groups):
        raise EncryptionError(
            "no recipients to encrypt for",
            hint="pass --age RECIPIENT or add a creation rule to .sops.yaml",
        )
    if len(key_groups) == 1:
        parts = [data_key]
    else:
        from kagura_ops.keys.shamir import split

        parts = split(data_key, len(key_groups), threshold or len(key_groups))
    for group, part in zip(key_groups, parts, strict=True):
        for key in group:
            try:
                key.wrap(part)
            except KaguraOpsError:
                raise
            except Exception as exc:
                raise EncryptionError(
                    f"could not wrap the data key for {key.name}: {exc}"
                ) from None


def unwrap_data_key(metadata: Metadata, keyring: Keyring, *, source: str = "") -> bytes:
    """Recover the data key with the identities in ``keyring`` (combining Shamir shares)."""
    from kagura_ops.errors import UnsupportedError
    from kagura_ops.keys.registry import unusable

    parts: list[bytes] = []
    failures: list[Exception] = []
    for group in metadata.key_groups:
        # age first, like sops' default decryption order.
        ordered = sorted(group, key=lambda k: 0 if k.kind == "age" else 1)
        for key in ordered:
            try:
                parts.append(key.unwrap(keyring))
                break
            except Exception as exc:
                if not unusable(exc):
                    raise
                failures.append(exc)
        if len(parts) >= metadata.threshold:
            break
    if len(parts) >= metadata.threshold:
        return _combine(parts, metadata, source)
    if failures and all(isinstance(f, UnsupportedError) for f in failures):
        first = failures[0]
        assert isinstance(first, UnsupportedError)
        raise UnsupportedError(first.message, file=source or None, hint=first.hint)
    recipients = ", ".join(k.short_name for k in metadata.recipients)
    need = (
        f"{metadata.threshold} of {len(metadata.key_groups)} key groups"
        if len(metadata.key_groups) > 1
        else "one of its recipients"
    )
    raise NoIdentityError(
        f"cannot decrypt the data key: no identity matches {need} ({recipients}); "
        f"tried: {keyring.describe_tried()}",
        file=source or None,
        hint="pass --identity FILE, or set SOPS_AGE_KEY_FILE, or put the key in "
        "~/.config/sops/age/keys.txt",
    )


def _combine(parts: list[bytes], metadata: Metadata, source: str) -> bytes:
    if len(metadata.key_groups) == 1:
        key = parts[0]
    else:
        from kagura_ops.keys.shamir import combine

        try:
            key = combine(parts)
        except ValueError:
            raise IntegrityError(
                "the key-group shares do not combine", file=source or None
            ) from None
    if len(key) != 32:
        raise IntegrityError("the unwrapped data key has the wrong length", file=source or None)
    return key


# -- values and MAC ------------------------------------------------------------------------------


def _mac_hasher(selection: Selection) -> Any:
    hasher = hashlib.sha512()
    if selection.mac_only_encrypted:
        hasher.update(_MAC_ONLY_PREFIX)
    return hasher


def _path_text(leaf: Leaf) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in leaf.keys] or list(leaf.path)
    return ".".join(parts).replace(".[", "[") or "(top level)"


def encrypt_document(
    parsed: Parsed,
    *,
    key_groups: list[list[MasterKey]],
    selection: Selection,
    shamir_threshold: int = 0,
    data_key: bytes | None = None,
    previous: Decrypted | None = None,
    wrapped: bool = False,
    now: Callable[[], datetime] | None = None,
    source: str = "",
) -> str:
    """Encrypt a plaintext document and return the file text.

    The data key is wrapped for every recipient in ``key_groups`` (copies; the
    objects given are not changed), unless ``wrapped=True`` says their ``enc``
    already wraps ``data_key`` (kept from a previous version). With
    ``previous``, unchanged values keep their ciphertext and an unchanged file
    stays byte-identical.
    """
    if parsed.metadata is not None:
        raise FormatError(
            "the file is already encrypted (it has sops metadata)",
            file=source or None,
            hint="use 'kagura-ops edit' or 'kagura-ops set' to change it",
        )
    if data_key is None:
        data_key = previous.data_key if previous is not None else new_data_key()
    if not wrapped:
        # Fresh copies: the caller's key objects are never changed, so one set of
        # recipients can serve many files, each with its own data key.
        key_groups = [[key.without_enc() for key in group] for group in key_groups]
        wrap_data_key(data_key, key_groups, shamir_threshold)
    cipher = Cipher(data_key)
    stash = previous.stash() if previous is not None and previous.data_key == data_key else {}
    hasher = _mac_hasher(selection)
    values: list[Any] = []
    for leaf in parsed.leaves:
        value = leaf.value
        comment = isinstance(value, Comment)
        encrypt = selection.applies_to(leaf.path, leaf.comments, comment)
        if not comment and (encrypt or not selection.mac_only_encrypted):
            hasher.update(to_bytes(value))
        if not encrypt:
            values.append(None)
            continue
        if not comment and isinstance(value, str) and is_encrypted(value):
            raise FormatError(
                f"{_path_text(leaf)} already holds an ENC[...] value",
                file=source or None,
                hint="decrypt the file first; kagura-ops does not encrypt twice",
            )
        token = stash.get(_stash_key(leaf.keys, leaf.aad, value)) or stash.get(
            _stash_key(None, leaf.aad, value)
        )
        if token is not None:
            values.append(token)
            continue
        try:
            values.append(cipher.encrypt(value, leaf.aad))
        except TypeError:
            raise FormatError(
                f"{_path_text(leaf)}: values of type {type(value).__name__} cannot be encrypted",
                file=source or None,
            ) from None
    digest = hasher.hexdigest().upper()
    if (
        previous is not None
        and stash
        and _previous_mac(previous) == digest
        and _same_keys(previous.metadata.key_groups, key_groups)
    ):
        lastmodified = previous.metadata.lastmodified
        mac = previous.metadata.mac
    else:
        lastmodified = rfc3339((now or _utcnow)())
        mac = cipher.encrypt(digest, lastmodified)
    metadata = Metadata(
        key_groups=key_groups,
        selection=selection,
        shamir_threshold=shamir_threshold if len(key_groups) > 1 else 0,
        lastmodified=lastmodified,
        mac=mac,
    )
    return parsed.render_with(values, metadata)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _previous_mac(previous: Decrypted) -> str | None:
    try:
        cipher = Cipher(previous.data_key)
        value = cipher.decrypt(previous.metadata.mac, previous.metadata.mac_aad)
    except KaguraOpsError:
        return None
    return value if isinstance(value, str) else None


def _same_keys(old: list[list[MasterKey]], new: list[list[MasterKey]]) -> bool:
    if len(old) != len(new):
        return False
    return all(
        len(a) == len(b)
        and all(x.same_recipient(y) and x.enc == y.enc for x, y in zip(a, b, strict=True))
        for a, b in zip(old, new, strict=True)
    )


def decrypt_document(
    parsed: Parsed,
    keyring: Keyring | None = None,
    *,
    data_key: bytes | None = None,
    verify_mac: bool = True,
    source: str = "",
) -> Decrypted:
    """Decrypt every encrypted leaf and check the MAC. Never returns unverified data
    unless ``verify_mac=False``."""
    raw = parsed.metadata
    if raw is None:
        raise FormatError(
            "not a SOPS-encrypted file (no sops metadata)",
            file=source or None,
            hint="encrypt it first with 'kagura-ops encrypt'",
        )
    metadata = Metadata.from_mapping(raw, source=source)
    if data_key is None:
        if keyring is None:
            raise DecryptionError("no keyring given to decrypt with", file=source or None)
        data_key = unwrap_data_key(metadata, keyring, source=source)
    cipher = Cipher(data_key)
    selection = metadata.selection
    hasher = _mac_hasher(selection)
    plaintext: list[Any] = []
    flags: list[bool] = []
    for leaf in parsed.leaves:
        value = leaf.value
        comment = isinstance(value, Comment)
        encrypt = selection.applies_to(leaf.path, leaf.comments, comment)
        if comment:
            clear = _decrypt_comment(cipher, leaf) if encrypt else None
            plaintext.append(clear if clear is not None else value)
            flags.append(clear is not None)
            continue
        if encrypt:
            if not isinstance(value, str):
                raise IntegrityError(
                    f"{_path_text(leaf)} should be encrypted but holds a plain "
                    f"{type(value).__name__}",
                    file=source or None,
                    hint="the file was edited by hand; restore it from version control",
                )
            if value != "" and not is_encrypted(value):
                raise IntegrityError(
                    f"{_path_text(leaf)} should be encrypted but holds plaintext",
                    file=source or None,
                    hint="the file was edited by hand; restore it from version control",
                )
            try:
                value = cipher.decrypt(value, leaf.aad)
            except KaguraOpsError:
                raise IntegrityError(
                    f"{_path_text(leaf)} could not be decrypted: the value was modified or "
                    "moved from another key",
                    file=source or None,
                    hint="restore the file from version control",
                ) from None
        if encrypt or not selection.mac_only_encrypted:
            hasher.update(to_bytes(value))
        plaintext.append(value)
        flags.append(encrypt)
    if verify_mac:
        try:
            stored = cipher.decrypt(metadata.mac, metadata.mac_aad)
        except KaguraOpsError:
            raise IntegrityError(
                "the MAC could not be decrypted: the sops metadata was modified",
                file=source or None,
            ) from None
        if not isinstance(stored, str) or stored.upper() != hasher.hexdigest().upper():
            raise IntegrityError(
                "MAC mismatch: the file was modified outside sops/kagura-ops "
                "(values reordered, added or removed)",
                file=source or None,
                hint="restore the file from version control",
            )
    return Decrypted(parsed, metadata, data_key, plaintext, flags)


def _decrypt_comment(cipher: Cipher, leaf: Leaf) -> Comment | None:
    text = leaf.value.value
    if not is_encrypted(text):
        return None
    for path in (leaf.path, *leaf.alternatives):
        try:
            value = cipher.decrypt(text, ":".join(path) + ":")
        except KaguraOpsError:
            continue
        if isinstance(value, Comment):
            return value
    return None
