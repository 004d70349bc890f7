"""Reading one layer file into a tree with positions, markers and secret references.

Plain layers are parsed to YAML nodes (libyaml through ``ruamel.yaml.clib`` when
available) so every key keeps its line and column. Scalars are typed like sops
types them (see :mod:`kagura_ops.sops.yamlscalars`), so a value means the same in
an encrypted and a plain file. Two tags are markers for the merge: ``!reset``
(replace the whole subtree instead of merging into it) and ``!delete`` (remove
the key). YAML merge keys (``<<: *base``) are applied.

Encrypted layers (``*.enc.yaml``, SOPS format) are read *without* decrypting:
each encrypted leaf becomes a :class:`SecretRef` carrying its ``ENC[...]``
string, file and additional data, and the file's ``sops:`` block is kept so the
runtime can unwrap the data key later.
"""

from __future__ import annotations

import bisect
import hashlib
from dataclasses import dataclass, field
from typing import Any

from kagura_ops.compiler.model import Diagnostic, Origin, Path, SecretRef
from kagura_ops.compiler.project import LayerFile

__all__ = ["MARKER_DELETE", "MARKER_RESET", "Layer", "load_layer"]

MARKER_RESET = "reset"
MARKER_DELETE = "delete"
_MARKER_TAGS = {"!reset": MARKER_RESET, "!delete": MARKER_DELETE}


@dataclass
class Layer:
    """One loaded layer file."""

    source: LayerFile
    tree: dict[str, Any]
    origins: dict[Path, Origin]
    markers: dict[Path, str] = field(default_factory=dict)
    sha256: str = ""
    schema_ref: str | None = None
    """The ``$schema:`` named in the file (kagura.yaml), relative to it."""
    sops: dict[str, Any] | None = None
    """The ``sops:`` block of an encrypted layer."""
    diagnostics: list[Diagnostic] = field(default_factory=list)


def load_layer(source: LayerFile) -> Layer:
    """Load ``source``; problems are returned as diagnostics, not raised."""
    try:
        raw = source.read_bytes()
    except OSError as exc:
        layer = Layer(source, {}, {})
        layer.diagnostics.append(
            Diagnostic(f"cannot read: {exc.strerror}", Origin(source.layer, source.display))
        )
        return layer
    digest = hashlib.sha256(raw).hexdigest()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        layer = Layer(source, {}, {}, sha256=digest)
        layer.diagnostics.append(
            Diagnostic("is not UTF-8 text", Origin(source.layer, source.display))
        )
        return layer
    layer = _load_encrypted(source, text) if source.encrypted else _load_plain(source, text)
    layer.sha256 = digest
    return layer


# -- plain layers ------------------------------------------------------------------------------


class _Builder:
    def __init__(self, source: LayerFile) -> None:
        self.source = source
        self.origins: dict[Path, Origin] = {}
        self.markers: dict[Path, str] = {}
        self.diagnostics: list[Diagnostic] = []

    def origin(self, node: Any) -> Origin:
        mark = node.start_mark
        return Origin(self.source.layer, self.source.display, mark.line + 1, mark.column + 1)

    def error(self, message: str, node: Any, path: Path = (), hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(message, self.origin(node), path, hint))

    def convert(self, node: Any, path: Path) -> Any:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        from kagura_ops.sops.yamlscalars import resolve_plain, resolve_tagged

        tag = node.tag or ""
        marker = _MARKER_TAGS.get(tag)
        if marker is not None:
            self.markers[path] = marker
            if marker == MARKER_DELETE:
                return None
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.origins[(*path, index)] = self.origin(item)
                items.append(self.convert(item, (*path, index)))
            return items
        assert isinstance(node, ScalarNode)
        plain = node.style in (None, "")
        core = tag.startswith("tag:yaml.org,2002:")
        if plain and (core or marker is not None):
            # Implicitly typed (ruamel's resolver already tagged it): type it like sops does.
            return resolve_plain(node.value)
        if core and tag != "tag:yaml.org,2002:str":
            return resolve_tagged(node.value, tag)  # an explicit tag on a quoted scalar
        return node.value

    def mapping(self, node: Any, path: Path) -> dict[str, Any]:
        from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                self.error("complex (non-scalar) keys are not supported", key_node, path)
                continue
            if key_node.value == "<<" and key_node.style in (None, ""):
                sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
                for source in sources:
                    if isinstance(source, MappingNode):
                        for k, v in self.mapping(source, path).items():
                            merged.setdefault(k, v)
                    else:
                        self.error(
                            "a merge key (<<) needs a mapping or a list of mappings", source, path
                        )
                continue
            key = key_node.value
            if key_node.style in (None, "") and not (key_node.tag or "").startswith("!"):
                from kagura_ops.sops.yamlscalars import resolve_plain

                resolved = resolve_plain(key)
                if not isinstance(resolved, str):
                    self.error(
                        f"key {key!r} is not a string",
                        key_node,
                        path,
                        hint=f'quote it: "{key}"',
                    )
                    continue
            if key in out:
                first = self.origins.get((*path, key))
                self.error(
                    f"duplicate key {key!r}" + (f" (first at line {first.line})" if first else ""),
                    key_node,
                    path,
                    hint="each key may appear once per mapping",
                )
                continue
            child = (*path, key)
            self.origins[child] = self.origin(key_node)
            out[key] = self.convert(value_node, child)
        for key, value in merged.items():
            out.setdefault(key, value)
        return out


