"""The environment-variable layer: ``KAGURA__LLM__MODEL=gpt-4o`` sets ``llm.model``.

``__`` separates levels, names are lower-cased, values are read as YAML scalars
(``true``, ``42``, ``0.5``; anything else stays a string), the same typing as
the YAML layers. Applied at load time and by ``kagura-ops config get/list``,
never written to a lockfile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kagura_ops.compiler.model import Origin, Path

__all__ = ["PREFIX", "env_overrides"]

PREFIX = "KAGURA__"


def env_overrides(
    environ: Mapping[str, str], prefix: str = PREFIX
) -> list[tuple[Path, Any, Origin]]:
    """``(path, value, origin)`` for every ``KAGURA__...`` variable, sorted by name."""
    from kagura_ops.sops.yamlscalars import resolve_plain

    out: list[tuple[Path, Any, Origin]] = []
    for name in sorted(environ):
        if not name.startswith(prefix) or len(name) == len(prefix):
            continue
        parts = [p.lower() for p in name[len(prefix) :].split("__")]
        if any(not p for p in parts):
            continue
        raw = environ[name]
        value = resolve_plain(raw) if raw.strip() == raw else raw
        out.append((tuple(parts), value, Origin("environment", env_var=name)))
    return out


def apply_overrides(
    tree: dict[str, Any], overrides: list[tuple[Path, Any, Origin]]
) -> dict[str, Any]:
    """A copy of ``tree`` with each override set at its path (intermediate mappings created)."""
    import copy

    result = copy.deepcopy(tree)
    for path, value, _origin in overrides:
        node: Any = result
        for part in path[:-1]:
            child = node.get(part) if isinstance(node, dict) else None
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return result
