"""``Resolved`` and ``Snapshot``: the resolved configuration as agents read it.

A :class:`Snapshot` is one immutable version of the configuration: the lockfile's
values with the environment-variable and runtime layers applied, the encrypted
secrets (decrypted lazily, once, on first read) and the provenance of every key.
Reads accept dotted paths (``"llm.model"``, ``"llm.fallback_chain[0]"``) or
attributes (``snap.llm.model``); mappings and lists come back as read-only views
of the same snapshot; secrets come back as :class:`~kagura_ops.runtime.secret.Secret`.

A :class:`Resolved` holds the *current* snapshot and, when watching, replaces it
with a new one by one reference assignment. Every read goes through exactly one
snapshot, so no reader ever sees half of an update; a view taken from it
(``r.llm``) stays on the snapshot it came from, and :meth:`Resolved.snapshot`
hands out the whole snapshot for several reads that must agree.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kagura_ops.compiler.model import parse_dotted
from kagura_ops.runtime.secret import MASK, Secret

if TYPE_CHECKING:
    import asyncio

    from kagura_ops.errors import KaguraOpsError

__all__ = ["ChangeCallback", "Items", "Resolved", "Section", "Snapshot"]

logger = logging.getLogger("kagura_ops.runtime")

_MISSING: Any = object()
_RAISE: Any = object()

#: ``callback(old, new, changed_paths)``; a coroutine function runs on the event loop
#: that was running when it was registered.
ChangeCallback = Callable[["Snapshot", "Snapshot", frozenset[str]], Any]


class _Slot:
    """Where a secret (or a deferred template) sits in the value tree."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<secret {self.name}>"


def _child(prefix: str, key: str | int) -> str:
    """The dotted name of ``prefix``'s child ``key`` (same rules as ``model.dotted``)."""
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    if not key or "." in key or "[" in key:
        return f'{prefix}["{key}"]'
    return f"{prefix}.{key}" if prefix else key


