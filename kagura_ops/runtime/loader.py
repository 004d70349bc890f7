"""``load_resolved``: lockfile -> snapshot, with the environment and runtime layers on top.

What happens on a load (and on every reload when watching):

1. read the lockfile and verify it (:meth:`Lockfile.from_text`: format version,
   structure, digest), then check every secret and deferred entry is well formed
   and names a ``data_keys`` entry, and that every deferred template compiles;
2. put the secrets' slots into the value tree, then apply layer 6
   (``KAGURA__A__B`` environment variables) and layer 7 (``overrides``), each with
   provenance naming the variable or ``runtime`` and the entry it overrode; a
   value set over a secret stays a :class:`Secret`;
3. index the tree for reads.

Secrets are decrypted lazily: no identity is needed until one is read. The data
key of each encrypted source file is unwrapped once per snapshot (reused across
snapshots while that file's ``sops`` block is byte-identical, since the same
wrapped key gives the same data key), each secret is decrypted once per snapshot,
and deferred templates (``{{ secret('x') }}``) are rendered on first read with the
compiler's load-time contract (see :mod:`kagura_ops.compiler.interpolate`).

On a reload the new lockfile must also pass what this process can check: every
source file whose data key the current snapshot has unwrapped must unwrap again,
and all its secrets must decrypt and authenticate. Until they do, the last good
snapshot stays.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kagura_ops.compiler.model import Origin, dotted, parse_dotted
from kagura_ops.errors import ConfigError, FormatError, InputError, KaguraOpsError
from kagura_ops.runtime.resolved import Resolved, Snapshot, _Slot
from kagura_ops.runtime.secret import Secret

if TYPE_CHECKING:
    from kagura_ops.compiler.lockfile import Lockfile
    from kagura_ops.keys.identities import Keyring
    from kagura_ops.sops.codec import Cipher

__all__ = ["DataKeys", "build_snapshot", "load_resolved", "read_verified"]

IdentityArg = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | Any
_FINGERPRINT_KEY = os.urandom(32)


def _fingerprint(data: str) -> str:
    """A per-process keyed hash (never a plain hash of a secret, which would be an oracle)."""
    return hmac.new(_FINGERPRINT_KEY, data.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


class DataKeys:
    """Unwrapped data keys by (file, hash of its ``sops`` block), and the keyring they need.

    Shared by the snapshots of one :class:`Resolved`; the keyring is only consulted
    (and identities only discovered) when a secret is actually read.
    """

    def __init__(self, keyring: Keyring | None = None) -> None:
        self._keyring = keyring
        self._ciphers: dict[tuple[str, str], Cipher] = {}
        self._lock = threading.Lock()

    @property
    def keyring(self) -> Keyring:
        if self._keyring is None:
            from kagura_ops.keys.identities import Keyring

            self._keyring = Keyring()
        return self._keyring

    def cipher(self, file: str, block: Any, block_hash: str, *, source: str) -> Cipher:
        key = (file, block_hash)
        found = self._ciphers.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._ciphers.get(key)
            if found is None:
                from kagura_ops.sops.codec import Cipher
                from kagura_ops.sops.document import unwrap_data_key
                from kagura_ops.sops.metadata import Metadata

                metadata = Metadata.from_mapping(block, source=f"{source}: data_keys[{file}]")
                found = Cipher(unwrap_data_key(metadata, self.keyring, source=file))
                self._ciphers[key] = found
        return found

    def has_file(self, file: str) -> bool:
        """Whether this process has ever unwrapped a data key of ``file``."""
        return any(name == file for name, _hash in list(self._ciphers))


# -- reading and checking a lockfile ---------------------------------------------------------


def read_verified(path: Path, raw: bytes | None = None) -> tuple[Lockfile, bytes]:
    """The verified lockfile at ``path`` (or ``raw``, its bytes already read) and its bytes.

    Every failure is a :class:`KaguraOpsError`.
    """
    from kagura_ops.compiler.lockfile import Lockfile

    try:
        raw = path.read_bytes() if raw is None else raw
    except FileNotFoundError:
        raise ConfigError(
            "lockfile not found", file=str(path), hint="compile it: kagura-ops compile"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the lockfile: {exc.strerror}", file=str(path)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("not a valid lockfile: not UTF-8 text", file=str(path)) from None
    return Lockfile.from_text(text, source=str(path)), raw


def _check_entries(lock: Lockfile, source: str) -> dict[str, str]:
    """Well-formed secret and deferred entries; returns file -> hash of its sops block."""
    hashes: dict[str, str] = {}
    for file, block in lock.data_keys.items():
        if not isinstance(block, dict):
            raise FormatError(f"data_keys[{file}] is not a mapping", file=source)
        text = json.dumps(block, sort_keys=True, separators=(",", ":"))
        hashes[file] = hashlib.sha256(text.encode("utf-8")).hexdigest()
    for name, entry in lock.secrets.items():
        ok = isinstance(entry, dict) and all(
            isinstance(entry.get(k), str) for k in ("enc", "file", "aad")
        )
        if not ok:
            raise FormatError(f"secrets[{name}] is malformed", file=source)
        if entry["file"] not in hashes:
            raise FormatError(
                f"secrets[{name}] names {entry['file']}, which has no data_keys entry", file=source
            )
    if lock.deferred:
        from jinja2.exceptions import TemplateSyntaxError

        from kagura_ops.compiler.interpolate import load_time_template

        for name, entry in lock.deferred.items():
            if not (isinstance(entry, dict) and isinstance(entry.get("template"), str)):
                raise FormatError(f"deferred[{name}] is malformed", file=source)
            try:
                load_time_template(entry["template"])
            except TemplateSyntaxError as exc:
                raise FormatError(
                    f"deferred[{name}]: template syntax error at line {exc.lineno}", file=source
                ) from None
    return hashes


# -- building a snapshot -------------------------------------------------------------------


def _set(tree: dict[str, Any], path: tuple[str | int, ...], value: Any) -> Any:
    """Set ``value`` at ``path`` (creating mappings); returns the value it replaced."""
    node: Any = tree
    for part in path[:-1]:
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            child = node[part]
            if not isinstance(child, dict | list):
                child = node[part] = {}
        else:
            if not isinstance(node, dict):
                raise InputError("cannot set a key below a value that is not a mapping")
            child = node.get(part)
            if not isinstance(child, dict | list):
                child = node[part] = {}
        node = child
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int) and 0 <= last < len(node):
        old, node[last] = node[last], value
        return old
    if not isinstance(node, dict):
        raise InputError("cannot set a key below a value that is not a mapping")
    old = node.get(last)
    node[last] = value
    return old


def _contains_slot(node: Any) -> bool:
    if isinstance(node, _Slot):
        return True
    if isinstance(node, dict):
        return any(_contains_slot(v) for v in node.values())
    if isinstance(node, list):
        return any(_contains_slot(v) for v in node)
    return False


def _flatten(overrides: Mapping[str, Any]) -> list[tuple[tuple[str | int, ...], Any]]:
    """``{"llm.model": "x", "app": {"port": 1}}`` -> leaf paths; mappings merge deeply."""
    out: list[tuple[tuple[str | int, ...], Any]] = []

    def walk(path: tuple[str | int, ...], value: Any) -> None:
        if isinstance(value, Mapping) and value and not isinstance(value, Secret):
            for key, child in value.items():
                walk((*path, str(key)), child)
        else:
            out.append((path, value))

    for key, value in overrides.items():
        if not isinstance(key, str) or not key:
            raise InputError(f"override keys are dotted paths, not {key!r}")
        walk(parse_dotted(key), value)
    return out


def build_snapshot(
    lock: Lockfile,
    *,
    source: str,
    keys: DataKeys,
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None = None,
    digest: str | None = None,
) -> Snapshot:
    """A snapshot of ``lock`` with the environment-variable and runtime layers applied.

    The snapshot takes ownership of ``lock.values`` (no copy: 10,000 values cost
    ~20 ms to deep-copy); do not change ``lock`` afterwards.
    """
    from kagura_ops.compiler.envvars import env_overrides

    hashes = _check_entries(lock, source)
    tree: dict[str, Any] = lock.values
    for name in (*lock.secrets, *lock.deferred):
        path = parse_dotted(name) if "[" in name or '"' in name else tuple(name.split("."))
        _set(tree, path, _Slot(name))
    provenance: dict[str, dict[str, Any]] = dict(lock.provenance)
    # A lockfile secret's fingerprint is its ciphertext (public, already in the file);
    # only values that layers set in the clear get a keyed hash.
    fingerprints: dict[str, str] = {name: e["enc"] for name, e in lock.secrets.items()}
    for name, entry in lock.deferred.items():
        parts = [entry["template"]]
        parts += [lock.secrets.get(s, {}).get("enc", "") for s in entry.get("secrets", [])]
        fingerprints[name] = "\0".join(parts)

    layers: list[tuple[tuple[str | int, ...], Any, Origin]] = list(env_overrides(environ))
    layers += [(path, value, Origin("runtime")) for path, value in _flatten(overrides or {})]
    for path, value, origin in layers:
        if not path:
            continue
        name = dotted(path)
        old = _set(tree, path, value)
        was_secret = isinstance(old, _Slot | Secret) or _contains_slot(old)
        if isinstance(old, _Slot | Secret) and not isinstance(value, dict | list | Secret):
            secret = Secret(value)
            _set(tree, path, secret)
            fingerprints[name] = _fingerprint(f"{origin.layer}:{origin.env_var}:{value!r}")
        elif isinstance(value, Secret):
            fingerprints[name] = _fingerprint(f"{origin.layer}:{id(value)}")
        previous = provenance.get(name)
        record: dict[str, Any] = origin.to_json()
        if previous is not None:
            before = {k: v for k, v in previous.items() if k != "overrides"}
            if was_secret or isinstance(value, Secret):
                before["sensitive"] = True
            elif not isinstance(old, dict | list) and old is not None:
                before["value"] = old
            record["overrides"] = [*previous.get("overrides", []), before]
        provenance[name] = record

    decrypter = _Decrypter(lock, source, keys, hashes, environ)
    snapshot = Snapshot(
        tree,
        provenance=provenance,
        decrypt=decrypter,
        fingerprints=fingerprints,
        source=source,
        env=lock.env,
        digest=digest or lock.digest,
    )
    decrypter.snapshot = snapshot
    return snapshot


class _Decrypter:
    """Turns a secret's slot into a :class:`Secret`, with errors that name the key."""

    def __init__(
        self,
        lock: Lockfile,
        source: str,
        keys: DataKeys,
        hashes: dict[str, str],
        environ: Mapping[str, str],
    ) -> None:
        self.lock = lock
        self.source = source
        self.keys = keys
        self.hashes = hashes
        self.environ = environ
        self.snapshot: Snapshot | None = None
        self._rendering: set[str] = set()

    def __call__(self, name: str) -> Secret:
        entry = self.lock.secrets.get(name)
        if entry is not None:
            return Secret(self._plaintext(name, entry))
        return Secret(self._render(name, self.lock.deferred[name]))

    def _plaintext(self, name: str, entry: dict[str, str]) -> Any:
        from kagura_ops.sops.codec import Timestamp

        file = entry["file"]
        try:
            cipher = self.keys.cipher(
                file, self.lock.data_keys[file], self.hashes[file], source=self.source
            )
            value = cipher.decrypt(entry["enc"], entry["aad"])
        except KaguraOpsError as exc:
            raise type(exc)(
                f"cannot read secret {name} (from {file}): {exc.message}",
                file=self.source,
                hint=exc.hint,
            ) from None
        return value.text if isinstance(value, Timestamp) else value

    def _render(self, name: str, entry: dict[str, Any]) -> str:
        from kagura_ops.compiler.interpolate import load_time_template

        snapshot = self.snapshot
        assert snapshot is not None
        if name in self._rendering:
            raise InputError(f"deferred value {name} refers to itself", file=self.source)

        def secret(path: object) -> Any:
            if not isinstance(path, str):
                raise TypeError("secret() takes a dotted key path")
            if path in self.lock.secrets or path in self.lock.deferred:
                return snapshot.secret(path).reveal()
            raise KeyError(path)

        self._rendering.add(name)
        try:
            template = load_time_template(entry["template"])
            return template.render(
                {"secret": secret, "config": _RevealingView(snapshot, ""), "env": self.environ}
            )
        except KaguraOpsError:
            raise
        except Exception as exc:
            # Never the exception's text: it could quote a value the template read.
            raise InputError(
                f"cannot render deferred value {name}: {type(exc).__name__} in its template",
                file=self.source,
            ) from None
        finally:
            self._rendering.discard(name)


