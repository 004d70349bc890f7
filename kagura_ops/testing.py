"""Helpers for tests, shared by kagura-ops' own suite and by users' suites.

Everything here is throwaway: identities are generated fresh, nothing touches
the real home directory, and no secret is real.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Identity", "find_tool", "isolated_environ", "make_identity"]


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


def find_tool(name: str, extra_dirs: Mapping[str, str] | None = None) -> str | None:
    """The path of a peer tool (``sops``, ``age``), or None."""
    del extra_dirs
    return shutil.which(name)
