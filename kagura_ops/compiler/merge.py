"""Merging layers, lowest precedence first, with provenance.

Mappings merge deeply; scalars and lists replace, unless the schema names a
list strategy for the path (``x-merge``):

* ``replace`` (the default): the higher layer's list wins;
* ``append``: lower items, then higher items;
* ``unique``: like append, skipping items already present;
* ``by-key:<field>``: lists of mappings matched on ``<field>``; matching items
  merge deeply, new ones are appended in order.

Markers in a layer file: ``!reset`` replaces the subtree instead of merging
into it, ``!delete`` removes the key. Every value in the result knows the origin
that set it and the values it overrode (:class:`Provenance`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kagura_ops.compiler.loader import MARKER_DELETE, MARKER_RESET, Layer
from kagura_ops.compiler.model import Diagnostic, Origin, Path, copy_tree

__all__ = ["Merged", "Override", "Provenance", "merge_layers"]


@dataclass(frozen=True)
class Override:
    """A value a higher layer replaced."""

    origin: Origin
    value: Any
    """The old value (a :class:`SecretRef` stays a reference: never a plaintext)."""


@dataclass
class Provenance:
    """Where a resolved value came from and what it replaced (oldest first)."""

    origin: Origin
    overrides: list[Override] = field(default_factory=list)
    strategy: str | None = None
    """The list strategy or marker that shaped the value (``append``, ``reset``...)."""


@dataclass
class Merged:
    tree: dict[str, Any]
    provenance: dict[Path, Provenance]
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Merger:
    def __init__(self, strategy_of: Callable[[Path], str | None]) -> None:
        self.strategy_of = strategy_of
        self.provenance: dict[Path, Provenance] = {}
        self.diagnostics: list[Diagnostic] = []

    def record(
        self, path: Path, origin: Origin | None, old: Any, strategy: str | None = None
    ) -> None:
        if origin is None:
            return
        previous = self.provenance.get(path)
        entry = Provenance(origin, strategy=strategy)
        if previous is not None:
            entry.overrides = [*previous.overrides, Override(previous.origin, old)]
        self.provenance[path] = entry

    def forget(self, path: Path, old: Any) -> None:
        """Drop provenance below ``path``: the subtree ``old`` was replaced or deleted.

        Walks the old value itself (not every recorded path), so replacing values
        costs what they hold, not what the whole tree holds.
        """
        if isinstance(old, dict):
            for key, child in old.items():
                self.provenance.pop((*path, key), None)
                self.forget((*path, key), child)
        elif isinstance(old, list):
            for index, child in enumerate(old):
                self.provenance.pop((*path, index), None)
                self.forget((*path, index), child)

    def adopt(self, value: Any, path: Path, layer: Layer) -> None:
        """Record origins for every node of a subtree taken whole from ``layer``."""
        origin = layer.origins.get(path)
        if origin is not None and path not in self.provenance:
            self.provenance[path] = Provenance(origin)
        if isinstance(value, dict):
            for key, child in value.items():
                self.adopt(child, (*path, key), layer)
        elif isinstance(value, list):
            for index, child in enumerate(value):
                self.adopt(child, (*path, index), layer)

    def merge(self, base: Any, over: Any, path: Path, layer: Layer) -> Any:
        marker = layer.markers.get(path)
        origin = layer.origins.get(path) or Origin(layer.source.layer, layer.source.display)
        if marker == MARKER_RESET:
            self.forget(path, base)
            self.record(path, origin, base, MARKER_RESET)
            self.adopt(over, path, layer)
            return copy_tree(over)
        if isinstance(base, dict) and isinstance(over, dict):
            result = dict(base)
            for key, value in over.items():
                child = (*path, key)
                if layer.markers.get(child) == MARKER_DELETE:
                    if key in result:
                        self.forget(child, result[key])
                        self.record(child, layer.origins.get(child), result.pop(key), MARKER_DELETE)
                        self.provenance.pop(child, None)
                    continue
                if key in result:
                    result[key] = self.merge(result[key], value, child, layer)
                else:
                    result[key] = copy_tree(value)
                    self.adopt(value, child, layer)
            return result
        if isinstance(base, list) and isinstance(over, list):
            strategy = self.strategy_of(path) or "replace"
            merged = self.merge_list(base, over, strategy, path, layer)
            self.forget(path, base)
            self.record(path, origin, base, strategy if strategy != "replace" else None)
            self.adopt(merged, path, layer)
            return merged
        self.forget(path, base)
        self.record(path, origin, base)
        self.adopt(over, path, layer)
        return copy_tree(over)

    def merge_list(
        self, base: list[Any], over: list[Any], strategy: str, path: Path, layer: Layer
    ) -> list[Any]:
        if strategy == "append":
            return [*_copy_list(base), *_copy_list(over)]
        if strategy == "unique":
            out = _copy_list(base)
            for item in over:
                if item not in out:
                    out.append(copy_tree(item))
            return out
        if strategy.startswith("by-key:"):
            field_name = strategy.split(":", 1)[1]
            out = _copy_list(base)
            index = {
                item.get(field_name): i for i, item in enumerate(out) if isinstance(item, dict)
            }
            for item in over:
                key = item.get(field_name) if isinstance(item, dict) else None
                if key is not None and key in index:
                    out[index[key]] = _deep_merge_plain(out[index[key]], item)
                else:
                    if key is None:
                        origin = layer.origins.get(path)
                        self.diagnostics.append(
                            Diagnostic(
                                f"list item has no {field_name!r} field to merge by",
                                origin,
                                path,
                                hint=f"x-merge is by-key:{field_name}",
                            )
                        )
                    out.append(copy_tree(item))
            return out
        return _copy_list(over)


def _deep_merge_plain(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _deep_merge_plain(out[key], value) if key in out else copy_tree(value)
        return out
    return copy_tree(over)


def _copy_list(value: list[Any]) -> list[Any]:
    return [copy_tree(v) for v in value]


def merge_layers(
    layers: Iterable[Layer],
    *,
    defaults: dict[str, Any] | None = None,
    strategy_of: Callable[[Path], str | None] = lambda _path: None,
) -> Merged:
    """Merge ``layers`` (lowest first) over the schema ``defaults``."""
    merger = _Merger(strategy_of)
    tree: dict[str, Any] = {}
    if defaults:
        from pathlib import Path as FilePath

        from kagura_ops.compiler.project import LayerFile

        source = LayerFile("defaults", FilePath("<schema defaults>"), "schema defaults", False)
        default_layer = Layer(source, defaults, {})
        _origins_everywhere(defaults, (), default_layer)
        tree = merger.merge(tree, defaults, (), default_layer)
    for layer in layers:
        tree = merger.merge(tree, layer.tree, (), layer)
    merger.provenance.pop((), None)
    return Merged(tree, merger.provenance, merger.diagnostics)


def _origins_everywhere(value: Any, path: Path, layer: Layer) -> None:
    layer.origins[path] = Origin("defaults")
    if isinstance(value, dict):
        for key, child in value.items():
            _origins_everywhere(child, (*path, key), layer)
    elif isinstance(value, list):
        for index, child in enumerate(value):
            _origins_everywhere(child, (*path, index), layer)
