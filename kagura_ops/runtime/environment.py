"""Resolved values as environment variables, for ``kagura-ops exec``.

Names: the schema's ``x-env`` for that key (``llm.providers.openai.api_key`` ->
``OPENAI_API_KEY``), else the dotted path upper-cased with every other
character turned into ``_`` (``llm.api_key`` -> ``LLM_API_KEY``,
``app.hosts[0]`` -> ``APP_HOSTS_0``), with ``prefix`` in front of such derived
names (``x-env`` names are used as declared). Values: strings as they are,
booleans ``true``/``false``, numbers as written, null as the empty string, and
lists as JSON (a list is one value, not one variable per item).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from kagura_ops.compiler.model import Path, parse_dotted
from kagura_ops.errors import InputError
from kagura_ops.runtime.resolved import Items, Section, Snapshot, _child
from kagura_ops.runtime.secret import Secret

__all__ = ["env_name", "environment_for"]

_NOT_NAME = re.compile(r"[^A-Za-z0-9]+")


def env_name(name: str, prefix: str = "") -> str:
    """``llm.api_key`` -> ``LLM_API_KEY`` (``prefix`` prepended)."""
    return prefix + _NOT_NAME.sub("_", name).strip("_").upper()


def _text(value: Any) -> str:
    if isinstance(value, Secret):
        value = value.reveal()
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, Items):
        return json.dumps(value.as_list(reveal=True), ensure_ascii=False)
    return str(value)


def environment_for(
    snapshot: Snapshot,
    *,
    only: Iterable[str] = (),
    prefix: str = "",
    declared: Callable[[Path], str | None] = lambda _path: None,
) -> dict[str, str]:
    """``{NAME: value}`` for the selected keys (every leaf by default); secrets revealed.

    ``only`` names keys or sections (``llm`` selects everything under it); an
    unknown name is an :class:`InputError`. ``declared(path)`` gives the
    ``x-env`` name of a key, or None.
    """
    wanted = [k.strip() for k in only if k.strip()]
    for key in wanted:
        if key not in snapshot:
            raise InputError(f"--only {key}: no such key", hint="see 'kagura-ops load'")
    out: dict[str, str] = {}
    origin: dict[str, str] = {}

    def add(name: str, value: Any) -> None:
        path = parse_dotted(name)
        var = declared(path) or env_name(name, prefix)
        if var in out and origin[var] != name:
            raise InputError(
                f"{origin[var]} and {name} both map to ${var}",
                hint="declare distinct x-env names in the schema, or use --only",
            )
        out[var], origin[var] = _text(value), name

    def walk(name: str) -> None:
        value = snapshot[name]
        if isinstance(value, Section):
            for key in value:
                walk(_child(name, key))
        else:
            add(name, value)

    for key in wanted or [k for k in snapshot]:
        walk(key)
    return out
