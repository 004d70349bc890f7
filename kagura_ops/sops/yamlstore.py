"""The YAML store: a file's structure, leaves and comments, and in-place rewriting.

We never re-emit a whole YAML document. The file is parsed into events (libyaml
through ``ruamel.yaml.clib`` when available, the pure-Python parser otherwise),
which give every scalar's exact character span. Encrypting or decrypting then
*splices* new text into those spans and leaves every other byte alone: key order,
comments, blank lines, quoting and indentation survive, the diff of a re-encrypt
is exactly the values that changed, and a 1,000-value file is handled in
milliseconds.

Comments are found in the text between scalars. Like sops, the additional data
of a comment is the key path of the mapping it sits in; which mapping that is
follows from its position (see :func:`_comment_context`).

Aliases are expanded the way sops does it (the aliased content is written in
place, here as a flow collection) because each copy is encrypted under its own
key path.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kagura_ops.errors import InputError
from kagura_ops.sops.codec import Comment
from kagura_ops.sops.yamlscalars import render_scalar, resolve_plain, resolve_tagged

if TYPE_CHECKING:
    from kagura_ops.sops.metadata import Metadata

__all__ = ["Leaf", "ParsedYaml", "parse_yaml"]

METADATA_KEY = "sops"


@dataclass(slots=True)
class Leaf:
    """One value (or comment) of the tree, in sops walk order."""

    path: tuple[str, ...]
    """Mapping keys from the root: the additional data is ``":".join(path) + ":"``."""
    keys: tuple[str | int, ...]
    """The full path including list indices (what ``--extract`` and ``set`` address)."""
    value: Any
    start: int = -1
    """Span of the text to replace; -1 for values that live inside an expanded alias."""
    end: int = -1
    flow: bool = False
    indent: int = 0
    comments: tuple[tuple[str, ...], ...] = ()
    """The comments stack above the leaf (only filled when a comment rule needs it)."""
    alternatives: tuple[tuple[str, ...], ...] = ()
    """For comments: other plausible mapping paths, tried when decrypting files others wrote."""
    doc: int = 0
    order: int = -1
    """Text position used to interleave comments (the alias position for expanded values)."""

    def __post_init__(self) -> None:
        if self.order < 0:
            self.order = self.start

    @property
    def is_comment(self) -> bool:
        return isinstance(self.value, Comment)

    @property
    def aad(self) -> str:
        return ":".join(self.path) + ":"


@dataclass(slots=True)
class _Alias:
    """A collection alias: ``value`` is the expanded content, replacing ``start:end``."""

    start: int
    end: int
    value: Any
    leaves: list[Leaf]


@dataclass(slots=True)
class _Doc:
    root: dict[str, Any]
    end: int
    metadata: dict[str, Any] | None = None
    metadata_span: tuple[int, int] | None = None
    indent: int = 4


@dataclass
class ParsedYaml:
    """A parsed YAML file: its text, its documents and its leaves in walk order."""

    text: str
    documents: list[_Doc]
    leaves: list[Leaf]
    aliases: list[_Alias] = field(default_factory=list)

    @property
    def metadata(self) -> dict[str, Any] | None:
        """The ``sops:`` block of the first document (sops repeats it in every document)."""
        return self.documents[0].metadata if self.documents else None

    def trees(self) -> list[dict[str, Any]]:
        return [doc.root for doc in self.documents]

    def value_leaves(self) -> Iterator[Leaf]:
        return (leaf for leaf in self.leaves if not isinstance(leaf.value, Comment))

    def render_with(self, values: list[Any], metadata: Metadata | None) -> str:
        """:meth:`render` with the metadata written as a YAML block."""
        return self.render(values, metadata.to_yaml_block() if metadata is not None else None)

    def render(self, values: list[Any], metadata_block: str | None) -> str:
        """The file with each leaf's text replaced by ``values[i]`` (``None``: unchanged).

        Values are final text for comments (without ``#``) and Python values for
        scalars (rendered to YAML here). ``metadata_block`` is the ``sops:``
        mapping as YAML text (written at the end of every document), or None to
        write the file without metadata.
        """
        edits: list[tuple[int, int, str]] = []
        for leaf, new in zip(self.leaves, values, strict=True):
            if new is None or leaf.start < 0:
                continue
            if isinstance(leaf.value, Comment):
                edits.append((leaf.start, leaf.end, str(new)))
            else:
                edits.append((leaf.start, leaf.end, _scalar_text(new, leaf)))
        index = {id(leaf): i for i, leaf in enumerate(self.leaves)}
        for alias in self.aliases:
            rendered = [
                values[index[id(leaf)]] if values[index[id(leaf)]] is not None else leaf.value
                for leaf in alias.leaves
            ]
            edits.append((alias.start, alias.end, _flow_text(alias.value, iter(rendered))))
        for doc in self.documents:
            if doc.metadata_span is not None:
                edits.append((doc.metadata_span[0], doc.metadata_span[1], ""))
            if metadata_block is not None:
                edits.append((doc.end, doc.end, _indent_block(metadata_block, doc.indent)))
        edits.sort(key=lambda e: (e[0], e[1]))
        out: list[str] = []
        pos = 0
        text = self.text
        for start, end, new_text in edits:
            out.append(text[pos:start])
            # Appending the metadata: make sure it starts on a line of its own.
            if start == end and new_text.startswith("sops:") and not _ends_with_newline(out):
                out.append("\n")
            out.append(new_text)
            pos = end
        out.append(text[pos:])
        return "".join(out)


def _ends_with_newline(pieces: list[str]) -> bool:
    for piece in reversed(pieces):
        if piece:
            return piece.endswith("\n")
    return True


def _scalar_text(value: Any, leaf: Leaf) -> str:
    if isinstance(value, str) and value.startswith("ENC[AES256_GCM,"):
        return f'"{value}"' if leaf.flow else value
    return render_scalar(value, flow=leaf.flow, indent=leaf.indent)


def _flow_text(value: Any, leaf_values: Iterator[Any]) -> str:
    """An expanded alias as a JSON-style flow collection, leaves taken in walk order."""
    if isinstance(value, dict):
        items = (f"{json.dumps(k)}: {_flow_text(v, leaf_values)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow_text(v, leaf_values) for v in value) + "]"
    if value is None:
        return "null"
    new = next(leaf_values)
    if isinstance(new, str):
        return json.dumps(new, ensure_ascii=False)
    return render_scalar(new, flow=True)


def _indent_block(block: str, indent: int) -> str:
    """Re-indent a 4-space metadata block to ``indent`` spaces per level.

    A line's column maps through its parent's: one level deeper adds ``indent``;
    the content of a ``- `` item sits two columns right of its dash in both.
    """
    if indent == 4:
        return block
    lines = []
    stack: list[tuple[int, int]] = [(0, 0)]  # (old column, new column) of open levels
    for line in block.splitlines(keepends=True):
        stripped = line.lstrip(" ")
        if not stripped.strip():
            lines.append(stripped)
            continue
        column = len(line) - len(stripped)
        while len(stack) > 1 and stack[-1][0] > column:
            stack.pop()
        old, new = stack[-1]
        if column > old:
            new += indent
            stack.append((column, new))
        if stripped.startswith("- "):
            stack.append((column + 2, new + 2))
        lines.append(" " * new + stripped)
    return "".join(lines)


# -- parsing -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _Ctx:
    """A collection in the document: where its entries start and its key path."""

    path: tuple[str, ...]
    column: int
    depth: int
    parent: _Ctx | None
    flow: bool


@dataclass(slots=True)
class _Frame:
    container: Any
    ctx: _Ctx
    keys: tuple[str | int, ...]
    is_map: bool
    metadata: bool
    key: str | None = None
    key_start: int = -1
    key_line: int = 0


def _events(text: str, source: str) -> list[Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError

    try:
        yaml = YAML(typ="safe", pure=False)
        return list(yaml.parse(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InputError(f"invalid YAML: {exc.problem or exc.context}", file=where) from None
    except Exception as exc:  # libyaml reports some errors without marks
        raise InputError(f"invalid YAML: {exc}", file=source) from None


def _line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def parse_yaml(text: str, *, source: str = "<yaml>", comment_stacks: bool = False) -> ParsedYaml:
    """Parse ``text`` into documents, leaves (values and comments) and the sops metadata.

    ``comment_stacks`` fills :attr:`Leaf.comments` (needed for the comment regex rules).
    """
    from ruamel.yaml.events import (
        AliasEvent,
        DocumentEndEvent,
        DocumentStartEvent,
        MappingEndEvent,
        MappingStartEvent,
        ScalarEvent,
        SequenceEndEvent,
        SequenceStartEvent,
    )

    events = _events(text, source)
    documents: list[_Doc] = []
    leaves: list[Leaf] = []
    aliases: list[_Alias] = []
    anchors: dict[str, Any] = {}
    spans: list[tuple[int, int]] = []
    # Entries (mapping keys and sequence items) in text order, for placing comments.
    entry_starts: list[int] = []
    entry_ctx: list[_Ctx] = []
    stack: list[_Frame] = []
    doc_index = -1
    root: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    metadata_span: tuple[int, int] | None = None
    metadata_start = -1
    indent = 4

    def where(mark: Any) -> str:
        return f"{source}:{mark.line + 1}:{mark.column + 1}"

    def add_value(
        value: Any, event: Any, frame: _Frame
    ) -> tuple[tuple[str, ...], tuple[str | int, ...]]:
        if frame.is_map:
            key = frame.key
            assert key is not None
            if key in frame.container:
                raise InputError(
                    f"duplicate key {'.'.join(map(str, (*frame.keys, key)))!r}",
                    file=where(event.start_mark),
                    hint="each key may appear once per mapping",
                )
            frame.container[key] = value
            frame.key = None
            return (*frame.ctx.path, key), (*frame.keys, key)
        frame.container.append(value)
        index = len(frame.container) - 1
        entry_starts.append(event.start_mark.index)
        entry_ctx.append(frame.ctx)
        return frame.ctx.path, (*frame.keys, index)

    for event in events:
        if isinstance(event, DocumentStartEvent):
            doc_index += 1
            root = None
            metadata = None
            metadata_span = None
            continue
        if isinstance(event, DocumentEndEvent):
            end = event.start_mark.index
            if metadata is not None and root is not None:
                root.pop(METADATA_KEY, None)
            documents.append(
                _Doc(
                    root if root is not None else {},
                    end,
                    metadata,
                    metadata_span,
                    indent,
                )
            )
            continue
        if isinstance(event, MappingStartEvent | SequenceStartEvent):
            is_map = isinstance(event, MappingStartEvent)
            container: Any = {} if is_map else []
            flow = bool(event.flow_style)
            if not stack:
                if not is_map:
                    raise InputError(
                        "the top level of a YAML document must be a mapping",
                        file=where(event.start_mark),
                    )
                root = container
                ctx = _Ctx((), event.start_mark.column, 0, None, flow)
                frame = _Frame(container, ctx, (), True, False)
            else:
                parent = stack[-1]
                if parent.is_map and parent.key is None:
                    raise InputError(
                        "complex (non-scalar) mapping keys are not supported",
                        file=where(event.start_mark),
                    )
                in_metadata = parent.metadata
                if (
                    parent.is_map
                    and parent.ctx.depth == 0
                    and parent.key == METADATA_KEY
                    and not parent.metadata
                ):
                    in_metadata = True
                    metadata_start = parent.key_start
                path, keys = add_value(container, event, parent)
                ctx = _Ctx(path, event.start_mark.column, parent.ctx.depth + 1, parent.ctx, flow)
                frame = _Frame(container, ctx, keys, is_map, in_metadata)
                if in_metadata and not parent.metadata:
                    metadata = container
                if not flow and not is_map and not in_metadata:
                    # Block sequences start at their first dash.
                    entry_starts.append(event.start_mark.index)
                    entry_ctx.append(ctx)
                if ctx.depth == 1 and not flow and is_map and not in_metadata:
                    step = event.start_mark.column - parent.ctx.column
                    if step > 0:
                        indent = step
            if event.anchor:
                anchors[event.anchor] = container
            stack.append(frame)
            continue
        if isinstance(event, MappingEndEvent | SequenceEndEvent):
            frame = stack.pop()
            if frame.metadata and stack and not stack[-1].metadata:
                metadata_span = (_line_start(text, metadata_start), event.start_mark.index)
            continue
        if isinstance(event, ScalarEvent):
            frame = stack[-1]
            start, end = event.start_mark.index, event.end_mark.index
            spans.append((start, end))
            plain = event.style in (None, "") and event.implicit[0]
            if frame.is_map and frame.key is None:
                key = resolve_plain(event.value) if plain else event.value
                if not isinstance(key, str):
                    raise InputError(
                        f"mapping key {event.value!r} is not a string; quote it",
                        file=where(event.start_mark),
                        hint="SOPS files only support string keys",
                    )
                frame.key = key
                frame.key_start = start
                if not frame.metadata:
                    entry_starts.append(start)
                    entry_ctx.append(frame.ctx)
                continue
            if plain:
                value = resolve_plain(event.value)
            elif event.tag and event.tag not in ("!", "tag:yaml.org,2002:str"):
                value = resolve_tagged(event.value, event.tag)
            else:
                value = event.value
            if frame.is_map and frame.ctx.depth == 0 and frame.key == METADATA_KEY:
                metadata = {"__scalar__": value}
                metadata_start = frame.key_start
                frame.container[METADATA_KEY] = value
                frame.key = None
                metadata_span = (_line_start(text, metadata_start), _next_line(text, end))
                continue
            path, keys = add_value(value, event, frame)
            if frame.metadata:
                continue
            if value is None:
                continue
            # Where the value text starts, past any anchor or tag properties.
            vstart = start
            if event.anchor or (event.tag and not plain):
                vstart = _skip_properties(text, start)
            vend = end
            if event.style in ("|", ">"):
                while vend > vstart and text[vend - 1] in " \n\r":
                    vend -= 1
            owner = (
                frame.ctx.column
                if not frame.is_map
                else _column(text, frame.key_start if frame.key_start >= 0 else start)
            )
            leaf = Leaf(
                path, keys, value, vstart, vend, frame.ctx.flow, owner + indent, doc=doc_index
            )
            leaves.append(leaf)
            if event.anchor:
                anchors[event.anchor] = value
            continue
        if isinstance(event, AliasEvent):
            frame = stack[-1]
            if frame.is_map and frame.key is None:
                raise InputError(
                    "aliases as mapping keys are not supported", file=where(event.start_mark)
                )
            if event.anchor not in anchors:
                raise InputError(f"unknown alias *{event.anchor}", file=where(event.start_mark))
            target = anchors[event.anchor]
            start, end = event.start_mark.index, event.end_mark.index
            spans.append((start, end))
            copied = _deep_copy(target)
            path, keys = add_value(copied, event, frame)
            if frame.metadata:
                continue
            expanded = list(_expand(copied, path, keys, doc_index, start))
            if isinstance(copied, dict | list):
                aliases.append(_Alias(start, end, copied, expanded))
                leaves.extend(expanded)
            elif copied is not None:
                leaf = Leaf(
                    path,
                    keys,
                    copied,
                    start,
                    end,
                    frame.ctx.flow,
                    frame.ctx.column + indent,
                    doc=doc_index,
                )
                leaves.append(leaf)
            continue

    comments = _find_comments(text, spans, documents)
    if comments:
        _place_comments(comments, leaves, entry_starts, entry_ctx)
        if comment_stacks:
            _fill_comment_stacks(leaves)
    return ParsedYaml(text, documents, leaves, aliases)


def _next_line(text: str, index: int) -> int:
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _column(text: str, index: int) -> int:
    return index - _line_start(text, index)


def _skip_properties(text: str, index: int) -> int:
    while index < len(text) and text[index] in "&!":
        while index < len(text) and text[index] not in " \t\n":
            index += 1
        while index < len(text) and text[index] in " \t\n":
            index += 1
    return index


def _deep_copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deep_copy(v) for v in value]
    return value


def _expand(
    value: Any, path: tuple[str, ...], keys: tuple[str | int, ...], doc: int, order: int
) -> Iterator[Leaf]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _expand(v, (*path, k), (*keys, k), doc, order)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _expand(v, path, (*keys, i), doc, order)
    elif value is not None:
        yield Leaf(path, keys, value, flow=True, doc=doc, order=order)


# -- comments ----------------------------------------------------------------------------------


@dataclass(slots=True)
class _RawComment:
    hash_index: int
    end: int
    column: int
    inline: bool
    text: str


def _find_comments(
    text: str, spans: list[tuple[int, int]], documents: list[_Doc]
) -> list[_RawComment]:
    """Every ``#`` comment outside scalar spans."""
    if "#" not in text:
        return []
    found: list[_RawComment] = []
    pos = 0
    bounds = [*spans, (len(text), len(text))]
    for start, end in bounds:
        gap_end = start
        i = text.find("#", pos, gap_end)
        while i >= 0:
            if i == 0 or text[i - 1] in " \t\n\r":
                eol = text.find("\n", i)
                if eol < 0:
                    eol = len(text)
                line_start = _line_start(text, i)
                inline = text[line_start:i].strip() != ""
                body = text[i + 1 : eol].rstrip(" \t\r")
                found.append(_RawComment(i, i + 1 + len(body), i - line_start, inline, body))
                i = text.find("#", eol, gap_end) if eol < gap_end else -1
            else:
                i = text.find("#", i + 1, gap_end)
        pos = max(pos, end)
    return found


def _chain(ctx: _Ctx | None) -> Iterator[_Ctx]:
    while ctx is not None:
        yield ctx
        ctx = ctx.parent


def _comment_context(
    comment: _RawComment, entry_starts: list[int], entry_ctx: list[_Ctx]
) -> list[tuple[str, ...]]:
    """The mapping a comment belongs to (its additional data), best guess first.

    An inline comment belongs to the mapping of the entry on its line. A comment
    on a line of its own belongs to the deepest enclosing collection (around the
    entries before and after it) whose entries start at or left of the ``#``: a
    comment indented like the keys of a nested mapping is in that mapping, one
    at column 0 is at the top level. This matches how Go's yaml.v3 (and so sops)
    attaches head, line and foot comments in the files people write.
    """
    pos = bisect.bisect_left(entry_starts, comment.hash_index)
    prev_ctx = entry_ctx[pos - 1] if pos > 0 else None
    next_ctx = entry_ctx[pos] if pos < len(entry_ctx) else None
    candidates: list[_Ctx] = []
    for ctx in (*_chain(prev_ctx), *_chain(next_ctx)):
        if all(ctx is not c for c in candidates):
            candidates.append(ctx)
    if not candidates:
        return [()]
    if comment.inline and prev_ctx is not None:
        best = prev_ctx
    else:
        fitting = [c for c in candidates if c.column <= comment.column and not c.flow]
        best = (
            max(fitting, key=lambda c: c.depth)
            if fitting
            else min(candidates, key=lambda c: c.depth)
        )
    paths = [best.path]
    for ctx in candidates:
        if ctx.path not in paths:
            paths.append(ctx.path)
    if () not in paths:
        paths.append(())
    return paths


def _place_comments(
    comments: list[_RawComment],
    leaves: list[Leaf],
    entry_starts: list[int],
    entry_ctx: list[_Ctx],
) -> None:
    """Insert comment leaves among the value leaves, in text order."""
    comment_leaves = []
    for comment in comments:
        paths = _comment_context(comment, entry_starts, entry_ctx)
        comment_leaves.append(
            Leaf(
                paths[0],
                (),
                Comment(comment.text),
                comment.hash_index + 1,
                comment.end,
                alternatives=tuple(paths[1:]),
            )
        )
    merged: list[Leaf] = []
    i = 0
    for leaf in leaves:
        while i < len(comment_leaves) and comment_leaves[i].order < leaf.order:
            comment_leaves[i].doc = leaf.doc
            merged.append(comment_leaves[i])
            i += 1
        merged.append(leaf)
    last_doc = leaves[-1].doc if leaves else 0
    for leaf in comment_leaves[i:]:
        leaf.doc = last_doc
        merged.append(leaf)
    leaves[:] = merged


def _fill_comment_stacks(leaves: list[Leaf]) -> None:
    """Approximate sops' comments stack: the comments right above each leaf, by level."""
    pending: dict[tuple[str, ...], list[str]] = {}
    for leaf in leaves:
        if isinstance(leaf.value, Comment):
            pending.setdefault(leaf.path, []).append(leaf.value.value)
            stack = [tuple(pending.get(leaf.path[:i], ())) for i in range(len(leaf.path) + 1)]
            leaf.comments = tuple(stack)
            continue
        levels = [leaf.path[:i] for i in range(len(leaf.path) + 1)]
        leaf.comments = tuple(tuple(pending.get(level, ())) for level in levels)
        for level in levels:
            pending.pop(level, None)