def _load_plain(source: LayerFile, text: str) -> Layer:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError
    from ruamel.yaml.nodes import MappingNode

    builder = _Builder(source)
    layer = Layer(source, {}, builder.origins, builder.markers, diagnostics=builder.diagnostics)
    try:
        documents = list(YAML(typ="safe", pure=False).compose_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        origin = Origin(
            source.layer,
            source.display,
            mark.line + 1 if mark else None,
            mark.column + 1 if mark else None,
        )
        layer.diagnostics.append(Diagnostic(f"invalid YAML: {exc.problem or exc.context}", origin))
        return layer
    except Exception as exc:  # libyaml reports some errors without marks
        layer.diagnostics.append(
            Diagnostic(f"invalid YAML: {exc}", Origin(source.layer, source.display))
        )
        return layer
    documents = [d for d in documents if d is not None]
    if not documents:
        return layer
    if len(documents) > 1:
        builder.error("a layer file holds one YAML document", documents[1])
    root = documents[0]
    if not isinstance(root, MappingNode):
        if getattr(root, "value", None) in ("", None, "~", "null"):
            return layer
        builder.error("the top level must be a mapping", root)
        return layer
    tree = builder.mapping(root, ())
    schema_ref = tree.pop("$schema", None)
    builder.origins.pop(("$schema",), None)
    if schema_ref is not None and not isinstance(schema_ref, str):
        layer.diagnostics.append(
            Diagnostic(
                "$schema must be a path to a JSON Schema file", Origin(source.layer, source.display)
            )
        )
        schema_ref = None
    layer.tree = tree
    layer.schema_ref = schema_ref
    return layer


# -- encrypted layers --------------------------------------------------------------------------


def _load_encrypted(source: LayerFile, text: str) -> Layer:
    from kagura_ops.errors import KaguraOpsError
    from kagura_ops.sops.codec import Comment, is_encrypted
    from kagura_ops.sops.metadata import Metadata
    from kagura_ops.sops.yamlstore import parse_yaml

    layer = Layer(source, {}, {})
    where = Origin(source.layer, source.display)
    try:
        parsed = parse_yaml(text, source=source.display)
    except KaguraOpsError as exc:
        layer.diagnostics.append(Diagnostic(exc.message, where, hint=exc.hint))
        return layer
    if parsed.metadata is None:
        layer.diagnostics.append(
            Diagnostic(
                "is named like an encrypted file but is not encrypted (no sops metadata)",
                where,
                hint=f"encrypt it: kagura-ops encrypt -i {source.display}",
            )
        )
        return layer
    try:
        Metadata.from_mapping(parsed.metadata, source=source.display)
    except KaguraOpsError as exc:
        layer.diagnostics.append(Diagnostic(exc.message, where, hint=exc.hint))
        return layer
    if len(parsed.documents) > 1:
        layer.diagnostics.append(Diagnostic("a layer file holds one YAML document", where))
    line_starts = _line_starts(text)
    tree = parsed.trees()[0] if parsed.documents else {}
    for leaf in parsed.leaves:
        if isinstance(leaf.value, Comment) or leaf.doc != 0 or not leaf.keys:
            continue
        line = bisect.bisect_right(line_starts, leaf.start) if leaf.start >= 0 else None
        column = leaf.start - line_starts[line - 1] + 1 if line is not None else None
        layer.origins[leaf.keys] = Origin(source.layer, source.display, line, column)
        if is_encrypted(leaf.value):
            node: Any = tree
            for part in leaf.keys[:-1]:
                node = node[part]
            node[leaf.keys[-1]] = SecretRef(leaf.value, source.display, leaf.aad)
    layer.tree = tree
    layer.sops = _jsonable(parsed.metadata)
    return layer


def _line_starts(text: str) -> list[int]:
    starts = [0]
    index = text.find("\n")
    while index >= 0:
        starts.append(index + 1)
        index = text.find("\n", index + 1)
    return starts


def _jsonable(value: Any) -> Any:
    from kagura_ops.sops.codec import Timestamp

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Timestamp):
        return value.text
    return value
