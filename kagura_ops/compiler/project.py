"""Where the layers of a project are: root discovery, environments, layer files.

Lowest to highest precedence (DESIGN.md §2)::

    defaults   schema defaults
    global     $KAGURA_GLOBAL_CONFIG or /etc/kagura/config.yaml
    user       $KAGURA_HOME/config.yaml (~/.kagura/config.yaml): local compiles only
    project    kagura.yaml, then secrets.enc.yaml, at the project root
    env:<env>  envs/<env>.yaml, then envs/<env>.enc.yaml

The project root is the nearest directory at or above the start that holds a
``kagura.yaml``. A project reads its own files through a
:class:`~kagura_ops.compiler.source.FileSource`: the working tree by default, or
the tree of a git commit (``kagura-ops plan``'s base side).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kagura_ops.compiler.source import WORKING_TREE, FileSource
from kagura_ops.errors import ConfigError

__all__ = [
    "DEFAULT_ENV",
    "ENVS_DIR",
    "GLOBAL_CONFIG",
    "PROJECT_FILE",
    "LayerFile",
    "Project",
    "find_project_root",
    "lockfile_name",
    "user_home",
]

PROJECT_FILE = "kagura.yaml"
PROJECT_SECRETS = "secrets.enc.yaml"
ENVS_DIR = "envs"
DEFAULT_ENV = "default"
GLOBAL_CONFIG = Path("/etc/kagura/config.yaml")


def lockfile_name(env: str) -> str:
    """``kagura.lock`` for the default environment, ``kagura.<env>.lock`` otherwise."""
    return "kagura.lock" if env == DEFAULT_ENV else f"kagura.{env}.lock"


def find_project_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) holding ``kagura.yaml``."""
    here = (start or Path.cwd()).absolute()
    for candidate in (here, *here.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate
    raise ConfigError(
        f"no {PROJECT_FILE} found in {here} or any parent directory",
        hint=f"run inside a project, or create {PROJECT_FILE} at its root",
    )


@dataclass(frozen=True)
class LayerFile:
    """One file of one layer."""

    layer: str
    path: Path
    display: str
    """The path as shown to people and written to the lockfile (relative to the root)."""
    encrypted: bool
    source: FileSource = field(default=WORKING_TREE, compare=False, repr=False)
    """Where the file is read from (a project file of a git commit, or the file system)."""

    def read_bytes(self) -> bytes:
        return self.source.read_bytes(self.path)


def user_home(environ: Mapping[str, str]) -> Path:
    home = environ.get("KAGURA_HOME")
    if home:
        return Path(home)
    return Path(environ.get("HOME") or Path.home()) / ".kagura"


def _display(path: Path, root: Path, environ: Mapping[str, str]) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        pass
    home = environ.get("HOME")
    if home:
        try:
            return "~/" + path.relative_to(home).as_posix()
        except ValueError:
            pass
    return path.as_posix()


@dataclass(frozen=True)
class Project:
    """A project directory and the version of its files to read (the working tree by default)."""

    root: Path
    source: FileSource = field(default=WORKING_TREE, compare=False)

    @classmethod
    def find(cls, start: Path | None = None) -> Project:
        return cls(find_project_root(start))

    def envs(self) -> list[str]:
        """The environments with an overlay in ``envs/`` (sorted)."""
        names = set()
        for name in self.source.list_dir(self.root / ENVS_DIR):
            if name.endswith(".enc.yaml"):
                names.add(name[: -len(".enc.yaml")])
            elif name.endswith(".yaml"):
                names.add(name[: -len(".yaml")])
        return sorted(names)

    def lockfile(self, env: str) -> Path:
        return self.root / lockfile_name(env)

    def layer_files(
        self,
        env: str,
        *,
        environ: Mapping[str, str] | None = None,
        include_global: bool = True,
        include_user: bool = True,
    ) -> list[LayerFile]:
        """The existing layer files for ``env``, lowest precedence first."""
        environ = os.environ if environ is None else environ
        if env != DEFAULT_ENV and env not in self.envs():
            known = ", ".join(self.envs()) or "none"
            raise ConfigError(
                f"unknown environment {env!r} (environments: {known})",
                file=str(self.root / ENVS_DIR),
                hint=f"create {ENVS_DIR}/{env}.yaml",
            )
        files: list[LayerFile] = []

        def add(layer: str, path: Path, encrypted: bool = False, *, machine: bool = False) -> None:
            # The global and user layers belong to this machine, not to a version of the project.
            source = WORKING_TREE if machine else self.source
            if source.is_file(path):
                shown = _display(path, self.root, environ)
                files.append(LayerFile(layer, path, shown, encrypted, source))

        if include_global:
            add(
                "global",
                Path(environ.get("KAGURA_GLOBAL_CONFIG") or GLOBAL_CONFIG),
                machine=True,
            )
        if include_user:
            add("user", user_home(environ) / "config.yaml", machine=True)
        add("project", self.root / PROJECT_FILE)
        add("project", self.root / PROJECT_SECRETS, True)
        if env != DEFAULT_ENV or self.source.is_file(self.root / ENVS_DIR / f"{env}.yaml"):
            add(f"env:{env}", self.root / ENVS_DIR / f"{env}.yaml")
            add(f"env:{env}", self.root / ENVS_DIR / f"{env}.enc.yaml", True)
        return files
