"""Helpers for tests, shared by kagura-ops' own suite and by users' suites.

Everything here is throwaway: identities are generated fresh, nothing touches
the real home directory, and no secret is real.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Identity", "find_tool", "interop_opt_out", "isolated_environ", "make_identity"]


@dataclass(frozen=True)
class Identity:
    """A throwaway age identity written to ``path`` (mode 0600)."""

    path: Path
    public: str

    def __repr__(self) -> str:
        return f"Identity({self.public!r})"

    @property
    def secret(self) -> str:
        """The ``AGE-SECRET-KEY-1...`` line (tests only)."""
        for line in self.path.read_text().splitlines():
            if line.startswith("AGE-SECRET-KEY-"):
                return line
        raise ValueError("no secret key in the identity file")


def make_identity(directory: str | os.PathLike[str], name: str = "key.txt") -> Identity:
    """Generate an age identity file in ``directory``."""
    from kagura_ops.keys.age import write_identity_file

    path = Path(directory) / name
    public = write_identity_file(path)
    return Identity(path, public)


#: Environment variables that point kagura-ops or sops at identities or config.
IDENTITY_VARIABLES = (
    "KAGURA_AGE_KEY_FILE",
    "KAGURA_HOME",
    "SOPS_AGE_KEY",
    "SOPS_AGE_KEY_FILE",
    "SOPS_AGE_KEY_CMD",
    "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
    "SOPS_AGE_SSH_PRIVATE_KEY_CMD",
    "SOPS_CONFIG",
    "XDG_CONFIG_HOME",
)


def isolated_environ(home: str | os.PathLike[str], **extra: str) -> dict[str, str]:
    """``os.environ`` with ``HOME`` moved to ``home`` and every identity variable removed."""
    env = {k: v for k, v in os.environ.items() if k not in IDENTITY_VARIABLES}
    env["HOME"] = str(home)
    env.update(extra)
    return env


def find_tool(name: str) -> str | None:
    """The path of a peer tool (``sops``, ``age``), or None."""
    return shutil.which(name)


def interop_opt_out(tool: str) -> bool:
    """True only when ``tool`` is missing *and* the developer opted out of interop
    tests with ``KAGURA_OPS_SKIP_INTEROP=1``. A missing tool without the opt-out
    is not a reason to skip: the test runs and fails loudly."""
    return shutil.which(tool) is None and os.environ.get("KAGURA_OPS_SKIP_INTEROP") == "1"