class _RevealingView(Mapping[str, Any]):
    """``config`` for deferred templates: resolved values with secrets in the clear."""

    def __init__(self, snapshot: Snapshot, name: str) -> None:
        self._snap = snapshot
        self._name = name

    def _wrap(self, name: str) -> Any:
        from kagura_ops.runtime.resolved import Items, Section

        value = self._snap[name]
        if isinstance(value, Secret):
            return value.reveal()
        if isinstance(value, Section | Items):
            node = self._snap.node(name)
            if isinstance(node, list):
                return [self._wrap(f"{name}[{i}]") for i in range(len(node))]
            return _RevealingView(self._snap, name)
        return value

    def __getitem__(self, key: str) -> Any:
        from kagura_ops.runtime.resolved import _child

        return self._wrap(_child(self._name, key))

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __iter__(self) -> Any:
        return iter(self._snap.node(self._name))

    def __len__(self) -> int:
        return len(self._snap.node(self._name))


# -- load_resolved ---------------------------------------------------------------------------


class _FileSource:
    """Loads snapshots of one lockfile for a :class:`Resolved` (initially and on reload)."""

    def __init__(
        self,
        path: Path,
        *,
        env: str | None,
        keys: DataKeys,
        environ: Mapping[str, str] | None,
        overrides: Mapping[str, Any] | None,
    ) -> None:
        self.path = path
        self.env = env
        self.keys = keys
        self.environ = environ
        self.overrides = dict(overrides or {})
        self.raw_hash = ""
        self.lock = threading.Lock()

    def load(
        self, *, previous: Snapshot | None = None, raw: bytes | None = None
    ) -> tuple[Snapshot, str]:
        lock, raw = read_verified(self.path, raw)
        source = str(self.path)
        if self.env is not None and lock.env != self.env:
            raise ConfigError(
                f"this lockfile is for environment {lock.env!r}, not {self.env!r}",
                file=source,
                hint=f"load {self.path.parent / _lockfile_name(self.env)} instead",
            )
        environ = os.environ if self.environ is None else self.environ
        snapshot = build_snapshot(
            lock, source=source, keys=self.keys, environ=environ, overrides=self.overrides
        )
        if previous is not None:
            _verify_decryptable(snapshot, lock, self.keys, previous)
        return snapshot, hashlib.sha256(raw).hexdigest()

    def reload(self, resolved: Resolved) -> bool:
        """Load the file again; swap on success, keep the last good snapshot on failure."""
        with self.lock:
            try:
                raw = self.path.read_bytes()
            except OSError:
                raw = None
            if raw is not None and hashlib.sha256(raw).hexdigest() == self.raw_hash:
                if resolved.last_error is not None:
                    resolved._error = None  # the good file is back as it was
                return False
            try:
                snapshot, raw_hash = self.load(previous=resolved.snapshot(), raw=raw)
            except KaguraOpsError as exc:
                resolved._fail(exc)
                return False
            except Exception as exc:  # a bug or an unexpected shape: still keep serving
                resolved._fail(FormatError(f"cannot load the lockfile: {type(exc).__name__}"))
                return False
            self.raw_hash = raw_hash
            resolved._swap(snapshot)
            return True


