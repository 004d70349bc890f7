"""The ``kagura-ops`` command: click groups that import their commands lazily.

Exit codes (documented in the README): 0 success, 1 error, 2 usage error,
3 cannot decrypt (no matching identity), 4 integrity failure (MAC mismatch or
tampered value), 5 not a SOPS file / already encrypted / unsupported feature,
6 configuration error (``.sops.yaml``, recipients), 130 interrupted.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

__all__ = ["cli", "main"]

# command name -> "module:function"; modules are imported only when the command runs.
_COMMANDS = {
    "keygen": "kagura_ops.cli.keys:keygen",
    "encrypt": "kagura_ops.cli.files:encrypt",
    "decrypt": "kagura_ops.cli.files:decrypt",
    "edit": "kagura_ops.cli.files:edit",
    "set": "kagura_ops.cli.files:set_",
    "unset": "kagura_ops.cli.files:unset",
    "updatekeys": "kagura_ops.cli.files:updatekeys",
    "rotate": "kagura_ops.cli.files:rotate",
    "filestatus": "kagura_ops.cli.files:filestatus",
    "compile": "kagura_ops.cli.compile:compile_",
    "config": "kagura_ops.cli.config:config",
    "exec": "kagura_ops.cli.runtime:exec_",
    "load": "kagura_ops.cli.runtime:load",
    "plan": "kagura_ops.cli.git:plan",
    "git-setup": "kagura_ops.cli.git:git_setup",
    "merge-driver": "kagura_ops.cli.git:merge_driver",
    "diff-textconv": "kagura_ops.cli.git:diff_textconv",
}

_HELP = {
    "keygen": "Create an age identity (private key file, mode 0600).",
    "encrypt": "Encrypt the values of a YAML, JSON or dotenv file (SOPS format).",
    "decrypt": "Decrypt a SOPS file and verify its MAC.",
    "edit": "Edit an encrypted file in $EDITOR; re-encrypts only what changed.",
    "set": "Set one value in an encrypted file.",
    "unset": "Remove one key from an encrypted file.",
    "updatekeys": "Re-wrap a file's data key for the recipients its creation rule names now.",
    "rotate": "Encrypt a file with a new data key (optionally adding or removing recipients).",
    "filestatus": "Tell whether a file is SOPS-encrypted (prints JSON).",
    "compile": "Merge the config layers, validate, and write the resolved lockfile.",
    "config": "Read and change the layered configuration (get, set, list, explain, reset, validate).",
    "exec": "Run a command with resolved values and secrets as environment variables.",
    "load": "Print the runtime view of an environment (secrets redacted unless --reveal).",
    "plan": "Show what a change does to each environment's resolved config (for PR review).",
    "git-setup": "Register the merge driver and diff textconv for encrypted files in this repo.",
    "merge-driver": "Three-way merge of an encrypted file (run by git).",
    "diff-textconv": "Print an encrypted file for git diff (decrypted, or values as digests).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, so ``--help`` stays fast."""

    def __init__(
        self, *args: Any, lazy: dict[str, str], help_lines: dict[str, str], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self._lazy = lazy
        self._help_lines = help_lines

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self._lazy:
            module_name, attr = self._lazy[cmd_name].split(":")
            command = getattr(importlib.import_module(module_name), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self._help_lines.get(name, "")) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def _version() -> str:
    from kagura_ops import __version__

    return __version__


@click.group(
    cls=LazyGroup,
    lazy=_COMMANDS,
    help_lines=_HELP,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(version=_version(), prog_name="kagura-ops", message="%(prog)s %(version)s")
def cli() -> None:
    """Config and secrets for AI-agent teams, GitOps style.

    Secrets are committed as SOPS-format files: keys readable, values encrypted,
    the data key wrapped once per recipient (age X25519 or SSH keys).
    """


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors print one line (plus a hint) and exit with their code."""
    from kagura_ops.errors import KaguraOpsError

    try:
        # Without standalone mode click returns (not raises) the code of ``ctx.exit(n)``.
        code = cli.main(args=argv, prog_name="kagura-ops", standalone_mode=False)
    except KaguraOpsError as exc:
        click.echo(f"kagura-ops: error: {exc.format()}", err=True)
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "kagura-ops"
        click.echo(f"kagura-ops: error: {exc.format_message()}", err=True)
        click.echo(f"  hint: see '{command} --help'", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"kagura-ops: error: {exc.format_message()}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("Aborted.", err=True)
        return 130
    except BrokenPipeError:
        return 1
    return code if isinstance(code, int) and not isinstance(code, bool) else 0


def entry() -> None:  # pragma: no cover - console script
    sys.exit(main())
