"""The JSON store: a JSON object's leaves in sops' walk order, and sops' JSON layout.

JSON has no comments to keep, so unlike the YAML store the whole document is
re-serialised, exactly as sops 3.11 writes it: ``"key": value`` pairs indented
with one tab per level (``stores.json.indent`` may change that), empty
collections as ``{}``/``[]``, Go's string escaping (``<``, ``>``, ``&``, U+2028
and U+2029 as ``\\u`` escapes, everything else as UTF-8), the ``sops`` object
last, and a final newline.

Numbers follow Go's ``encoding/json`` as sops 3.11 uses it: every JSON number is
a float64, so ``7`` is encrypted as ``type:float`` (plaintext bytes ``7``) and
written back as ``7``, large integers lose precision beyond 2**53 like in sops,
and floats print the way Go's ``json.Marshal`` does (``1e+21``, ``1.5e-7``,
``-0``). ``null`` is kept and is not a leaf.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from kagura_ops.errors import FormatError, InputError
from kagura_ops.keys.registry import KEY_KINDS
from kagura_ops.sops.codec import Timestamp, format_float
from kagura_ops.sops.yamlstore import Leaf

if TYPE_CHECKING:
    from kagura_ops.sops.metadata import Metadata

__all__ = [
    "ParsedJson",
    "dump_json",
    "go_float",
    "go_scalar",
    "go_string",
    "json_metadata",
    "parse_json",
]

METADATA_KEY = "sops"
DEFAULT_INDENT = "\t"

#: The key lists of one key group in the order sops writes them (its ``keygroup`` struct).
_GROUP_ORDER = ("pgp", "kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age")
#: Key lists that sops writes inside a key group even when empty: as ``null`` in JSON.
_GROUP_ALWAYS = ("hc_vault", "age")

_SURROGATE = re.compile("[\ud800-\udfff]")
_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object as decoded: its members in file order, duplicates included."""


@dataclass
class ParsedJson:
    """A parsed JSON file: the object without its ``sops`` member, and its leaves."""

    root: dict[str, Any]
    leaves: list[Leaf]
    raw_metadata: Any = None
    has_metadata: bool = False
    indent: str = DEFAULT_INDENT
    """One level of indentation when rendering (sops' ``stores.json.indent``; tab by default)."""

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The top-level ``sops`` object, or None for a plaintext file."""
        if not self.has_metadata:
            return None
        if isinstance(self.raw_metadata, dict):
            return self.raw_metadata
        return {"__scalar__": self.raw_metadata}

    def trees(self) -> list[dict[str, Any]]:
        return [self.root]

    def render_with(self, values: list[Any], metadata: Metadata | None) -> str:
        """:meth:`render` with the metadata written as sops' ``sops`` object."""
        return self.render(values, json_metadata(metadata) if metadata is not None else None)

    def render(self, values: list[Any], metadata: Mapping[str, Any] | None) -> str:
        """The whole file, each leaf replaced by ``values[i]`` (``None``: unchanged).

        ``metadata`` is written as the last member, ``sops``; None writes the
        file without metadata (a decrypted file).
        """
        if len(values) != len(self.leaves):
            raise ValueError("one value per leaf is needed")
        replaced = iter(
            leaf.value if new is None else new
            for leaf, new in zip(self.leaves, values, strict=True)
        )
        tree: dict[str, Any] = _substitute(self.root, replaced)
        if metadata is not None:
            tree[METADATA_KEY] = metadata
        return dump_json(tree, self.indent) + "\n"