class Snapshot:
    """One immutable version of the resolved configuration.

    Built by :mod:`kagura_ops.runtime.loader`; read it like :class:`Resolved`.
    ``decrypt(name)`` is the loader's hook that turns a secret's slot into a
    :class:`Secret` (it raises a :class:`~kagura_ops.errors.DecryptionError`
    naming the key when no identity can read it).
    """

    __slots__ = (
        "__weakref__",
        "_decrypt",
        "_fast",
        "_index",
        "_lock",
        "_provenance",
        "_secrets",
        "_tree",
        "digest",
        "env",
        "fingerprints",
        "source",
    )

    def __init__(
        self,
        tree: dict[str, Any],
        *,
        provenance: dict[str, dict[str, Any]],
        decrypt: Callable[[str], Secret],
        fingerprints: dict[str, str],
        source: str,
        env: str,
        digest: str,
    ) -> None:
        self._tree = tree
        self._provenance = provenance
        self._decrypt = decrypt
        self.fingerprints = fingerprints
        """Secret name -> a fingerprint of its ciphertext (to tell changed secrets apart)."""
        self.source = source
        """The lockfile this snapshot was read from (or what was compiled, in dev mode)."""
        self.env = env
        self.digest = digest
        self._lock = threading.RLock()  # reentrant: a deferred template reads other secrets
        self._fast: dict[str, Any] = {}
        """What reads try first, filled as names are read: scalars, views, decrypted secrets."""
        self._secrets: dict[str, Secret] = {}
        self._index: tuple[dict[str, Any], dict[str, _Slot]] | None = None

    def _find(self, name: str) -> Any:
        """The raw node at the dotted path ``name`` (a scalar, container or slot), or _MISSING."""
        if not isinstance(name, str):
            raise TypeError("configuration keys are dotted strings, e.g. 'llm.model'")
        node: Any = self._tree
        if not name:
            return node
        parts = name.split(".") if "[" not in name and '"' not in name else parse_dotted(name)
        for part in parts:
            if isinstance(node, dict):
                node = node.get(part, _MISSING)
                if node is _MISSING:
                    return _MISSING
            elif isinstance(node, list):
                index = part if isinstance(part, int) else int(part) if part.isdigit() else -1
                if not 0 <= index < len(node):
                    return _MISSING
                node = node[index]
            else:
                return _MISSING
        return node

    def _full_index(self) -> tuple[dict[str, Any], dict[str, _Slot]]:
        """Every scalar leaf and every secret slot by dotted name (built on first need)."""
        if self._index is not None:
            return self._index
        leaves: dict[str, Any] = {}
        slots: dict[str, _Slot] = {}
        todo: list[tuple[str, Any]] = [("", self._tree)]
        while todo:
            name, node = todo.pop()
            items = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in items:
                child_name = _child(name, key)
                if isinstance(child, dict | list):
                    todo.append((child_name, child))
                elif isinstance(child, _Slot):
                    slots[child_name] = child
                else:
                    leaves[child_name] = child
        self._index = (leaves, slots)
        return self._index

    def __repr__(self) -> str:
        return f"Snapshot(env={self.env!r}, source={self.source!r})"

    # -- reading -----------------------------------------------------------------------

    def __getitem__(self, name: str) -> Any:
        try:
            return self._fast[name]
        except KeyError:
            return self._lookup(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The value at the dotted path ``name``, or ``default`` when it is not set."""
        try:
            return self._fast[name]
        except KeyError:
            return self._lookup(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._fast or (isinstance(name, str) and self._find(name) is not _MISSING)

    def __getattr__(self, name: str) -> Any:
        value = self._fast.get(name, _MISSING)
        if value is not _MISSING:
            return value
        if name.startswith("_"):
            raise AttributeError(name)
        value = self._lookup(name, _MISSING)
        if value is _MISSING:
            raise AttributeError(f"no configuration key {name!r}")
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._tree)

    def __len__(self) -> int:
        return len(self._tree)

    def keys(self) -> list[str]:
        """Every leaf's dotted name (secrets included)."""
        leaves, slots = self._full_index()
        return [n for n in (*leaves, *slots) if n]

    def _lookup(self, name: str, default: Any = _RAISE) -> Any:
        node = self._find(name)
        if node is _MISSING:
            if default is _RAISE:
                raise KeyError(name)
            return default
        if isinstance(node, _Slot):
            return self.secret(node.name)
        if isinstance(node, dict):
            node = Section(self, name)
        elif isinstance(node, list):
            node = Items(self, name)
        self._fast[name] = node
        return node

    def secret(self, name: str) -> Secret:
        """The secret at ``name``, decrypted on first use and cached in this snapshot."""
        found = self._secrets.get(name)
        if found is not None:
            return found
        with self._lock:
            found = self._secrets.get(name)
            if found is None:
                found = self._decrypt(name)
                self._secrets[name] = found
                self._fast[name] = found
        return found

    def adopt(self, secrets: Mapping[str, Secret]) -> None:
        """Install already-decrypted secrets (the loader carries unchanged ones over)."""
        with self._lock:
            self._secrets.update(secrets)
            self._fast.update(secrets)

    def is_secret(self, name: str) -> bool:
        """Whether the value at ``name`` is a secret (without decrypting it)."""
        return isinstance(self._find(name), _Slot | Secret)

    def secret_names(self) -> list[str]:
        """The dotted names of every secret, decrypted or not."""
        leaves, slots = self._full_index()
        return [*slots, *(n for n, v in leaves.items() if isinstance(v, Secret))]

    def provenance(self, name: str) -> dict[str, Any] | None:
        """Where the value at ``name`` comes from: ``{"layer", "file", "line", "column",
        "env_var", "overrides": [...]}`` (a copy), from the nearest key that records it."""
        import copy

        probe = name
        while True:
            entry = self._provenance.get(probe)
            if entry is not None:
                return copy.deepcopy(entry)
            cut = max(probe.rfind("."), probe.rfind("["))
            if cut <= 0:
                return None
            probe = probe[:cut]

    def as_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        """A plain nested copy; secrets are ``"***"`` unless ``reveal=True`` (which decrypts)."""
        return self._plain(self._tree, reveal)  # type: ignore[no-any-return]

    def _plain(self, node: Any, reveal: bool) -> Any:
        if isinstance(node, dict):
            return {k: self._plain(v, reveal) for k, v in node.items()}
        if isinstance(node, list):
            return [self._plain(v, reveal) for v in node]
        if isinstance(node, _Slot):
            return self.secret(node.name).reveal() if reveal else MASK
        if isinstance(node, Secret):
            return node.reveal() if reveal else MASK
        return node

    def node(self, name: str) -> Any:
        """The raw container at ``name`` (for views); internal."""
        node = self._find(name)
        if node is _MISSING:
            raise KeyError(name)
        return node


class Section(Mapping[str, Any]):
    """A read-only mapping inside one snapshot: ``section["model"]`` or ``section.model``.

    Children read as attributes are cached in the instance ``__dict__`` (the
    snapshot never changes), so ``r.app.db.host`` costs plain attribute lookups
    after the first read; names of Mapping methods (``keys``, ``items``...) and
    names starting with ``_`` are reachable by subscript only.
    """

    def __init__(self, snapshot: Snapshot, name: str) -> None:
        self._snap = snapshot
        self._name = name

    def __getitem__(self, key: str) -> Any:
        if not isinstance(key, str):
            raise KeyError(key)
        return self._snap[_child(self._name, key)]

    def __getattr__(self, key: str) -> Any:
        snap = self._snap
        name = (
            f"{self._name}.{key}" if "." not in key and "[" not in key else _child(self._name, key)
        )
        value = snap._fast.get(name, _MISSING)
        if value is _MISSING:
            if key.startswith("_"):
                raise AttributeError(key)
            value = snap._lookup(name, _MISSING)
            if value is _MISSING:
                raise AttributeError(f"no configuration key {name!r}")
        if not key.startswith("_"):
            self.__dict__[key] = value  # the snapshot is immutable: cache it
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._snap.node(self._name))

    def __len__(self) -> int:
        return len(self._snap.node(self._name))

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self.as_dict()!r})"

    def as_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        return self._snap._plain(self._snap.node(self._name), reveal)  # type: ignore[no-any-return]


