"""``kagura-ops config get|set|list|explain|reset|validate``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

_SENSITIVE = "(sensitive)"


def _env_option(func: Any) -> Any:
    return click.option(
        "--env",
        "env",
        envvar="KAGURA_ENV",
        help="Environment (envs/<env>.yaml); default: 'default'.",
    )(func)


def _project_option(func: Any) -> Any:
    return click.option(
        "--project",
        "project_dir",
        type=click.Path(file_okay=False, exists=True),
        help="Project directory (default: found from the current one).",
    )(func)


class _View:
    """The resolved config as ``config`` shows it: layers + environment variables."""

    def __init__(self, project_dir: str | None, env: str | None, *, strict: bool = True) -> None:
        from kagura_ops.compiler.build import resolve_layers
        from kagura_ops.compiler.envvars import apply_overrides, env_overrides
        from kagura_ops.compiler.merge import Override, Provenance
        from kagura_ops.compiler.project import DEFAULT_ENV, Project
        from kagura_ops.errors import CompileError

        self.project = Project.find(Path(project_dir) if project_dir else None)
        self.env = env or DEFAULT_ENV
        resolved = resolve_layers(self.project, self.env)
        if strict and resolved.diagnostics:
            raise CompileError(resolved.diagnostics)
        self.resolved = resolved
        self.schema = resolved.schema
        overrides = env_overrides(os.environ)
        self.tree = apply_overrides(resolved.tree, overrides)
        self.provenance = dict(resolved.provenance)
        for path, _value, origin in overrides:
            old = _lookup(resolved.tree, path)
            previous = self.provenance.get(path)
            entry = Provenance(origin)
            if previous is not None:
                entry.overrides = [*previous.overrides, Override(previous.origin, old)]
            self.provenance[path] = entry

    def is_secret(self, path: tuple[str | int, ...], value: Any) -> bool:
        from kagura_ops.compiler.model import Deferred, SecretRef

        return isinstance(value, SecretRef | Deferred) or bool(self.schema.is_secret(path))


def _lookup(tree: Any, path: tuple[str | int, ...]) -> Any:
    node = tree
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node


def _leaves(tree: Any, path: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], Any]]:
    if isinstance(tree, dict) and tree:
        return [leaf for key, value in tree.items() for leaf in _leaves(value, (*path, key))]
    if isinstance(tree, list) and tree:
        return [leaf for index, value in enumerate(tree) for leaf in _leaves(value, (*path, index))]
    return [(path, tree)]


def _show(value: Any) -> str:
    from kagura_ops.sops.codec import Timestamp

    if isinstance(value, Timestamp):
        return value.text
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _redacted(view: _View, tree: Any, path: tuple[str | int, ...] = ()) -> Any:
    if isinstance(tree, dict):
        return {k: _redacted(view, v, (*path, k)) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_redacted(view, v, (*path, i)) for i, v in enumerate(tree)]
    if view.is_secret(path, tree) and tree is not None:
        return _SENSITIVE
    from kagura_ops.sops.codec import Timestamp

    return tree.text if isinstance(tree, Timestamp) else tree


def _override_text(view: _View, path: tuple[str | int, ...], override: Any) -> str:
    where: str = override.origin.where()
    if override.value is None or isinstance(override.value, dict | list):
        return where
    shown = _SENSITIVE if view.is_secret(path, override.value) else _show(override.value)
    return f"{where} {shown}"


@click.group()
def config() -> None:
    """Read and change the layered configuration."""


@config.command("get")
@click.argument("key")
@_env_option
@_project_option
def get(key: str, env: str | None, project_dir: str | None) -> None:
    """Print the resolved value of KEY (a.b or a.list[0]); secrets stay (sensitive)."""
    from kagura_ops.compiler.model import parse_dotted
    from kagura_ops.errors import InputError

    view = _View(project_dir, env)
    path = parse_dotted(key)
    value = _lookup(view.tree, path)
    if value is None and not _exists(view.tree, path):
        raise InputError(f"{key} is not set", hint=_did_you_mean(view, key))
    if isinstance(value, dict | list):
        click.echo(_dump_yaml(_redacted(view, value, path)), nl=False)
    elif view.is_secret(path, value):
        click.echo(_SENSITIVE)
        click.echo(
            "kagura-ops: secrets are not shown here; use 'kagura-ops decrypt --extract'", err=True
        )
    else:
        click.echo(_show(value))


def _exists(tree: Any, path: tuple[str | int, ...]) -> bool:
    node = tree
    for part in path:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


def _did_you_mean(view: _View, key: str) -> str | None:
    import difflib

    from kagura_ops.compiler.model import dotted

    names = [dotted(p) for p, _ in _leaves(view.tree)]
    close = difflib.get_close_matches(key, names, n=1)
    return f"did you mean {close[0]}?" if close else "see 'kagura-ops config list'"


def _dump_yaml(tree: Any) -> str:
    import io

    from ruamel.yaml import YAML

    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.allow_unicode = True
    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


@config.command("list")
@_env_option
@_project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
)
def list_(env: str | None, project_dir: str | None, fmt: str) -> None:
    """Every resolved value with the file and line it comes from."""
    from kagura_ops.compiler.model import dotted

    view = _View(project_dir, env)
    if fmt == "yaml":
        click.echo(_dump_yaml(_redacted(view, view.tree)), nl=False)
        return
    rows = []
    for path, value in sorted(_leaves(view.tree), key=lambda leaf: _sort_key(leaf[0])):
        if not path:
            continue
        secret = view.is_secret(path, value) and value is not None
        entry = view.provenance.get(path)
        rows.append((path, value, secret, entry))
    if fmt == "json":
        out = {}
        for path, value, secret, entry in rows:
            item: dict[str, Any] = {
                "value": None if secret else _redacted(view, value, path),
                "sensitive": secret,
            }
            if entry is not None:
                item["source"] = entry.origin.to_json()
                item["overrides"] = [o.origin.to_json() for o in entry.overrides]
            out[dotted(path)] = item
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    width = max(
        (len(dotted(p)) + len(_SENSITIVE if s else _show(v)) for p, v, s, _ in rows), default=0
    )
    for path, value, secret, entry in rows:
        text = f"{dotted(path)} = {_SENSITIVE if secret else _show(value)}"
        source = ""
        if entry is not None:
            source = entry.origin.where()
            if entry.overrides:
                source += ", overrides " + _override_text(view, path, entry.overrides[-1])
        click.echo(f"{text.ljust(width + 5)}({source})" if source else text)


def _sort_key(path: tuple[str | int, ...]) -> tuple[tuple[int, str | int], ...]:
    return tuple((1, p) if isinstance(p, int) else (0, p) for p in path)


@config.command("explain")
@click.argument("key")
@_env_option
@_project_option
def explain(key: str, env: str | None, project_dir: str | None) -> None:
    """The whole override chain of KEY, lowest layer first."""
    from kagura_ops.compiler.model import parse_dotted
    from kagura_ops.errors import InputError

    view = _View(project_dir, env)
    path = parse_dotted(key)
    entry = view.provenance.get(path)
    if entry is None:
        raise InputError(f"{key} is not set by any layer", hint=_did_you_mean(view, key))
    value = _lookup(view.tree, path)
    click.echo(
        f"{key} = {_SENSITIVE if view.is_secret(path, value) else _show(_redacted(view, value, path))}"
    )
    steps: list[Any] = [*entry.overrides, entry]
    for number, step in enumerate(steps, 1):
        shown = step.value if step is not entry else value
        text = _SENSITIVE if view.is_secret(path, shown) else _show(_redacted(view, shown, path))
        verdict = "  <- wins" if step is entry else ""
        strategy = f" [{entry.strategy}]" if step is entry and entry.strategy else ""
        click.echo(
            f"  {number}. {step.origin.layer:<16} {step.origin.where():<32} {text}{strategy}{verdict}"
        )


_SCOPE_HELP = "global, user, project, or an environment name."


@config.command("set")
@click.argument("key")
@click.argument("value")
@click.option("--scope", default="project", show_default=True, help=_SCOPE_HELP)
@_project_option
def set_(key: str, value: str, scope: str, project_dir: str | None) -> None:
    """Set KEY to VALUE (read as a YAML scalar) in the layer file of SCOPE; comments are kept."""
    from kagura_ops.compiler.project import Project
    from kagura_ops.config.scopes import display, set_in_scope
    from kagura_ops.sops.yamlscalars import resolve_plain

    project = Project.find(Path(project_dir) if project_dir else None)
    typed = resolve_plain(value) if value == value.strip() else value
    target = set_in_scope(project, key, typed, scope)
    click.echo(f"kagura-ops: {key} set in {display(target, project.root)}", err=True)


@config.command("reset")
@click.argument("key")
@click.option("--scope", default="project", show_default=True, help=_SCOPE_HELP)
@_project_option
def reset(key: str, scope: str, project_dir: str | None) -> None:
    """Remove KEY from the layer file of SCOPE (lower layers show through again)."""
    from kagura_ops.compiler.project import Project
    from kagura_ops.config.scopes import display, reset_in_scope

    project = Project.find(Path(project_dir) if project_dir else None)
    target = reset_in_scope(project, key, scope)
    click.echo(f"kagura-ops: {key} removed from {display(target, project.root)}", err=True)


@config.command("validate")
@_env_option
@_project_option
def validate(env: str | None, project_dir: str | None) -> None:
    """Check the layers of an environment against the schema; report every problem."""
    from kagura_ops.errors import CompileError

    view = _View(project_dir, env, strict=False)
    if view.resolved.diagnostics:
        raise CompileError(view.resolved.diagnostics)
    click.echo(f"{view.env}: valid ({len(_leaves(view.tree))} values)")
