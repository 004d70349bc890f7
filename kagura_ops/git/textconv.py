"""``kagura-ops diff-textconv FILE``: what ``git diff`` shows for an encrypted file.

With an identity that opens the file, its plaintext (MAC verified), so a
reviewer with access sees the real change. Without one, the file with every
encrypted value replaced by ``<encrypted sha256:1a2b3c4d>``: the first 8 hex
digits of the SHA-256 of its ``ENC[...]`` string. Stable ciphertext keeps that
string (and so the digest) as long as the value is unchanged, so the diff still
shows which keys changed without revealing anything. The ``sops:`` block is
left out in both views: its ``mac`` and ``lastmodified`` change on every edit
and would only add noise.

The plaintext goes to standard output only (git reads it through a pipe); the
setup never enables ``cachetextconv``, which would store it in git's notes.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from kagura_ops.errors import InputError, KaguraOpsError, NoIdentityError

if TYPE_CHECKING:
    from kagura_ops.keys.identities import Keyring

__all__ = ["redacted", "textconv"]


def _token(enc: str) -> str:
    return f"<encrypted sha256:{hashlib.sha256(enc.encode('utf-8')).hexdigest()[:8]}>"


def redacted(text: str, fmt: str, *, source: str = "") -> str:
    """``text`` with each encrypted value (and comment) as ``<encrypted sha256:…>``, no metadata."""
    from kagura_ops.sops.codec import Comment, is_encrypted
    from kagura_ops.sops.files import parse

    parsed = parse(text, fmt, source=source)
    values: list[object] = []
    for leaf in parsed.leaves:
        raw = leaf.value.value if isinstance(leaf.value, Comment) else leaf.value
        if isinstance(raw, str) and is_encrypted(raw):
            token = _token(raw)
            values.append(f" {token}" if isinstance(leaf.value, Comment) else token)
        else:
            values.append(None)
    return parsed.render_with(values, None)


def textconv(path: Path, keyring: Keyring) -> bytes:
    """What git should diff for ``path`` (see the module docstring).

    A file that is not a SOPS file (not UTF-8, not parseable, no metadata) is
    passed through unchanged.
    """
    from kagura_ops.sops.files import decrypt_text, detect_format, parse

    fmt = detect_format(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
        parsed = parse(text, fmt, source=str(path))
    except (UnicodeDecodeError, KaguraOpsError):
        return raw
    if parsed.metadata is None:
        return raw
    try:
        shown = decrypt_text(text, fmt, keyring, source=str(path)).render()
    except NoIdentityError:
        shown = redacted(text, fmt, source=str(path))
    return shown.encode("utf-8")
