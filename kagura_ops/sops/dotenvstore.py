"""The dotenv store: ``KEY=VALUE`` lines, ``#`` comments, and flattened metadata.

The format is sops' own reading of dotenv (``stores/dotenv``), not a shell's:

* lines are split on ``\\n`` only; an empty line is skipped, a line starting
  with ``#`` is a comment (its text is everything after the ``#``), any other
  line must contain ``=``: the key is everything before the first ``=`` and
  the value everything after it, verbatim (no trimming, no quote handling, no
  ``export``; a ``\\r`` of a CRLF file stays in the value);
* the two characters ``\\n`` in a value stand for a newline, and a newline in
  a value is written back as ``\\n`` (so a literal backslash-n does not
  survive a round trip, in sops either);
* every value is a string; comments are leaves with the top-level path and
  are encrypted like YAML comments;
* the metadata is stored as ``sops_``-prefixed keys, flattened with
  ``__map_<key>`` and ``__list_<index>`` separators
  (``sops_age__list_0__map_recipient=age1...``), written after the data in
  sorted order with ``mac_only_encrypted`` as ``true`` and ``shamir_threshold``
  as a decimal. Any key starting with ``sops_`` is metadata.

Unlike sops we keep blank lines where they are; sops skips them when reading,
so both tools read what we write the same way.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from kagura_ops.errors import FormatError, InputError
from kagura_ops.sops.codec import Comment, Timestamp
from kagura_ops.sops.yamlstore import Leaf

if TYPE_CHECKING:
    from kagura_ops.sops.metadata import Metadata

__all__ = ["ParsedDotenv", "flatten_metadata", "format_value", "parse_dotenv", "unflatten_metadata"]

METADATA_PREFIX = "sops_"
_MAP = "__map_"
_LIST = "__list_"
_SEPARATORS = re.compile(f"({_MAP}|{_LIST})")


@dataclass
class _Line:
    """One physical line: its text and what it holds."""

    text: str
    key: str | None = None
    """The key of a ``KEY=VALUE`` line (None for comments and blank lines)."""
    leaf: int = -1
    """Index into :attr:`ParsedDotenv.leaves`, or -1."""
    metadata: bool = False


@dataclass
class ParsedDotenv:
    """A parsed dotenv file: its lines, its leaves (values and comments) and its metadata."""

    lines: list[_Line]
    leaves: list[Leaf]
    final_newline: bool = True
    flat_metadata: dict[str, str] = field(default_factory=dict)
    """The ``sops_`` entries without the prefix, values unescaped, in file order."""
    _metadata: dict[str, Any] | None = None

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The un-flattened ``sops`` mapping, or None for a plaintext file."""
        return self._metadata

    def trees(self) -> list[dict[str, Any]]:
        return [
            {
                leaf.path[0]: leaf.value
                for leaf in self.leaves
                if not isinstance(leaf.value, Comment)
            }
        ]

    def render_with(self, values: list[Any], metadata: Metadata | None) -> str:
        """:meth:`render` with the metadata flattened into ``sops_...`` lines."""
        return self.render(values, metadata.to_mapping() if metadata is not None else None)

    def render(self, values: list[Any], metadata: Mapping[str, Any] | None) -> str:
        """The file with each leaf replaced by ``values[i]`` (``None``: unchanged).

        Comment values are the text after ``#``. Other lines stay as they are;
        the old metadata lines are dropped and ``metadata`` (a ``sops`` mapping),
        if given, is appended in sops' flattened form.
        """
        if len(values) != len(self.leaves):
            raise ValueError("one value per leaf is needed")
        out: list[str] = []
        for line in self.lines:
            if line.metadata:
                continue
            new = values[line.leaf] if line.leaf >= 0 else None
            if new is None:
                out.append(line.text)
            elif line.key is None:
                out.append(f"#{new.value if isinstance(new, Comment) else new}")
            else:
                out.append(f"{line.key}={format_value(new)}")
        if metadata is not None:
            out.extend(
                f"{METADATA_PREFIX}{key}={value}" for key, value in flatten_metadata(metadata)
            )
        if not out:
            return ""
        ends = self.final_newline or metadata is not None
        return "\n".join(out) + ("\n" if ends else "")


def parse_dotenv(text: str, *, source: str = "<dotenv>") -> ParsedDotenv:
    """Parse a dotenv file. Raises :class:`InputError` for a line that is neither
    ``KEY=VALUE`` nor a comment (without quoting it) and for duplicate keys."""
    raw_lines = text.split("\n")
    final_newline = text.endswith("\n")
    if final_newline:
        raw_lines.pop()
    lines: list[_Line] = []
    leaves: list[Leaf] = []
    flat: dict[str, str] = {}
    seen: dict[str, int] = {}
    pending: list[str] = []  # comments since the last value: sops' comments stack
    for number, raw in enumerate(raw_lines, start=1):
        where = f"{source}:{number}"
        if not raw:
            lines.append(_Line(raw))
            continue
        if raw[0] == "#":
            comment = raw[1:]
            pending.append(comment)
            leaves.append(Leaf((), (), Comment(comment), comments=(tuple(pending),)))
            lines.append(_Line(raw, leaf=len(leaves) - 1))
            continue
        pos = raw.find("=")
        if pos < 0:
            blank = not raw.strip()
            raise InputError(
                "a blank line holds whitespace"
                if blank
                else "a line is neither KEY=VALUE nor a # comment",
                file=where,
                hint="sops rejects such lines; remove the whitespace (CRLF line endings?)"
                if blank
                else "write it as KEY=VALUE",
            )
        key = raw[:pos]
        value = raw[pos + 1 :].replace("\\n", "\n")
        if key in seen:
            raise InputError(
                f"duplicate key {key!r} (first on line {seen[key]})",
                file=where,
                hint="each key may appear once",
            )
        seen[key] = number
        if key.startswith(METADATA_PREFIX):
            flat[key[len(METADATA_PREFIX) :]] = value
            lines.append(_Line(raw, key, metadata=True))
            continue
        leaves.append(Leaf((key,), (key,), value, comments=(tuple(pending),)))
        pending = []
        lines.append(_Line(raw, key, leaf=len(leaves) - 1))
    metadata = unflatten_metadata(flat, source=source) if flat else None
    return ParsedDotenv(lines, leaves, final_newline, flat, metadata)


