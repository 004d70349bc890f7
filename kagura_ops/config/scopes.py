"""Which layer file a scope writes, and changing one key in it with comments kept.

Scopes (DESIGN.md §2): ``global`` ($KAGURA_GLOBAL_CONFIG or /etc/kagura/config.yaml),
``user`` ($KAGURA_HOME/config.yaml), ``project`` (kagura.yaml) and any environment
name (``envs/<env>.yaml``). ``runtime`` is not a file: it lives in a
:class:`~kagura_ops.config.manager.ConfigManager`.

Keys marked ``x-secret`` in the schema are refused: their values must live in an
encrypted file (``kagura-ops set secrets.enc.yaml KEY -``). Edits go through
:func:`kagura_ops.sops.edits.set_value`/``unset_value`` (an existing scalar is
replaced in place; other edits keep comments and key order) and are written
atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kagura_ops.compiler.model import parse_dotted
from kagura_ops.compiler.project import (
    ENVS_DIR,
    GLOBAL_CONFIG,
    PROJECT_FILE,
    Project,
    user_home,
)
from kagura_ops.errors import InputError

__all__ = ["FILE_SCOPES", "reset_in_scope", "scope_file", "set_in_scope"]

FILE_SCOPES = ("global", "user", "project")
"""The fixed file scopes; any other name is an environment overlay."""


def scope_file(project: Project, scope: str, environ: Mapping[str, str] | None = None) -> Path:
    """The layer file that ``scope`` reads and writes."""
    environ = os.environ if environ is None else environ
    if scope == "global":
        return Path(environ.get("KAGURA_GLOBAL_CONFIG") or GLOBAL_CONFIG)
    if scope == "user":
        return user_home(environ) / "config.yaml"
    if scope == "project":
        return project.root / PROJECT_FILE
    if not scope or scope == "runtime" or "/" in scope or scope.startswith("."):
        raise InputError(
            f"{scope!r} is not a file scope",
            hint="use global, user, project or an environment name",
        )
    return project.root / ENVS_DIR / f"{scope}.yaml"


def _schema(project: Project) -> Any:
    from kagura_ops.compiler.schema import Schema

    folder = project.root / "schemas"
    extra = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return Schema.load(project.root, extra)


def refuse_secret(project: Project, key: str) -> None:
    """Raise :class:`InputError` when ``key`` is ``x-secret`` (it belongs in an encrypted file)."""
    if _schema(project).is_secret(parse_dotted(key)):
        raise InputError(
            f"{key} is a secret (x-secret): it must live in an encrypted file",
            hint=f"kagura-ops set secrets.enc.yaml {key} -   (reads the value from stdin)",
        )


def set_in_scope(
    project: Project,
    key: str,
    value: Any,
    scope: str = "project",
    environ: Mapping[str, str] | None = None,
) -> Path:
    """Set ``key`` to ``value`` in the layer file of ``scope``; returns that file."""
    from kagura_ops.atomicfile import atomic_write
    from kagura_ops.sops.edits import set_value

    refuse_secret(project, key)
    target = scope_file(project, scope, environ)
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    new = set_value(text, "yaml", list(parse_dotted(key)), value, source=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, new)
    return target


def reset_in_scope(
    project: Project, key: str, scope: str = "project", environ: Mapping[str, str] | None = None
) -> Path:
    """Remove ``key`` from the layer file of ``scope`` (lower layers show through again)."""
    from kagura_ops.atomicfile import atomic_write
    from kagura_ops.sops.edits import unset_value

    target = scope_file(project, scope, environ)
    if not target.exists():
        raise InputError(f"{key} is not set in the {scope} layer (no such file)", file=str(target))
    new = unset_value(
        target.read_text(encoding="utf-8"),
        "yaml",
        list(parse_dotted(key)),
        source=display(target, project.root),
    )
    atomic_write(target, new)
    return target


def display(path: Path, root: Path) -> str:
    """``path`` relative to the project root when inside it."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)