def _lockfile_name(env: str) -> str:
    from kagura_ops.compiler.project import lockfile_name

    return lockfile_name(env)


def _verify_decryptable(
    snapshot: Snapshot, lock: Lockfile, keys: DataKeys, previous: Snapshot
) -> None:
    """Every secret this process could read before must still decrypt (and then is cached).

    A secret whose ciphertext (and file's ``sops`` block) did not change keeps the
    plaintext already decrypted in ``previous``: same key, same ciphertext, same value.
    """
    decrypter = snapshot._decrypt
    assert isinstance(decrypter, _Decrypter)
    readable = {file for file in decrypter.hashes if keys.has_file(file)}
    if not readable:
        return
    old_decrypter = previous._decrypt
    old_hashes = old_decrypter.hashes if isinstance(old_decrypter, _Decrypter) else {}
    same_block = {f for f in readable if old_hashes.get(f) == decrypter.hashes[f]}
    carried: dict[str, Secret] = {}
    for name, entry in lock.secrets.items():
        if entry["file"] not in readable:
            continue
        old = previous._secrets.get(name)
        same = previous.fingerprints.get(name) == snapshot.fingerprints.get(name)
        if old is not None and same and entry["file"] in same_block:
            carried[name] = old
        else:
            carried[name] = snapshot.secret(name)
    snapshot.adopt(carried)
    for name, entry in lock.deferred.items():
        needs = {lock.secrets[s]["file"] for s in entry.get("secrets", []) if s in lock.secrets}
        if needs and needs <= readable:
            old = previous._secrets.get(name)
            same = previous.fingerprints.get(name) == snapshot.fingerprints.get(name)
            if old is not None and same and needs <= same_block:
                snapshot.adopt({name: old})
            else:
                snapshot.secret(name)


