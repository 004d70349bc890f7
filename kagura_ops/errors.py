"""The kagura-ops error tree.

Every error the library raises on purpose derives from :class:`KaguraOpsError`.
Messages name the file and the key path and say what to do; they never contain
a secret value. The CLI maps each branch to one exit code (see ``exit_code``)::

    KaguraOpsError                      exit 1
    ├── InputError                      exit 1   bad YAML/JSON/dotenv, unknown key path, bad argument
    │   ├── CompileError                exit 1   every problem of one compile (file:line:col each)
    │   │   └── StaleLockfileError      exit 1   compile --check: the lockfile differs from a fresh compile
    │   └── PlanError                   exit 1   plan: base ref missing, a side does not compile
    ├── ConfigError                     exit 6   .sops.yaml invalid, no creation rule, no recipients
    ├── FormatError                     exit 5   not (or already) a SOPS file, malformed metadata
    ├── UnsupportedError                exit 5   a key type or format feature we do not handle yet
    ├── EncryptionError                 exit 1   a data key could not be wrapped for a recipient
    └── DecryptionError                 exit 3   the data key or a value could not be decrypted
        ├── NoIdentityError             exit 3   no identity found, or none of them matches a recipient
        └── IntegrityError              exit 4   MAC mismatch or a value that fails authentication

Crypto-level failures are deliberately opaque (one ``IntegrityError`` whatever
went wrong inside AES-GCM) so that errors are never an oracle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kagura_ops.compiler.model import Diagnostic

__all__ = [
    "CompileError",
    "ConfigError",
    "DecryptionError",
    "EncryptionError",
    "FormatError",
    "InputError",
    "IntegrityError",
    "KaguraOpsError",
    "NoIdentityError",
    "PlanError",
    "StaleLockfileError",
    "UnsupportedError",
]


class KaguraOpsError(Exception):
    """Root of every error kagura-ops raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, file: str | None = None, hint: str | None = None) -> None:
        self.message = message
        self.file = file
        self.hint = hint
        super().__init__(self.format())

    def format(self) -> str:
        """One line (plus an optional hint) for a human: ``file: message (hint)``."""
        text = f"{self.file}: {self.message}" if self.file else self.message
        if self.hint:
            text = f"{text}\n  hint: {self.hint}"
        return text


class InputError(KaguraOpsError):
    """The input is not what was expected: syntax errors, unknown paths, bad values."""


class CompileError(InputError):
    """A compile found problems; ``diagnostics`` holds all of them, each with its position."""

    def __init__(self, diagnostics: Sequence[Diagnostic], *, file: str | None = None) -> None:
        self.diagnostics = list(diagnostics)
        count = len(self.diagnostics)
        lines = "\n".join(f"  {d.format()}" for d in self.diagnostics)
        super().__init__(f"{count} problem{'s' if count != 1 else ''} found:\n{lines}", file=file)


class StaleLockfileError(CompileError):
    """``compile --check``: the committed lockfile is not what a compile gives now."""

    def __init__(self, lockfile: str, command: str) -> None:
        self.diagnostics = []
        InputError.__init__(
            self, "is stale: it differs from a fresh compile", file=lockfile, hint=f"run {command}"
        )


class PlanError(InputError):
    """``kagura-ops plan`` cannot compare: the base ref is missing, or a side fails to compile.

    Always exit 1, whatever the underlying error, so that with ``--detailed-exitcode``
    exit 2 only ever means "changes".
    """


class ConfigError(KaguraOpsError):
    """Configuration (``.sops.yaml``, recipients) is missing or invalid."""

    exit_code = 6


class FormatError(KaguraOpsError):
    """A file is not in SOPS format, or is when it should not be."""

    exit_code = 5


class UnsupportedError(KaguraOpsError):
    """A recognised feature that kagura-ops does not implement (yet)."""

    exit_code = 5


class EncryptionError(KaguraOpsError):
    """The data key could not be wrapped for one of the recipients."""


class DecryptionError(KaguraOpsError):
    """Something could not be decrypted."""

    exit_code = 3


class NoIdentityError(DecryptionError):
    """No available identity unwraps the file's data key."""


class IntegrityError(DecryptionError):
    """The file was modified outside kagura-ops/sops, or a value fails authentication."""

    exit_code = 4