def format_value(value: Any) -> str:
    """A value as sops writes it: newlines escaped in strings, Go's ``ValToString`` otherwise."""
    if isinstance(value, str):
        return value.replace("\n", "\\n")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float_g(value)
    if isinstance(value, Timestamp):
        value = value.to_datetime()
    if isinstance(value, datetime | date):
        return _rfc3339(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise FormatError(f"a value of type {type(value).__name__} cannot be written to dotenv")


def _go_float_g(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'G', -1, 64)``, with ``.0`` added to integral results."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point in the digit string
    minus = "-" if sign else ""
    if value == 0:
        return f"{minus}0.0"
    exp = point - 1
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}E{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{minus}{text}{'0' * (point - len(text))}.0"
    return f"{minus}{text[:point]}.{text[point:]}"


def _rfc3339(value: datetime | date) -> str:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return Timestamp.from_datetime(value.replace(microsecond=0)).text


# -- metadata flattening -------------------------------------------------------------------------


def flatten_metadata(mapping: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The ``sops`` mapping as sorted ``(key, value)`` pairs, keys without the ``sops_`` prefix.

    Nested mappings add ``__map_<key>``, lists ``__list_<index>``; empty lists and
    ``None`` produce nothing; newlines in values are written as ``\\n``.
    """
    flat: dict[str, str] = {}

    def visit(key: str, value: Any) -> None:
        if isinstance(value, Mapping):
            for sub, item in value.items():
                visit(f"{key}{_MAP}{sub}", item)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                visit(f"{key}{_LIST}{index}", item)
        elif value is not None:
            flat[key] = format_value(value)

    for key, value in mapping.items():
        visit(str(key), value)
    return sorted(flat.items())


def unflatten_metadata(flat: Mapping[str, str], *, source: str = "") -> dict[str, Any]:
    """Rebuild the ``sops`` mapping from flattened entries (keys without the prefix).

    ``mac_only_encrypted`` becomes a bool and ``shamir_threshold`` an int, as sops reads them.
    """
    root: dict[str, Any] = {}
    for flat_key in sorted(flat):
        tokens = _tokenize(flat_key, source)
        node: Any = root
        for token, following in zip(tokens, [*tokens[1:], None], strict=True):
            if following is None:
                _store(node, token, flat[flat_key], flat_key, source)
                break
            child = _get(node, token)
            if child is None:
                child = {} if isinstance(following, str) else []
                _store(node, token, child, flat_key, source)
            elif not isinstance(child, dict if isinstance(following, str) else list):
                raise _conflict(flat_key, source)
            node = child
    for name in list(root):
        if name == "mac_only_encrypted":
            root[name] = root[name] == "true"
        elif name == "shamir_threshold":
            root[name] = _threshold(root[name], source)
    return root


def _tokenize(flat_key: str, source: str) -> list[str | int]:
    parts = _SEPARATORS.split(flat_key)
    tokens: list[str | int] = [parts[0]]
    for separator, part in zip(parts[1::2], parts[2::2], strict=True):
        if separator == _MAP:
            tokens.append(part)
        elif part.isdigit() and part.isascii():
            tokens.append(int(part))
        else:
            raise FormatError(
                f"metadata key sops_{flat_key} has a bad list index", file=source or None
            )
    return tokens


def _get(node: Any, token: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    assert isinstance(node, list) and isinstance(token, int)
    return node[token] if token < len(node) else None


def _store(node: Any, token: str | int, value: Any, flat_key: str, source: str) -> None:
    if isinstance(node, dict) and isinstance(token, str):
        if token in node:
            raise _conflict(flat_key, source)
        node[token] = value
        return
    if not isinstance(node, list) or not isinstance(token, int):
        raise _conflict(flat_key, source)
    if token > 10_000:
        raise FormatError(f"metadata key sops_{flat_key} has a bad list index", file=source or None)
    node.extend([None] * (token + 1 - len(node)))
    if node[token] is not None:
        raise _conflict(flat_key, source)
    node[token] = value


def _conflict(flat_key: str, source: str) -> FormatError:
    return FormatError(
        f"metadata key sops_{flat_key} conflicts with another sops_ key",
        file=source or None,
        hint="the file is damaged",
    )


def _threshold(value: Any, source: str) -> int:
    text = str(value)
    if re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    try:
        number = float(text)  # older sops wrote it as a float
    except ValueError:
        number = float("nan")
    if not re.fullmatch(r"[+-]?[0-9.eE+-]+", text) or not number.is_integer():
        raise FormatError("sops_shamir_threshold is not an integer", file=source or None)
    return int(number)
