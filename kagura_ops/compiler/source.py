"""Where the compiler reads a project's files from: the working tree, or a git tree.

The compiler asks a :class:`FileSource` about *absolute* paths inside the project
root; the working tree answers from the file system, a git tree
(:class:`kagura_ops.git.tree.GitTree`) from the objects of one commit, so the
base side of ``kagura-ops plan`` compiles without a checkout. Paths outside the
project root (the global and user layers) exist only in the working tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["FileSource", "WorkingTree"]


@runtime_checkable
class FileSource(Protocol):
    """Read-only access to the files of one version of a project."""

    @property
    def display(self) -> str:
        """What this version is, for people: ``working tree``, ``origin/main (1a2b3c4)``."""
        ...

    def read_bytes(self, path: Path) -> bytes:
        """The content of the file at ``path``; :class:`OSError` if it cannot be read."""
        ...

    def is_file(self, path: Path) -> bool: ...

    def is_dir(self, path: Path) -> bool: ...

    def list_dir(self, path: Path) -> list[str]:
        """The names in the directory ``path`` (unsorted); empty if it is not a directory."""
        ...

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        """The files in ``folder`` (not below it) whose name matches ``pattern``, sorted."""
        ...


class WorkingTree:
    """The file system as it is now."""

    display = "working tree"

    def __repr__(self) -> str:
        return "WorkingTree()"

    def read_bytes(self, path: Path) -> bytes:
        return path.read_bytes()

    def is_file(self, path: Path) -> bool:
        return path.is_file()

    def is_dir(self, path: Path) -> bool:
        return path.is_dir()

    def list_dir(self, path: Path) -> list[str]:
        try:
            return [entry.name for entry in path.iterdir()]
        except OSError:
            return []

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        return sorted(p for p in folder.glob(pattern) if p.is_file())


WORKING_TREE = WorkingTree()
