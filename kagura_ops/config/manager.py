"""``ConfigManager``: the RFC API over the compiler and the runtime.

Two modes:

- **dev mode** (default, inside a project): the layers are compiled in memory on
  first use and after every change (no lockfile is read or written), so an edit
  of a layer file shows up at the next :meth:`~ConfigManager.reload` and an edit
  made *through* the manager at the next :meth:`~ConfigManager.get`;
- **lockfile mode** (``lockfile=PATH``): values come from a compiled lockfile via
  :func:`~kagura_ops.runtime.loader.load_resolved`; a file-scope ``set`` writes
  the layer file and recompiles that lockfile so the change is visible at once.

Either way the ``KAGURA__...`` environment variables (layer 6) and the
``runtime`` scope (layer 7: in memory, highest precedence, never written) apply
on top, and secrets come back as :class:`~kagura_ops.runtime.secret.Secret`.

Every method has an ``async`` form (``await cm.get(key)``) and a ``*_sync``
twin. The async forms never block the event loop: anything that reads files,
compiles or decrypts runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kagura_ops.config.scopes import set_in_scope
from kagura_ops.runtime.resolved import Resolved

__all__ = ["ConfigManager"]

_MISSING: Any = object()


class ConfigManager:
    """Read and change the layered configuration of one project and environment."""

    def __init__(
        self,
        project_dir: str | os.PathLike[str] | None = None,
        env: str | None = None,
        *,
        lockfile: str | os.PathLike[str] | None = None,
        identity: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        from kagura_ops.compiler.project import DEFAULT_ENV, Project
        from kagura_ops.runtime.loader import DataKeys, _keyring

        self._environ = environ
        live = os.environ if environ is None else environ
        self._lockfile = Path(lockfile).absolute() if lockfile is not None else None
        start = Path(project_dir) if project_dir is not None else None
        if start is None and self._lockfile is not None:
            start = self._lockfile.parent
        self.project: Project | None
        try:
            self.project = Project.find(start)
        except Exception:
            if self._lockfile is None:
                raise
            self.project = None  # a lockfile outside any project: read-only scopes
        self.env = env or live.get("KAGURA_ENV") or DEFAULT_ENV
        self._identity = identity
        self._keys = DataKeys(_keyring(identity, environ))
        self._runtime: dict[str, Any] = {}
        self._resolved: Resolved | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        mode = f"lockfile={self._lockfile}" if self._lockfile else "dev mode"
        root = self.project.root if self.project else None
        return f"ConfigManager(project={root}, env={self.env!r}, {mode})"

    # -- building ---------------------------------------------------------------------------

    def _build(self) -> Resolved:
        from kagura_ops.runtime.loader import build_snapshot, load_resolved

        environ = os.environ if self._environ is None else self._environ
        if self._lockfile is not None:
            return load_resolved(
                self._lockfile,
                identity=self._keys.keyring,
                overrides=self._runtime,
                environ=self._environ,
            )
        from kagura_ops.compiler.build import compile_env

        assert self.project is not None
        compiled = compile_env(self.project, self.env, environ=environ)
        snapshot = build_snapshot(
            compiled.lockfile,
            source=f"{self.project.root} ({self.env}, layers)",
            keys=self._keys,
            environ=environ,
            overrides=self._runtime,
            digest=compiled.lockfile.digest,
        )
        return Resolved(snapshot)

    def _current(self) -> Resolved:
        resolved = self._resolved
        if resolved is None:
            with self._lock:
                if self._resolved is None:
                    self._resolved = self._build()
                resolved = self._resolved
        return resolved

    # -- sync API -------------------------------------------------------------------------

    def get_sync(self, key: str, default: Any = None) -> Any:
        """The value at ``key`` (dotted), ``default`` when unset; secrets as ``Secret``."""
        return self._current().get(key, default)

    def set_sync(self, key: str, value: Any, scope: str = "user") -> None:
        """Set ``key`` in ``scope``: ``runtime`` (memory) or a layer file (written at once)."""
        from kagura_ops.errors import InputError

        with self._lock:
            if scope == "runtime":
                self._runtime[key] = value
            else:
                if self.project is None:
                    raise InputError(
                        f"cannot write the {scope} scope: the lockfile is not inside a project",
                        file=str(self._lockfile),
                    )
                set_in_scope(self.project, key, value, scope, self._environ)
                self._recompile_lockfile()
            self._resolved = None
        self._current()

    def unset_sync(self, key: str, scope: str = "user") -> None:
        """Remove ``key`` from ``scope`` so that lower layers show through again."""
        from kagura_ops.config.scopes import reset_in_scope
        from kagura_ops.errors import InputError

        with self._lock:
            if scope == "runtime":
                if self._runtime.pop(key, _MISSING) is _MISSING:
                    raise InputError(f"{key} is not set in the runtime scope")
            else:
                if self.project is None:
                    raise InputError(f"cannot write the {scope} scope outside a project")
                reset_in_scope(self.project, key, scope, self._environ)
                self._recompile_lockfile()
            self._resolved = None
        self._current()

    def _recompile_lockfile(self) -> None:
        if self._lockfile is None or self.project is None:
            return
        from kagura_ops.atomicfile import atomic_write
        from kagura_ops.compiler.build import compile_env
        from kagura_ops.compiler.lockfile import read_lockfile

        env = read_lockfile(self._lockfile).env if self._lockfile.exists() else self.env
        compiled = compile_env(self.project, env, environ=self._environ)
        atomic_write(self._lockfile, compiled.text)

    def list_sync(self, prefix: str | None = None) -> builtins.list[str]:
        """The dotted names of every value (secrets included), optionally under ``prefix``."""
        names = self._current().keys()
        if prefix:
            names = [n for n in names if n == prefix or n.startswith((prefix + ".", prefix + "["))]
        return sorted(names)

    def reload_sync(self) -> None:
        """Read the layers (or the lockfile) again."""
        with self._lock:
            self._resolved = None
        self._current()

    def resolved(self) -> Resolved:
        """The current view, for everything beyond get/list (provenance, snapshots...)."""
        return self._current()

    # -- async API ---------------------------------------------------------------------------

    async def get(self, key: str, default: Any = None) -> Any:
        resolved = self._resolved
        if resolved is not None:
            snapshot = resolved.snapshot()
            if not snapshot.is_secret(key):  # in memory: no need for a thread
                return snapshot.get(key, default)
        return await asyncio.to_thread(self.get_sync, key, default)

    async def set(self, key: str, value: Any, scope: str = "user") -> None:
        await asyncio.to_thread(self.set_sync, key, value, scope)

    async def unset(self, key: str, scope: str = "user") -> None:
        await asyncio.to_thread(self.unset_sync, key, scope)

    async def list(self, prefix: str | None = None) -> builtins.list[str]:
        return await asyncio.to_thread(self.list_sync, prefix)

    async def reload(self) -> None:
        await asyncio.to_thread(self.reload_sync)
