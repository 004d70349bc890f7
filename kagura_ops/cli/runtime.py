"""``kagura-ops exec`` and ``kagura-ops load``: the runtime view from the command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click


def _load(env: str | None, lockfile: str | None, identity: tuple[str, ...]) -> Any:
    from kagura_ops.runtime.loader import load_resolved

    return load_resolved(lockfile, env=env, identity=list(identity) or None)


_env = click.option("--env", "env", envvar="KAGURA_ENV", help="Environment; default: 'default'.")
_lockfile = click.option(
    "--lockfile",
    type=click.Path(dir_okay=False),
    help="Read this lockfile (default: the environment's, at the project root).",
)
_identity = click.option(
    "-i", "--identity", multiple=True, type=click.Path(dir_okay=False), help="Age identity file."
)


def _declared_names(source: str) -> Any:
    """``x-env`` names from the project's schema (built-in + ``schemas/*.json``)."""
    from kagura_ops.compiler.project import Project
    from kagura_ops.compiler.schema import Schema

    try:
        project = Project.find(Path(source).parent)
    except Exception:
        return Schema.load().env_name
    folder = project.root / "schemas"
    extra = sorted(folder.glob("*.json")) if folder.is_dir() else []
    return Schema.load(project.root, extra).env_name


@click.command(context_settings={"ignore_unknown_options": True})
@_env
@_lockfile
@_identity
@click.option("--only", "only", help="Comma-separated keys or sections to export (default: all).")
@click.option("--prefix", default="", help="Prefix for derived names (not for x-env names).")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(
    env: str | None,
    lockfile: str | None,
    identity: tuple[str, ...],
    only: str | None,
    prefix: str,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with the resolved values and secrets in its environment.

    llm.api_key becomes LLM_API_KEY unless the schema declares an x-env name
    (OPENAI_API_KEY). The command replaces kagura-ops (exec), so signals reach it
    directly and its exit code is the exit code. Use -- before the command.
    """
    from kagura_ops.runtime.environment import environment_for

    resolved = _load(env, lockfile, identity)
    snapshot = resolved.snapshot()
    names = environment_for(
        snapshot,
        only=(only or "").split(","),
        prefix=prefix,
        declared=_declared_names(snapshot.source),
    )
    child = {**os.environ, **names}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], list(command), child)  # noqa: S606  (exec: the point of the command)
    except OSError as exc:
        raise click.ClickException(f"cannot run {command[0]}: {exc.strerror}") from None


@click.command()
@_env
@_lockfile
@_identity
@click.option("--reveal", is_flag=True, help="Show secrets in the clear (asks first).")
@click.option("--yes", is_flag=True, help="With --reveal: do not ask (required without a TTY).")
@click.option("--format", "fmt", type=click.Choice(["json", "yaml"]), default="json")
def load(
    env: str | None,
    lockfile: str | None,
    identity: tuple[str, ...],
    reveal: bool,
    yes: bool,
    fmt: str,
) -> None:
    """Print the runtime view of an environment: the lockfile plus KAGURA__* variables.

    Secrets are shown as *** unless --reveal is given.
    """
    if reveal and not yes:
        if not sys.stdin.isatty():
            raise click.UsageError("--reveal prints secrets: add --yes when not at a terminal")
        click.confirm("Print secrets in the clear?", abort=True, err=True)
    resolved = _load(env, lockfile, identity)
    tree = resolved.as_dict(reveal=reveal)
    if fmt == "json":
        click.echo(json.dumps(tree, indent=2, ensure_ascii=False))
    else:
        from kagura_ops.cli.config import _dump_yaml

        click.echo(_dump_yaml(tree), nl=False)
