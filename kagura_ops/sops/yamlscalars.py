"""Reading and writing single YAML scalars the way sops (Go's yaml.v3) types them.

sops decides a leaf's ``type:`` from how yaml.v3 resolves a plain scalar, and
the MAC hashes the value's bytes in that type. To produce files sops accepts
(and to verify files it wrote) we resolve plain scalars with yaml.v3's rules,
not YAML 1.1's: ``yes``/``on`` stay strings, ``0x1F``/``0o17``/``017`` are ints
(Go ``ParseInt`` base 0), ``1_000`` is an int, timestamps need four-digit years.

The renderer does the reverse for decrypted values: it writes a scalar that
resolves back to the same value and type, in block or flow context.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from kagura_ops.sops.codec import Timestamp

__all__ = ["render_scalar", "resolve_plain", "resolve_tagged"]

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_SPECIAL_FLOATS = {
    ".inf": math.inf, ".Inf": math.inf, ".INF": math.inf,
    "+.inf": math.inf, "+.Inf": math.inf, "+.INF": math.inf,
    "-.inf": -math.inf, "-.Inf": -math.inf, "-.INF": -math.inf,
    ".nan": math.nan, ".NaN": math.nan, ".NAN": math.nan,
}  # fmt: skip
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT = re.compile(r"^[-+]?(0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt ](\d{1,2}):(\d{1,2}):(\d{1,2})(?:\.(\d{1,9}))?"
    r"(Z|[+-]\d{2}:\d{2})?)?$"
)


def _go_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` after yaml.v3 removed the underscores."""
    if not _GO_INT.match(text):
        return None
    sign = -1 if text[0] == "-" else 1
    body = text.lstrip("+-")
    if len(body) > 1 and body[0] == "0" and body[1] in "xXoObB":
        value = int(body, 0)
    elif len(body) > 1 and body[0] == "0":
        value = int(body, 8)
    else:
        value = int(body)
    value *= sign
    return value if _INT64_MIN <= value <= _INT64_MAX else None


def _timestamp(text: str) -> Timestamp | None:
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second, frac, zone = match.groups()
    if hour is not None and zone is None and "T" in text.upper() and " " not in text:
        # yaml.v3 accepts "T" forms only with a zone; "2006-1-2 15:4:5" only without.
        return None
    if hour is not None and zone is not None and " " in text:
        return None
    try:
        moment = datetime(
            int(year), int(month), int(day),
            int(hour or 0), int(minute or 0), int(second or 0),
        )  # fmt: skip
    except ValueError:
        return None
    body = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if frac and frac.strip("0"):
        body += "." + frac.rstrip("0")
    if zone is None or zone == "Z":
        return Timestamp(body + "Z")
    offset = int(zone[1:3]) * 3600 + int(zone[4:6]) * 60
    if offset == 0:
        return Timestamp(body + "Z")
    # Keep the offset as written (Go keeps the parsed zone).
    _ = timezone(timedelta(seconds=offset))  # validates the range
    return Timestamp(body + zone)


def resolve_plain(text: str) -> Any:
    """The value yaml.v3 gives a plain (unquoted, untagged) scalar when decoding into ``any``."""
    if text in _NULLS:
        return None
    if text in _BOOLS:
        return _BOOLS[text]
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    first = text[0]
    if first.isdigit() or first in "+-.":
        stamp = _timestamp(text)
        if stamp is not None:
            return stamp
        plain = text.replace("_", "")
        if plain:
            value = _go_int(plain)
            if value is not None:
                return value
            if _YAML_FLOAT.match(plain):
                try:
                    return float(plain)
                except ValueError:
                    pass
    return text


def resolve_tagged(text: str, tag: str) -> Any:
    """A scalar with an explicit tag (``!!str 3``, ``!!int "3"``...)."""
    short = tag.removeprefix("tag:yaml.org,2002:").removeprefix("!!")
    if short in ("int", "float", "bool", "null", "timestamp"):
        value = resolve_plain(text)
        if short == "float" and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    return text


# -- rendering -------------------------------------------------------------------------------

_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@`")
_YAML11_WORDS = frozenset(
    {"y", "n", "yes", "no", "on", "off"}
)  # other YAML readers take these as booleans


def _plain_ok(text: str, flow: bool) -> bool:
    """Whether ``text`` can be written unquoted and read back as the same string by any reader."""
    if not text or text != text.strip(" ") or text[0] in _INDICATORS:
        return False
    if any(ch in "\t\n\r" or not _printable(ch) for ch in text):
        return False
    if ": " in text or text.endswith(":") or " #" in text:
        return False
    if flow and any(ch in text for ch in ",[]{}"):
        return False
    if text.lower() in _YAML11_WORDS or text in ("~", "=", "<<"):
        return False
    if text[0] in "0123456789+.":
        # Numbers, timestamps and sexagesimals in some YAML dialect: quote to be safe.
        return False
    return isinstance(resolve_plain(text), str)


def _printable(ch: str) -> bool:
    code = ord(ch)
    return (
        code in (0x09, 0x0A)
        or 0x20 <= code <= 0x7E
        or (0xA0 <= code <= 0xD7FF and code not in (0x2028, 0x2029))
        or (0xE000 <= code <= 0xFFFD and code != 0xFEFF)
        or 0x10000 <= code <= 0x10FFFF
    )


def _double_quoted(text: str) -> str:
    out = json.dumps(text, ensure_ascii=False)
    if all(_printable(ch) for ch in text):
        return out
    return "".join(ch if _printable(ch) or ch in '"\\' else f"\\u{ord(ch):04x}" for ch in out)


def _literal(text: str, indent: int) -> str | None:
    """A ``|`` block for multi-line text, or None when a block cannot hold it exactly."""
    if "\r" in text or not all(_printable(ch) for ch in text):
        return None
    if text.endswith("\n\n") or text.startswith((" ", "\n")):
        return None
    body = text[:-1] if text.endswith("\n") else text
    lines = body.split("\n")
    if any(line != line.rstrip(" ") and not line.strip() for line in lines):
        return None
    header = "|" if text.endswith("\n") else "|-"
    pad = " " * indent
    return header + "".join("\n" + (pad + line if line else "") for line in lines)


def render_scalar(value: Any, *, flow: bool = False, indent: int = 2) -> str:
    """YAML text for ``value`` that reads back as the same value and type.

    ``flow``: the scalar sits inside ``{}``/``[]``. ``indent``: the column block
    scalar content starts at (only used for multi-line strings in block context).
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if isinstance(value, Timestamp):
        return value.text
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    if _plain_ok(text, flow):
        return text
    if "\n" in text and not flow:
        block = _literal(text, indent)
        if block is not None:
            return block
    return _double_quoted(text)
