"""``kagura-ops compile``."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option(
    "--env",
    "env",
    envvar="KAGURA_ENV",
    help="Environment to compile (envs/<env>.yaml); default: 'default'.",
)
@click.option(
    "--all-envs", is_flag=True, help="Compile the default environment and every one in envs/."
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 if a lockfile is stale (for CI and pre-commit).",
)
@click.option(
    "--no-user",
    is_flag=True,
    help="Leave out the user layer (~/.kagura/config.yaml); always left out when CI=true.",
)
@click.option(
    "--no-global", is_flag=True, help="Leave out the global layer (/etc/kagura/config.yaml)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    help="Write the lockfile here instead of the project root.",
)
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Project directory (default: found from the current one).",
)
def compile_(
    env: str | None,
    all_envs: bool,
    check: bool,
    no_user: bool,
    no_global: bool,
    output: str | None,
    project_dir: str | None,
) -> None:
    """Merge the layers, validate them and write the resolved lockfile.

    Secrets stay encrypted in the lockfile: compiling needs no private key. The
    same inputs always give the same bytes.
    """
    from kagura_ops.atomicfile import atomic_write
    from kagura_ops.compiler.build import compile_env
    from kagura_ops.compiler.project import DEFAULT_ENV, Project
    from kagura_ops.errors import StaleLockfileError

    if all_envs and env:
        raise click.UsageError("use either --env or --all-envs")
    if all_envs and output:
        raise click.UsageError("--output writes one lockfile; drop --all-envs")
    project = Project.find(Path(project_dir) if project_dir else None)
    envs = (
        [DEFAULT_ENV, *[e for e in project.envs() if e != DEFAULT_ENV]]
        if all_envs
        else [env or DEFAULT_ENV]
    )
    stale: list[str] = []
    for name in envs:
        compiled = compile_env(
            project, name, include_user=False if no_user else None, include_global=not no_global
        )
        target = Path(output) if output else compiled.path
        shown = _shown(target, project.root)
        if check:
            try:
                fresh = target.read_text(encoding="utf-8") == compiled.text
            except (OSError, UnicodeDecodeError):
                fresh = False
            if fresh:
                click.echo(f"{shown}: up to date", err=True)
            else:
                stale.append(shown)
            continue
        try:
            unchanged = target.read_text(encoding="utf-8") == compiled.text
        except (OSError, UnicodeDecodeError):
            unchanged = False
        if not unchanged:
            atomic_write(target, compiled.text)
        count = len(compiled.lockfile.secrets)
        click.echo(
            f"{shown}: {'unchanged' if unchanged else 'written'} "
            f"({_count_values(compiled.lockfile.values)} values, {count} secret{'s' if count != 1 else ''} kept encrypted)",
            err=True,
        )
    if stale:
        flag = "--all-envs" if all_envs else (f"--env {envs[0]}" if envs[0] != DEFAULT_ENV else "")
        raise StaleLockfileError(", ".join(stale), f"kagura-ops compile {flag}".strip())


def _shown(path: Path, root: Path) -> str:
    try:
        return path.absolute().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _count_values(tree: object) -> int:
    if isinstance(tree, dict):
        return sum(_count_values(v) for v in tree.values())
    if isinstance(tree, list):
        return sum(_count_values(v) for v in tree)
    return 1
