"""``kagura-ops plan``, ``git-setup``, ``merge-driver`` and ``diff-textconv``."""

from __future__ import annotations

import sys
from pathlib import Path

import click


class _PlanCommand(click.Command):
    """Usage errors exit 1 here, so that with ``--detailed-exitcode`` 2 means "changes" only."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            exc.exit_code = 1
            raise


@click.command(cls=_PlanCommand)
@click.option(
    "--base",
    "base_ref",
    metavar="REF",
    help="Commit to compare with (default: the merge base of HEAD and origin/main, else HEAD).",
)
@click.option("--env", "env", envvar="KAGURA_ENV", help="Environment to plan (default: 'default').")
@click.option(
    "--all-envs", is_flag=True, help="Plan the default environment and every one in envs/."
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="markdown: one PR comment; json: see the README.",
)
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when nothing changes, 2 when something does, 1 on any error.",
)
@click.option("--no-color", is_flag=True, help="No ANSI colours (none are used when piped).")
@click.option(
    "--lockfile",
    "lockfile_mode",
    is_flag=True,
    help="Compare the committed lockfile(s) with a fresh compile instead of a git ref.",
)
@click.option(
    "--project",
    "project_dir",
    type=click.Path(file_okay=False, exists=True),
    help="Project directory (default: found from the current one).",
)
def plan(
    base_ref: str | None,
    env: str | None,
    all_envs: bool,
    fmt: str,
    detailed_exitcode: bool,
    no_color: bool,
    lockfile_mode: bool,
    project_dir: str | None,
) -> None:
    """Show what this change does to the resolved config of each environment.

    The base side is compiled from git objects (no checkout), the head side from
    the working tree; neither uses a private key, the user layer or the global
    layer. Secrets are compared by ciphertext and shown as (sensitive value).
    """
    from kagura_ops.compiler.project import DEFAULT_ENV, Project
    from kagura_ops.errors import KaguraOpsError, PlanError
    from kagura_ops.git.plan import plan_against_lockfile, plan_against_ref
    from kagura_ops.git.render import render_json, render_markdown, render_text

    if all_envs and env:
        raise click.UsageError("use either --env or --all-envs")
    if lockfile_mode and base_ref:
        raise click.UsageError("--lockfile compares with the committed lockfile; drop --base")
    envs = None if all_envs else [env or DEFAULT_ENV]
    try:
        project = Project.find(Path(project_dir) if project_dir else None)
        if lockfile_mode:
            result = plan_against_lockfile(project, envs=envs)
        else:
            result = plan_against_ref(project, base_ref=base_ref, envs=envs)
    except PlanError:
        raise
    except KaguraOpsError as exc:
        raise PlanError(exc.message, file=exc.file, hint=exc.hint) from None
    if fmt == "json":
        click.echo(render_json(result), nl=False)
    elif fmt == "markdown":
        click.echo(render_markdown(result), nl=False)
    else:
        color = False if no_color else None
        for text, colour in render_text(result):
            click.echo(click.style(text, fg=colour) if colour else text, color=color)
    if result.has_errors:
        failed = [e.env for e in result.envs if e.errors]
        raise PlanError(
            f"plan failed: {', '.join(failed)} {'has' if len(failed) == 1 else 'have'} errors "
            "(listed above)"
        )
    if detailed_exitcode and result.has_changes:
        raise click.exceptions.Exit(2)


@click.command("git-setup")
@click.option("--uninstall", is_flag=True, help="Remove what git-setup added.")
@click.option(
    "--command",
    "command",
    metavar="CMD",
    help="How git should run kagura-ops (default: this installation's absolute path).",
)
def git_setup(uninstall: bool, command: str | None) -> None:
    """Register the merge driver and diff textconv for encrypted files in this repository.

    Writes [merge "kagura-ops"] and [diff "kagura-ops"] to .git/config and, in
    .gitattributes, one line per encrypted-file pattern derived from .sops.yaml's
    creation rules. Running it again changes nothing; --uninstall removes both.
    """
    from kagura_ops.git import setup

    report = (
        setup.uninstall(Path.cwd()) if uninstall else setup.install(Path.cwd(), command=command)
    )
    for line in report:
        click.echo(line, err=True)


@click.command("merge-driver")
@click.argument("base", type=click.Path(dir_okay=False))
@click.argument("ours", type=click.Path(dir_okay=False))
@click.argument("theirs", type=click.Path(dir_okay=False))
@click.argument("path", required=False)
@click.option(
    "-i",
    "--identity",
    "identities",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="age identity file (repeatable); default: the usual places.",
)
def merge_driver(
    base: str, ours: str, theirs: str, path: str | None, identities: tuple[str, ...]
) -> None:
    """Three-way merge of an encrypted file (git runs it as: merge-driver %O %A %B %P).

    Decrypts the three versions, merges their plaintext trees key by key and
    writes the result to OURS, encrypted, with unchanged values keeping their
    ciphertext. On a conflict OURS is left as it was (encrypted), the conflicting
    key paths are listed, and the exit status is 1.
    """
    from kagura_ops.errors import KaguraOpsError
    from kagura_ops.git.merge import merge_files
    from kagura_ops.keys.identities import Keyring

    shown = path or ours
    try:
        result = merge_files(Path(base), Path(ours), Path(theirs), shown, Keyring(identities))
    except KaguraOpsError as exc:
        # git only tells zero from non-zero; 1 everywhere keeps it simple to script.
        click.echo(f"kagura-ops: error: merge-driver: {exc.format()}", err=True)
        click.echo(f"  {shown} is left as our version; git reports a conflict", err=True)
        raise click.exceptions.Exit(1) from None
    if result.conflicts:
        count = len(result.conflicts)
        click.echo(
            f"kagura-ops: merge conflict in {shown}: {count} key{'s' if count != 1 else ''} "
            "changed on both sides (values not shown):",
            err=True,
        )
        for key in result.conflicts:
            click.echo(f"  {key}", err=True)
        click.echo(
            f"  hint: {shown} holds our version, still encrypted; edit it with "
            f"kagura-ops edit {shown}, then git add it",
            err=True,
        )
        raise click.exceptions.Exit(1)
    click.echo(f"kagura-ops: merged {shown}: {result}", err=True)


@click.command("diff-textconv")
@click.argument("file", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "-i",
    "--identity",
    "identities",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="age identity file (repeatable); default: the usual places.",
)
def diff_textconv(file: str, identities: tuple[str, ...]) -> None:
    """Print FILE for git diff: decrypted with an identity, else values as <encrypted sha256:...>."""
    from kagura_ops.git.textconv import textconv
    from kagura_ops.keys.identities import Keyring

    out = sys.stdout.buffer
    out.write(textconv(Path(file), Keyring(identities)))
    out.flush()
