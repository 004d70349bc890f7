"""Reading a project as it was at a git revision, from the objects, without a checkout.

:class:`GitTree` answers the compiler's :class:`~kagura_ops.compiler.source.FileSource`
questions from one commit's tree, so ``kagura-ops plan`` compiles the base side
without touching the working tree or the index. It needs only the commit and its
tree and blobs, so it works in a shallow CI clone as long as the ref was fetched.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from kagura_ops.errors import InputError, PlanError

if TYPE_CHECKING:
    import pygit2

__all__ = ["BaseRef", "GitTree", "open_repository", "resolve_base"]

#: The branch a pull request is usually compared with (``--base`` overrides it).
DEFAULT_UPSTREAM = "origin/main"


def open_repository(start: Path) -> pygit2.Repository:
    """The git repository containing ``start``; :class:`InputError` outside one."""
    import pygit2

    found = pygit2.discover_repository(str(start))
    if found is None:
        raise InputError(
            f"{start} is not inside a git repository",
            hint="run in a clone of the repository (git init, or git clone)",
        )
    return pygit2.Repository(found)


@dataclass(frozen=True)
class BaseRef:
    """The commit a plan compares with, and how it was chosen."""

    name: str
    """As given (``origin/main``, ``HEAD~1``) or ``merge-base(HEAD, origin/main)``."""
    commit: str
    """Full hex id."""

    @property
    def short(self) -> str:
        return self.commit[:7]

    def describe(self) -> str:
        return f"{self.name} ({self.short})"


def _commit(repo: pygit2.Repository, spec: str) -> Any | None:
    import pygit2

    try:
        return repo.revparse_single(spec).peel(pygit2.Commit)
    except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError):
        return None


def resolve_base(repo: pygit2.Repository, ref: str | None) -> BaseRef:
    """The base commit: ``ref``, else the merge base of HEAD and origin/main, else HEAD."""
    import pygit2

    if ref is not None:
        commit = _commit(repo, ref)
        if commit is None:
            shallow = " (this clone is shallow)" if repo.is_shallow else ""
            raise PlanError(
                f"base ref {ref!r} not found in this repository{shallow}",
                hint=f"fetch it first, e.g. git fetch --depth=1 origin {ref}, or pass another --base",
            )
        return BaseRef(ref, str(commit.id))
    head = _commit(repo, "HEAD")
    upstream = _commit(repo, DEFAULT_UPSTREAM)
    if head is not None and upstream is not None:
        try:
            base = repo.merge_base(head.id, upstream.id)
        except pygit2.GitError:
            base = None  # a shallow clone may not reach the fork point
        if base is not None:
            return BaseRef(f"merge-base(HEAD, {DEFAULT_UPSTREAM})", str(base))
        return BaseRef(DEFAULT_UPSTREAM, str(upstream.id))
    if head is not None:
        return BaseRef("HEAD", str(head.id))
    raise PlanError(
        "no base to compare with: the repository has no commits and no origin/main",
        hint="commit first, or pass --base REF",
    )


class GitTree:
    """The files of one commit, addressed by absolute paths under ``root``.

    ``root`` is the working-tree directory that corresponds to ``prefix`` in the
    commit (the project root), so the compiler can use the same paths, and show
    the same file names, for both sides of a plan.
    """

    def __init__(
        self, repo: pygit2.Repository, commit: str, root: Path, *, label: str | None = None
    ) -> None:
        import pygit2

        self._repo = repo
        self._tree: Any = repo[commit].peel(pygit2.Tree)
        self._root = root
        self._real_root = root.resolve()
        workdir = Path(repo.workdir).resolve() if repo.workdir else self._real_root
        try:
            self._prefix = PurePosixPath(self._real_root.relative_to(workdir).as_posix())
        except ValueError:
            raise InputError(
                f"the project {root} is not inside the repository's work tree {workdir}"
            ) from None
        self.display = label or commit[:7]

    def __repr__(self) -> str:
        return f"GitTree({self.display!r})"

    def _relative(self, path: Path) -> str | None:
        """``path`` as a path inside the commit's tree, or None if it is outside the project."""
        for root, candidate in ((self._root, path), (self._real_root, path.resolve())):
            try:
                inner = candidate.relative_to(root).as_posix()
            except ValueError:
                continue
            full = (self._prefix / inner).as_posix()
            return "" if full == "." else full
        return None

    def _entry(self, path: Path) -> Any | None:
        relative = self._relative(path)
        if relative is None:
            return None
        if relative == "":
            return self._tree
        try:
            return self._tree[relative]
        except KeyError:
            return None

    def read_bytes(self, path: Path) -> bytes:
        import pygit2

        obj = self._entry(path)
        if not isinstance(obj, pygit2.Blob):
            raise FileNotFoundError(2, "No such file or directory (in the base commit)", str(path))
        return bytes(obj.data)

    def is_file(self, path: Path) -> bool:
        import pygit2

        return isinstance(self._entry(path), pygit2.Blob)

    def is_dir(self, path: Path) -> bool:
        import pygit2

        return isinstance(self._entry(path), pygit2.Tree)

    def list_dir(self, path: Path) -> list[str]:
        import pygit2

        obj = self._entry(path)
        if not isinstance(obj, pygit2.Tree):
            return []
        return [str(entry.name) for entry in obj]

    def glob(self, folder: Path, pattern: str) -> list[Path]:
        import pygit2

        obj = self._entry(folder)
        if not isinstance(obj, pygit2.Tree):
            return []
        return sorted(
            folder / str(entry.name)
            for entry in obj
            if entry.type_str == "blob" and fnmatch.fnmatchcase(str(entry.name), pattern)
        )

    def has_project(self) -> bool:
        """Whether the commit has the project at all (its ``kagura.yaml``)."""
        from kagura_ops.compiler.project import PROJECT_FILE

        return self.is_file(self._root / PROJECT_FILE)
