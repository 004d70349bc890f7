"""Changing one value of a plaintext document: ``set`` and ``unset``.

The edit is made on the *plaintext* text and the result re-encrypted with the
file's previous version, so only the edited value's ciphertext changes. For YAML
an existing scalar is replaced in place (every other byte stays); adding or
removing keys goes through a ruamel.yaml round trip, which keeps comments and
key order.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

from kagura_ops.errors import InputError
from kagura_ops.sops.codec import Comment, Timestamp

__all__ = ["set_value", "unset_value"]


def _show(path: Sequence[str | int]) -> str:
    return "".join(f'["{p}"]' if isinstance(p, str) else f"[{p}]" for p in path)


def set_value(
    text: str, fmt: str, path: Sequence[str | int], value: Any, *, source: str = ""
) -> str:
    """``text`` with the value at ``path`` set (intermediate mappings are created)."""
    if not path:
        raise InputError("cannot replace the whole document", file=source or None)
    if fmt == "yaml":
        return _yaml_set(text, path, value, source)
    if fmt == "dotenv":
        return _dotenv_set(text, path, value, source)
    tree = json.loads(text)
    _tree_set(tree, path, value, source)
    return json.dumps(tree, indent=4, ensure_ascii=False) + "\n"


def unset_value(text: str, fmt: str, path: Sequence[str | int], *, source: str = "") -> str:
    """``text`` without the value at ``path``; a missing path is an :class:`InputError`."""
    if not path:
        raise InputError("cannot remove the whole document", file=source or None)
    if fmt == "yaml":
        return _yaml_round_trip(text, source, lambda tree: _tree_unset(tree, path, source))
    if fmt == "dotenv":
        return _dotenv_set(text, path, None, source, remove=True)
    tree = json.loads(text)
    _tree_unset(tree, path, source)
    return json.dumps(tree, indent=4, ensure_ascii=False) + "\n"


def _tree_set(tree: Any, path: Sequence[str | int], value: Any, source: str) -> None:
    node = tree
    for depth, part in enumerate(path[:-1]):
        nxt = path[depth + 1]
        try:
            node = node[part]
        except KeyError:
            node[part] = [] if isinstance(nxt, int) else {}
            node = node[part]
        except (IndexError, TypeError):
            raise InputError(
                f"key path {_show(path[: depth + 1])} not found", file=source or None
            ) from None
    last = path[-1]
    try:
        if isinstance(node, list) and isinstance(last, int) and last == len(node):
            node.append(value)
        else:
            node[last] = value
    except (IndexError, TypeError):
        raise InputError(f"key path {_show(path)} cannot be set", file=source or None) from None


def _tree_unset(tree: Any, path: Sequence[str | int], source: str) -> None:
    node = tree
    try:
        for part in path[:-1]:
            node = node[part]
        del node[path[-1]]
    except (KeyError, IndexError, TypeError):
        raise InputError(f"key path {_show(path)} not found", file=source or None) from None


def _yaml_set(text: str, path: Sequence[str | int], value: Any, source: str) -> str:
    from kagura_ops.sops.yamlscalars import render_scalar
    from kagura_ops.sops.yamlstore import parse_yaml

    parsed = parse_yaml(text, source=source)
    scalar = isinstance(value, str | int | float | bool | Timestamp) or value is None
    if scalar:
        for leaf in parsed.leaves:
            if (
                leaf.start >= 0
                and not isinstance(leaf.value, Comment)
                and list(leaf.keys) == list(path)
            ):
                new = render_scalar(value, flow=leaf.flow, indent=leaf.indent)
                return text[: leaf.start] + new + text[leaf.end :]
    return _yaml_round_trip(text, source, lambda tree: _tree_set(tree, path, _plain(value), source))


def _plain(value: Any) -> Any:
    if isinstance(value, Timestamp):
        return value.to_datetime()
    return value


def _yaml_round_trip(text: str, source: str, change: Any) -> str:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 4096
    indent = _detect_indent(text)
    offset = _detect_sequence_offset(text)
    yaml.indent(mapping=indent, sequence=offset + 2, offset=offset)
    try:
        docs = list(yaml.load_all(text))
    except YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}", file=source or None) from None
    if not docs or docs[0] is None:
        docs = [{}]
    change(docs[0])
    out = io.StringIO()
    yaml.dump_all(docs, out)
    return out.getvalue()


def _detect_sequence_offset(text: str) -> int:
    """How far a block sequence's dashes sit right of their parent key (0 or more)."""
    previous = ""
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if stripped.startswith("- ") and previous.rstrip().endswith(":"):
            parent = len(previous) - len(previous.lstrip(" "))
            return max(0, len(line) - len(stripped) - parent)
        if stripped and not stripped.startswith("#"):
            previous = line
    return 0


def _detect_indent(text: str) -> int:
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        if line and line[0] == " " and stripped and not stripped.startswith(("#", "- ")):
            return len(line) - len(stripped)
    return 4 if not text.strip() else 2


def _dotenv_set(
    text: str, path: Sequence[str | int], value: Any, source: str, *, remove: bool = False
) -> str:
    if len(path) != 1 or not isinstance(path[0], str):
        raise InputError("dotenv files only have top-level keys", file=source or None)
    key = path[0]
    lines = text.splitlines()
    out: list[str] = []
    found = False
    for line in lines:
        if (
            not line.lstrip().startswith("#")
            and "=" in line
            and line.split("=", 1)[0].strip() == key
        ):
            found = True
            if not remove:
                out.append(f"{key}={_dotenv_value(value)}")
            continue
        out.append(line)
    if not found:
        if remove:
            raise InputError(f"key path {_show(path)} not found", file=source or None)
        out.append(f"{key}={_dotenv_value(value)}")
    return "\n".join(out) + "\n"


def _dotenv_value(value: Any) -> str:
    from kagura_ops.sops.dotenvstore import format_value

    return "" if value is None else format_value(value)