def _keyring(identity: IdentityArg, environ: Mapping[str, str] | None) -> Keyring:
    from kagura_ops.keys.identities import Keyring

    if isinstance(identity, Keyring):
        return identity
    if identity is None:
        files: list[str | os.PathLike[str]] = []
    elif isinstance(identity, str | os.PathLike):
        files = [identity]
    else:
        files = list(identity)
    home = Path(environ["HOME"]) if environ is not None and environ.get("HOME") else None
    return Keyring(files, environ=environ, home=home)


def default_lockfile(env: str | None, environ: Mapping[str, str]) -> tuple[Path, str]:
    """The lockfile of ``env`` (``KAGURA_ENV``, else default) at the project root above cwd."""
    from kagura_ops.compiler.project import DEFAULT_ENV, Project

    name = env or environ.get("KAGURA_ENV") or DEFAULT_ENV
    return Project.find().lockfile(name), name


def load_resolved(
    path: str | os.PathLike[str] | None = None,
    *,
    env: str | None = None,
    identity: IdentityArg = None,
    watch: bool = False,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Resolved:
    """Load a compiled lockfile for reading; see :class:`~kagura_ops.runtime.resolved.Resolved`.

    ``path`` defaults to the lockfile of ``env`` (else ``KAGURA_ENV``, else
    ``default``) at the project root found from the working directory. ``identity``
    is an identity file, several, or a :class:`~kagura_ops.keys.identities.Keyring`;
    without it identities are discovered as the CLI does, when a secret is first
    read. ``overrides`` maps dotted paths to values (layer 7, above the ``KAGURA__``
    environment variables of ``environ``, default :data:`os.environ`). With
    ``watch=True`` the object follows the file until :meth:`Resolved.close`.

    Raises :class:`~kagura_ops.errors.KaguraOpsError` subclasses: ConfigError
    (missing file, wrong environment), FormatError (not a lockfile, unsupported
    format version), IntegrityError (digest mismatch).
    """
    live_environ = os.environ if environ is None else environ
    if path is None:
        target, env = default_lockfile(env, live_environ)
    else:
        target = Path(path)
    keys = DataKeys(_keyring(identity, environ))
    source = _FileSource(
        target.absolute(), env=env, keys=keys, environ=environ, overrides=overrides
    )
    snapshot, source.raw_hash = source.load()
    resolved = Resolved(snapshot, source)
    if watch:
        import weakref

        from kagura_ops.runtime.watcher import Watcher

        ref = weakref.ref(resolved)

        def changed() -> bool:
            target = ref()
            return target is not None and source.reload(target)

        resolved._watcher = Watcher(source.path, changed)
        resolved._watcher.start()
        source.reload(resolved)  # a change between the first read and the watch
    return resolved