class Items(Sequence[Any]):
    """A read-only list inside one snapshot."""

    __slots__ = ("_name", "_snap")

    def __init__(self, snapshot: Snapshot, name: str) -> None:
        self._snap = snapshot
        self._name = name

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(len(self))[index]]
        size = len(self)
        if not isinstance(index, int):
            raise TypeError("list indices must be integers")
        if index < 0:
            index += size
        if not 0 <= index < size:
            raise IndexError(index)
        return self._snap[_child(self._name, index)]

    def __len__(self) -> int:
        return len(self._snap.node(self._name))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, list | tuple | Items):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Items({self._name!r}, {self.as_list()!r})"

    def as_list(self, *, reveal: bool = False) -> list[Any]:
        return self._snap._plain(self._snap.node(self._name), reveal)  # type: ignore[no-any-return]


class Resolved:
    """The live configuration: the current :class:`Snapshot`, swapped whole on reload.

    Create it with :func:`kagura_ops.load_resolved`. Reads (``r["llm.model"]``,
    ``r.llm.model``, ``r.get(path, default)``) never block on a reload and never
    mix two versions. With ``watch=True`` a background watcher keeps it current;
    a lockfile that fails to load leaves the last good snapshot in place and sets
    :attr:`last_error`. Use it as a context manager, or call :meth:`close`.
    """

    __slots__ = (
        "__weakref__",
        "_callbacks",
        "_closed",
        "_error",
        "_fast",
        "_reloader",
        "_snap",
        "_watcher",
    )

    def __init__(self, snapshot: Snapshot, reloader: Any = None) -> None:
        self._snap = snapshot
        self._fast = snapshot._fast
        self._reloader = reloader
        self._watcher: Any = None
        self._error: KaguraOpsError | None = None
        self._callbacks: list[tuple[ChangeCallback, asyncio.AbstractEventLoop | None]] = []
        self._closed = False

    # -- reads: one snapshot each --------------------------------------------------------

    # Hot paths: one dict lookup in the current snapshot's read cache. ``_fast`` is that
    # cache, installed right after ``_snap`` on a swap; a miss is served by ``_snap``,
    # so every value returned comes whole from one snapshot, and never from an older
    # snapshot than the previous read's.

    def __getitem__(self, name: str) -> Any:
        try:
            return self._fast[name]
        except KeyError:
            return self._snap._lookup(name)

    def get(self, name: str, default: Any = None) -> Any:
        """The value at the dotted path ``name``, or ``default`` when it is not set."""
        try:
            return self._fast[name]
        except KeyError:
            return self._snap._lookup(name, default)

    def __getattr__(self, name: str) -> Any:
        # The same lookup as the current snapshot's (one snapshot per read).
        return Snapshot.__getattr__(self._snap, name)

    def __contains__(self, name: object) -> bool:
        return name in self._snap

    def __iter__(self) -> Iterator[str]:
        return iter(self._snap)

    def __len__(self) -> int:
        return len(self._snap)

    def __repr__(self) -> str:
        state = "watching" if self._watcher is not None else "static"
        return f"Resolved(env={self._snap.env!r}, source={self._snap.source!r}, {state})"

    def keys(self) -> list[str]:
        return self._snap.keys()

    def provenance(self, name: str) -> dict[str, Any] | None:
        return self._snap.provenance(name)

    def as_dict(self, *, reveal: bool = False) -> dict[str, Any]:
        return self._snap.as_dict(reveal=reveal)

    def snapshot(self) -> Snapshot:
        """The current snapshot, frozen: reads from it agree with each other."""
        return self._snap

    @property
    def last_error(self) -> KaguraOpsError | None:
        """Why the last reload failed (the last good snapshot is still served), or None."""
        return self._error

    # -- changes ---------------------------------------------------------------------------

    def on_change(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(old, new, changed_paths)`` after each swap; returns an unsubscribe.

        Plain callables run on the watcher thread; coroutine functions are scheduled
        on the event loop that is running when ``on_change`` is called.
        """
        loop: asyncio.AbstractEventLoop | None = None
        if inspect.iscoroutinefunction(callback):
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise TypeError(
                    "register a coroutine callback from inside a running event loop"
                ) from None
        entry = (callback, loop)
        self._callbacks.append(entry)

        def unsubscribe() -> None:
            if entry in self._callbacks:
                self._callbacks.remove(entry)

        return unsubscribe

    def reload(self) -> bool:
        """Read the lockfile again now; True if a new snapshot was swapped in."""
        if self._reloader is None:
            return False
        return bool(self._reloader.reload(self))

    def _swap(self, new: Snapshot) -> None:
        """Install ``new`` (one reference assignment) and notify the callbacks."""
        old = self._snap
        self._snap = new
        self._fast = new._fast
        self._error = None
        if not self._callbacks:
            return
        changed = changed_paths(old, new)
        for callback, loop in list(self._callbacks):
            try:
                if loop is not None:
                    import asyncio

                    if not loop.is_closed():
                        asyncio.run_coroutine_threadsafe(callback(old, new, changed), loop)
                else:
                    callback(old, new, changed)
            except Exception:
                logger.exception("kagura-ops: an on_change callback failed")

    def _fail(self, error: KaguraOpsError) -> None:
        first = self._error is None
        self._error = error
        if first:
            # One warning per failure episode; messages never carry values.
            logger.warning(
                "kagura-ops: %s: keeping the last good configuration: %s",
                self._snap.source,
                error.message,
            )

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop watching (idempotent); reads keep working on the last snapshot."""
        self._closed = True
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def __enter__(self) -> Resolved:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        watcher = getattr(self, "_watcher", None)
        if watcher is not None:
            watcher.stop()


def changed_paths(old: Snapshot, new: Snapshot) -> frozenset[str]:
    """Dotted names whose value (or, for secrets, ciphertext) differs between two snapshots."""
    changed: set[str] = set()
    old_plain = {n: v for n, v in old._full_index()[0].items() if not isinstance(v, Secret)}
    new_plain = {n: v for n, v in new._full_index()[0].items() if not isinstance(v, Secret)}
    for name in old_plain.keys() | new_plain.keys():
        a, b = old_plain.get(name, _MISSING), new_plain.get(name, _MISSING)
        if a is _MISSING or b is _MISSING or type(a) is not type(b) or a != b:
            changed.add(name)
    old_secrets, new_secrets = set(old.secret_names()), set(new.secret_names())
    for name in old_secrets | new_secrets:
        if old.fingerprints.get(name, _MISSING) != new.fingerprints.get(name, _MISSING):
            changed.add(name)
    changed.discard("")
    return frozenset(changed)