def parse_json(text: str, *, source: str = "<json>", indent: str | None = None) -> ParsedJson:
    """Parse a JSON file into its object, its leaves (values in walk order) and metadata.

    Raises :class:`InputError` for invalid JSON, a top level that is not an
    object, duplicate keys, and numbers a float64 cannot hold.
    """
    try:
        decoded = json.loads(
            text,
            object_pairs_hook=_Pairs,
            parse_int=_number,
            parse_float=_number,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise InputError(
            f"invalid JSON: {exc.msg}", file=f"{source}:{exc.lineno}:{exc.colno}"
        ) from None
    except _NumberError as exc:
        raise InputError(str(exc), file=source) from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", file=source) from None
    if not isinstance(decoded, _Pairs):
        raise InputError(
            f"the top level of a JSON file must be an object, not {_kind(decoded)}",
            file=source,
            hint='SOPS only supports JSON objects; wrap the content, e.g. {"data": [...]}',
        )
    leaves: list[Leaf] = []
    root: dict[str, Any] = {}
    parsed = ParsedJson(root, leaves, indent=indent if indent is not None else DEFAULT_INDENT)
    walker = _Walker(source, leaves)
    try:
        for key, value in decoded:
            key = _clean(key)
            if key in root or (key == METADATA_KEY and parsed.has_metadata):
                raise walker.duplicate((key,))
            if key == METADATA_KEY:
                parsed.has_metadata = True
                parsed.raw_metadata = walker.plain(value, (key,))
                continue
            root[key] = walker.build(value, (key,), (key,))
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply", file=source) from None
    return parsed


# -- parsing -----------------------------------------------------------------------------------


class _NumberError(ValueError):
    pass


def _number(literal: str) -> float:
    """Go decodes every JSON number into a float64; it rejects what overflows one."""
    value = float(literal)
    if math.isinf(value):
        raise _NumberError("a number is out of the range of a 64-bit float")
    return value


def _constant(name: str) -> Any:
    raise _NumberError(f"invalid JSON: {name} is not a JSON value")


def _clean(text: str) -> str:
    """Lone surrogates from ``\\ud800`` escapes become U+FFFD, as in Go."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


class _Walker:
    """Turns decoded pairs into dicts, collecting leaves in sops' walk order."""

    def __init__(self, source: str, leaves: list[Leaf]) -> None:
        self.source = source
        self.leaves = leaves

    def duplicate(self, keys: tuple[str | int, ...]) -> InputError:
        shown = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")
        return InputError(
            f"duplicate key {shown!r}", file=self.source, hint="each key may appear once per object"
        )

    def build(self, node: Any, path: tuple[str, ...], keys: tuple[str | int, ...]) -> Any:
        if isinstance(node, _Pairs):
            out: dict[str, Any] = {}
            for key, value in node:
                key = _clean(key)
                if key in out:
                    raise self.duplicate((*keys, key))
                out[key] = self.build(value, (*path, key), (*keys, key))
            return out
        if isinstance(node, list):
            return [self.build(item, path, (*keys, i)) for i, item in enumerate(node)]
        if node is None:
            return None
        if isinstance(node, str):
            node = _clean(node)
        self.leaves.append(Leaf(path, keys, node))
        return node

    def plain(self, node: Any, keys: tuple[str | int, ...]) -> Any:
        """The metadata object as plain values (numbers stay as decoded)."""
        if isinstance(node, _Pairs):
            out: dict[str, Any] = {}
            for key, value in node:
                if key in out:
                    raise self.duplicate((*keys, key))
                out[key] = self.plain(value, (*keys, key))
            return out
        if isinstance(node, list):
            return [self.plain(item, (*keys, i)) for i, item in enumerate(node)]
        if isinstance(node, float) and node.is_integer():
            return int(node)
        return node


# -- rendering ---------------------------------------------------------------------------------


def _substitute(node: Any, values: Iterator[Any]) -> Any:
    """A copy of ``node`` with every leaf taken, in walk order, from ``values``."""
    if isinstance(node, dict):
        return {key: _substitute(value, values) for key, value in node.items()}
    if isinstance(node, list):
        return [_substitute(item, values) for item in node]
    if node is None:
        return None
    return next(values)


def json_metadata(metadata: Metadata) -> dict[str, Any]:
    """The ``sops`` object as sops 3.11 marshals it: key groups list ``pgp`` first and
    always carry ``hc_vault`` and ``age`` (``null`` when empty)."""
    out = metadata.to_mapping()
    groups = out.get("key_groups")
    if isinstance(groups, list):
        out["key_groups"] = [_json_group(group) for group in groups]
    return out


def _json_group(group: Mapping[str, Any]) -> dict[str, Any]:
    ordered: dict[str, Any] = {}
    for kind in (*_GROUP_ORDER, *(k for k in KEY_KINDS if k not in _GROUP_ORDER)):
        entries = group.get(kind)
        if entries:
            ordered[kind] = entries
        elif kind in _GROUP_ALWAYS:
            ordered[kind] = None
    for kind, entries in group.items():
        if kind not in ordered and entries:
            ordered[kind] = entries
    return ordered


def dump_json(value: Any, indent: str = DEFAULT_INDENT) -> str:
    """``value`` the way sops writes JSON (Go's ``json.Marshal`` then ``json.Indent``).

    No final newline; with ``indent=""`` nested values still go on lines of their own.
    """
    out: list[str] = []
    _emit(value, indent, 0, out)
    return "".join(out)


def _emit(value: Any, indent: str, depth: int, out: list[str]) -> None:
    if isinstance(value, Mapping):
        if not value:
            out.append("{}")
            return
        inner = "\n" + indent * (depth + 1)
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            out.append(("," if i else "") + inner + go_string(str(key)) + ": ")
            _emit(item, indent, depth + 1, out)
        out.append("\n" + indent * depth + "}")
    elif isinstance(value, list | tuple):
        if not value:
            out.append("[]")
            return
        inner = "\n" + indent * (depth + 1)
        out.append("[")
        for i, item in enumerate(value):
            out.append(("," if i else "") + inner)
            _emit(item, indent, depth + 1, out)
        out.append("\n" + indent * depth + "]")
    else:
        out.append(go_scalar(value))


def go_string(text: str) -> str:
    """A JSON string literal escaped like Go's ``encoding/json`` (HTML-safe)."""
    return json.dumps(text, ensure_ascii=False).translate(_GO_ESCAPES)


def go_float(value: float) -> str:
    """A float64 as Go's ``json.Marshal`` writes it: ``7``, ``0.1``, ``1e+21``, ``1e-7``."""
    if math.isnan(value) or math.isinf(value):
        raise FormatError("a decrypted number is not finite and cannot be written as JSON")
    magnitude = abs(value)
    if magnitude == 0 or 1e-6 <= magnitude < 1e21:
        return format_float(value)
    # Python's repr uses exponent form here too, with the same shortest digits.
    return re.sub(r"e-0(\d)$", r"e-\1", repr(value))


def go_scalar(value: Any) -> str:
    """One leaf value as JSON text."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return go_string(value)
    if isinstance(value, Timestamp):
        return go_string(value.text)
    if isinstance(value, datetime | date):
        return go_string(Timestamp.from_datetime(value).text)
    if isinstance(value, bytes):
        return go_string(base64.b64encode(value).decode("ascii"))
    raise FormatError(f"a value of type {type(value).__name__} cannot be written as JSON")
