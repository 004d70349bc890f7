"""The ``ENC[AES256_GCM,...]`` value codec.

Every encrypted leaf of a SOPS file is one string::

    ENC[AES256_GCM,data:<b64 ciphertext>,iv:<b64 32-byte nonce>,tag:<b64 16-byte tag>,type:<t>]

AES-256-GCM with the file's data key, a fresh 32-byte nonce per value (sops uses
GCM with a non-standard nonce size; GHASH derives the counter block from it), and
the value's key path as additional data, so a value moved to another key no
longer authenticates. ``type`` is one of ``str``, ``int``, ``float``, ``bool``,
``time``, ``comment`` (and ``bytes`` in old files) and tells how to read the
plaintext bytes back; the byte forms follow sops (Go ``strconv`` formatting).

Any failure to decrypt a value raises one opaque :class:`IntegrityError`: the
caller adds the file and key path, never the value.
"""

from __future__ import annotations

import binascii
import math
import os
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from kagura_ops.errors import FormatError, IntegrityError

__all__ = [
    "Cipher",
    "Comment",
    "Timestamp",
    "format_float",
    "is_encrypted",
    "to_bytes",
]

NONCE_SIZE = 32
_ENC_RE = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
_PREFIX = "ENC[AES256_GCM,"


def is_encrypted(value: object) -> bool:
    """Whether ``value`` is an ``ENC[AES256_GCM,...]`` string."""
    return isinstance(value, str) and value.startswith(_PREFIX)


@dataclass(frozen=True, slots=True)
class Comment:
    """A YAML/dotenv comment line: ``value`` is the text after ``#``."""

    value: str


@dataclass(frozen=True, slots=True)
class Timestamp:
    """A YAML timestamp kept in the exact text sops hashes (Go's RFC 3339 with nanoseconds).

    Python's ``datetime`` stops at microseconds; keeping the canonical text means a
    file with nanosecond timestamps still round-trips and MAC-checks.
    """

    text: str

    @classmethod
    def from_datetime(cls, value: datetime | date) -> Timestamp:
        if not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        offset = value.utcoffset()
        assert offset is not None
        base = value.strftime("%Y-%m-%dT%H:%M:%S")
        if value.microsecond:
            base += f".{value.microsecond:06d}".rstrip("0")
        return cls(base + _format_offset(int(offset.total_seconds())))

    def to_datetime(self) -> datetime:
        """The value as an aware ``datetime`` (nanoseconds truncated to microseconds)."""
        text = self.text.replace("Z", "+00:00")
        match = re.match(r"^(.*?\.\d{6})\d*(.*)$", text)
        if match:
            text = match.group(1) + match.group(2)
        return datetime.fromisoformat(text)

    def __str__(self) -> str:
        return self.text


def _format_offset(seconds: int) -> str:
    if seconds == 0:
        return "Z"
    sign = "+" if seconds > 0 else "-"
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def format_float(value: float) -> str:
    """Format like Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, no exponent."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def to_bytes(value: Any) -> bytes:
    """The bytes sops encrypts and hashes for a leaf (its ``ToBytes``)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode("ascii")
    if isinstance(value, float):
        return format_float(value).encode("ascii")
    if isinstance(value, Timestamp):
        return value.text.encode("ascii")
    if isinstance(value, datetime | date):
        return Timestamp.from_datetime(value).text.encode("ascii")
    if isinstance(value, Comment):
        return value.value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    raise TypeError(f"cannot encrypt a value of type {type(value).__name__}")


def _type_name(value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, Timestamp | datetime | date):
        return "time"
    if isinstance(value, Comment):
        return "comment"
    if isinstance(value, bytes):
        return "bytes"
    raise TypeError(f"cannot encrypt a value of type {type(value).__name__}")


_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def _from_bytes(raw: bytes, datatype: str) -> Any:
    if datatype == "bytes":
        return raw
    text = raw.decode("utf-8")
    if datatype == "str":
        return text
    if datatype == "comment":
        return Comment(text)
    if datatype == "int":
        if not re.fullmatch(r"[+-]?[0-9]+", text):
            raise ValueError("bad int")
        return int(text)
    if datatype == "float":
        return float(text)
    if datatype == "bool":
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValueError("bad bool")
    if datatype == "time":
        Timestamp(text).to_datetime()  # validates
        return Timestamp(text)
    raise ValueError(f"unknown type {datatype}")


class Cipher:
    """Encrypts and decrypts leaf values with one file's 32-byte data key."""

    __slots__ = ("_aead",)

    def __init__(self, data_key: bytes) -> None:
        if len(data_key) != 32:
            raise ValueError("the data key must be 32 bytes")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(data_key)

    def __repr__(self) -> str:
        return "Cipher(<data key>)"

    def encrypt(self, value: Any, aad: str, *, iv: bytes | None = None) -> str:
        """Encrypt one leaf. ``""`` stays ``""`` (sops leaves empty strings in the clear)."""
        if value == "" and isinstance(value, str):
            return ""
        if isinstance(value, Comment) and value.value == "":
            return ""
        datatype = _type_name(value)
        nonce = iv if iv is not None else os.urandom(NONCE_SIZE)
        sealed = self._aead.encrypt(nonce, to_bytes(value), aad.encode("utf-8"))
        return (
            f"ENC[AES256_GCM,data:{_b64(sealed[:-16])},iv:{_b64(nonce)},"
            f"tag:{_b64(sealed[-16:])},type:{datatype}]"
        )

    def decrypt(self, token: str, aad: str) -> Any:
        """Decrypt one ``ENC[...]`` string to its typed value (``""`` gives ``""``)."""
        if token == "":
            return ""
        raw, datatype = self.decrypt_raw(token, aad)
        try:
            return _from_bytes(raw, datatype)
        except (ValueError, UnicodeDecodeError):
            raise IntegrityError(
                "an encrypted value does not decode as its declared type"
            ) from None

    def decrypt_raw(self, token: str, aad: str) -> tuple[bytes, str]:
        """The plaintext bytes and the declared type of one ``ENC[...]`` string."""
        match = _ENC_RE.match(token)
        if match is None:
            raise FormatError("a value is not in the ENC[AES256_GCM,...] format")
        try:
            data = binascii.a2b_base64(match.group(1), strict_mode=True)
            nonce = binascii.a2b_base64(match.group(2), strict_mode=True)
            tag = binascii.a2b_base64(match.group(3), strict_mode=True)
        except binascii.Error:
            raise IntegrityError("an encrypted value is not valid base64") from None
        if not nonce:
            raise IntegrityError("an encrypted value has an empty IV")
        from cryptography.exceptions import InvalidTag

        try:
            raw = self._aead.decrypt(nonce, data + tag, aad.encode("utf-8"))
        except (InvalidTag, ValueError):
            raise IntegrityError("an encrypted value failed authentication") from None
        return raw, match.group(4)


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).decode("ascii")
