"""Where this process finds its age identities (private keys), and in which order.

A :class:`Keyring` looks in these places, in this order (the order is part of the
product contract; it decides which key is tried first and how ``describe_tried``
reads)::

    1. --identity FILE (the ``identity_files`` argument; may be several)
    2. KAGURA_AGE_KEY_FILE
    3. SOPS_AGE_KEY                    inline keys, several per line allowed
    4. SOPS_AGE_KEY_FILE
    5. SOPS_AGE_KEY_CMD                a command printing keys on stdout
    6. <user config dir>/sops/age/keys.txt
    7. SSH keys: SOPS_AGE_SSH_PRIVATE_KEY_FILE, SOPS_AGE_SSH_PRIVATE_KEY_CMD,
       ~/.ssh/id_ed25519, ~/.ssh/id_rsa
    8. $KAGURA_HOME/keys.txt (default ~/.kagura/keys.txt)

Sources 3 to 7 follow sops (``age/keysource.go``): every source that is set is
loaded (sops does not stop at the first hit), ``SOPS_AGE_KEY_CMD`` is split into
words like a shell would but run without one, the user config dir is
``$XDG_CONFIG_HOME`` or ``~/.config`` (``~/Library/Application Support`` on macOS,
``%AppData%`` on Windows). Keys sops can use but pyrage cannot (post-quantum
``AGE-SECRET-KEY-PQ-1``, plugin ``AGE-PLUGIN-`` identities, passphrase-protected
SSH keys) are skipped with a note instead of failing the whole keyring.

Discovery is lazy (nothing is read until :meth:`Keyring.age_identities`) and its
report (:meth:`Keyring.describe_tried`) names sources and paths only, never a key.
"""

from __future__ import annotations

import base64
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from kagura_ops.errors import InputError

__all__ = ["AgeIdentity", "Keyring", "TriedSource"]

#: A parsed pyrage identity (``pyrage.x25519.Identity`` or ``pyrage.ssh.Identity``).
AgeIdentity: TypeAlias = Any

KAGURA_AGE_KEY_FILE = "KAGURA_AGE_KEY_FILE"
SOPS_AGE_KEY = "SOPS_AGE_KEY"
SOPS_AGE_KEY_FILE = "SOPS_AGE_KEY_FILE"
SOPS_AGE_KEY_CMD = "SOPS_AGE_KEY_CMD"
SOPS_AGE_SSH_PRIVATE_KEY_FILE = "SOPS_AGE_SSH_PRIVATE_KEY_FILE"
SOPS_AGE_SSH_PRIVATE_KEY_CMD = "SOPS_AGE_SSH_PRIVATE_KEY_CMD"
KAGURA_HOME = "KAGURA_HOME"

_X25519_PREFIX = "AGE-SECRET-KEY-1"
_PQ_PREFIX = "AGE-SECRET-KEY-PQ-1"
_PLUGIN_PREFIX = "AGE-PLUGIN-"
_PEM_BEGIN = b"-----BEGIN"
_AGE_ARMOR_BEGIN = b"-----BEGIN AGE ENCRYPTED FILE-----"
_OPENSSH_MAGIC = b"openssh-key-v1\x00"


@dataclass(frozen=True, slots=True)
class TriedSource:
    """One place the keyring looked, for messages: ``label (note)``.

    ``label`` names the source (``--identity ./k.txt``, ``SOPS_AGE_KEY``,
    ``~/.config/sops/age/keys.txt``); ``note`` says what came of it (``1 key``,
    ``not set``, ``missing``...). Neither ever holds key material.
    """

    label: str
    note: str
    count: int = 0

    def __str__(self) -> str:
        return f"{self.label} ({self.note})"


@dataclass(slots=True)
class _Parsed:
    """Identities read from one source, plus what was skipped and why."""

    identities: list[AgeIdentity] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def note(self) -> str:
        n = len(self.identities)
        parts = [_plural(n, "key") if n else "no keys"]
        parts.extend(self.skipped)
        return "; ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


class Keyring:
    """The age identities available to this process, discovered lazily.

    ``identity_files`` are files given explicitly (``--identity FILE``); they must
    exist. ``environ`` defaults to :data:`os.environ` and ``home`` to
    :meth:`Path.home`, so tests can isolate discovery from the real machine.
    """

    def __init__(
        self,
        identity_files: Iterable[str | os.PathLike[str]] = (),
        *,
        environ: Mapping[str, str] | None = None,
        home: Path | None = None,
    ) -> None:
        self._identity_files = tuple(identity_files)
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._home = Path.home() if home is None else Path(home)
        self._lock = threading.Lock()
        self._identities: list[AgeIdentity] | None = None
        self._tried: list[TriedSource] = []

    def __repr__(self) -> str:
        files = ", ".join(os.fspath(f) for f in self._identity_files)
        state = "not loaded" if self._identities is None else _plural(len(self._identities), "key")
        return f"Keyring(identity_files=[{files}], {state})"

    # -- public API ---------------------------------------------------------------

    def age_identities(self) -> list[AgeIdentity]:
        """All usable age identities, in discovery order (read once, then cached).

        Raises :class:`~kagura_ops.errors.InputError` when an explicit
        ``--identity`` file is missing or unreadable, or when a key file holds a
        line that is not a valid identity (the message names the file and line).
        """
        with self._lock:
            if self._identities is None:
                tried: list[TriedSource] = []
                identities: list[AgeIdentity] = []
                for source, parsed in self._discover():
                    identities.extend(parsed.identities)
                    tried.append(source)
                self._tried = tried
                self._identities = identities
            return list(self._identities)

    def tried(self) -> list[TriedSource]:
        """Every place looked in, in order, with what was found there."""
        self.age_identities()
        return list(self._tried)

    def describe_tried(self) -> str:
        """The places looked in, one line, for error messages: paths only, never keys."""
        return ", ".join(str(t) for t in self.tried())

    def has_any(self) -> bool:
        """True when at least one usable identity was found."""
        return bool(self.age_identities())

    @property
    def sops_keys_file(self) -> Path | None:
        """sops's per-user key file (``<user config dir>/sops/age/keys.txt``), if known."""
        config_dir, _ = self._user_config_dir()
        return None if config_dir is None else config_dir / "sops" / "age" / "keys.txt"

    @property
    def kagura_keys_file(self) -> Path:
        """kagura-ops's own key file, ``$KAGURA_HOME/keys.txt`` (``~/.kagura/keys.txt``)."""
        kagura_home = self._environ.get(KAGURA_HOME)
        base = Path(kagura_home).expanduser() if kagura_home else self._home / ".kagura"
        return base / "keys.txt"

    def display_path(self, path: Path) -> str:
        """``path`` for messages, with the home directory shortened to ``~``."""
        try:
            return "~/" + path.relative_to(self._home).as_posix()
        except ValueError:
            return str(path)

    # -- discovery ----------------------------------------------------------------

    def _discover(self) -> Iterable[tuple[TriedSource, _Parsed]]:
        env = self._environ
        for given in self._identity_files:
            yield self._from_file(Path(given), f"--identity {os.fspath(given)}", explicit=True)

        yield self._from_env_file(KAGURA_AGE_KEY_FILE)

        inline = env.get(SOPS_AGE_KEY)
        if inline is None:
            yield _unset(SOPS_AGE_KEY)
        else:
            parsed = _parse_age_text(inline, SOPS_AGE_KEY, several_per_line=True)
            yield _found(SOPS_AGE_KEY, parsed)

        yield self._from_env_file(SOPS_AGE_KEY_FILE)
        yield self._from_command(SOPS_AGE_KEY_CMD, ssh=False)

        config_dir, why_not = self._user_config_dir()
        if config_dir is None:
            yield TriedSource("<user config dir>/sops/age/keys.txt", why_not), _Parsed()
        else:
            keys = config_dir / "sops" / "age" / "keys.txt"
            yield self._from_file(keys, self.display_path(keys))

        ssh_file = env.get(SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        if ssh_file is None:
            yield _unset(SOPS_AGE_SSH_PRIVATE_KEY_FILE)
        else:
            label = f"{SOPS_AGE_SSH_PRIVATE_KEY_FILE}={ssh_file}"
            yield self._from_file(Path(ssh_file).expanduser(), label, ssh_only=True)
        yield self._from_command(SOPS_AGE_SSH_PRIVATE_KEY_CMD, ssh=True)
        for name in ("id_ed25519", "id_rsa"):
            key = self._home / ".ssh" / name
            yield self._from_file(key, self.display_path(key), ssh_only=True)

        kagura_keys = self.kagura_keys_file
        yield self._from_file(kagura_keys, self.display_path(kagura_keys))

    def _from_env_file(self, var: str) -> tuple[TriedSource, _Parsed]:
        value = self._environ.get(var)
        if value is None:
            return _unset(var)
        if not value:
            return TriedSource(var, "empty"), _Parsed()
        return self._from_file(Path(value).expanduser(), f"{var}={value}")

    def _from_file(
        self, path: Path, label: str, *, explicit: bool = False, ssh_only: bool = False
    ) -> tuple[TriedSource, _Parsed]:
        """Read an age identity file or an SSH private key file."""
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            if explicit:
                raise InputError(
                    "identity file not found",
                    file=os.fspath(path),
                    hint="check the path given to --identity",
                ) from None
            return TriedSource(label, "missing"), _Parsed()
        except OSError as exc:
            if explicit:
                raise InputError(
                    f"cannot read identity file: {exc.strerror or type(exc).__name__}",
                    file=os.fspath(path),
                ) from None
            reason = exc.strerror or type(exc).__name__
            return TriedSource(label, f"unreadable: {reason}"), _Parsed()

        stripped = content.lstrip()
        if stripped.startswith(_AGE_ARMOR_BEGIN):
            note = "passphrase-protected age identity file: skipped (not supported)"
            return TriedSource(label, note), _Parsed()
        if ssh_only or stripped.startswith(_PEM_BEGIN):
            parsed = _parse_ssh_key(content, os.fspath(path), strict=explicit)
            return _found(label, parsed)
        text = content.decode("utf-8", errors="replace").removeprefix("\ufeff")
        parsed = _parse_age_text(text, label, several_per_line=False, file=os.fspath(path))
        return _found(label, parsed)

    def _from_command(self, var: str, *, ssh: bool) -> tuple[TriedSource, _Parsed]:
        """Run the command in ``var`` (like sops: split into words, no shell) and parse stdout.

        A failure is reported in the tried list, never raised: a broken helper must
        not hide keys found elsewhere.
        """
        command = self._environ.get(var)
        if command is None:
            return _unset(var)
        try:
            output = _run_key_command(command, self._environ)
        except _CommandFailed as failure:
            return TriedSource(var, str(failure)), _Parsed()
        if ssh:
            return _found(var, _parse_ssh_key(output, var, strict=False))
        text = output.decode("utf-8", errors="replace")
        try:
            parsed = _parse_age_text(text, var, several_per_line=False)
        except InputError as exc:
            return TriedSource(var, f"invalid output: {exc.message}"), _Parsed()
        return _found(var, parsed)

    def _user_config_dir(self) -> tuple[Path | None, str]:
        """sops's ``getUserConfigDir``: the dir, or ``None`` and why not."""
        xdg = self._environ.get("XDG_CONFIG_HOME", "")
        if sys.platform == "win32":
            appdata = self._environ.get("APPDATA", "")
            return (Path(appdata), "") if appdata else (None, "APPDATA not set")
        if sys.platform == "darwin":
            if xdg:
                return Path(xdg), ""
            return self._home / "Library" / "Application Support", ""
        if xdg:
            if not os.path.isabs(xdg):
                return None, "XDG_CONFIG_HOME is a relative path: ignored"
            return Path(xdg), ""
        return self._home / ".config", ""


def _unset(var: str) -> tuple[TriedSource, _Parsed]:
    return TriedSource(var, "not set"), _Parsed()


def _found(label: str, parsed: _Parsed) -> tuple[TriedSource, _Parsed]:
    return TriedSource(label, parsed.note(), len(parsed.identities)), parsed


def _parse_age_text(
    text: str, label: str, *, several_per_line: bool, file: str | None = None
) -> _Parsed:
    """Parse age identities: one per line (or several, for ``SOPS_AGE_KEY``).

    Blank lines and ``#`` comments are skipped. A line that is not an identity
    raises :class:`InputError` naming the source and the line number, never the
    line itself (it is probably a mangled secret key).
    """
    from pyrage import IdentityError, x25519

    parsed = _Parsed()
    pq = plugin = 0
    where = file if file is not None else label
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        for word in line.split() if several_per_line else [line]:
            if word.startswith(_PQ_PREFIX):
                pq += 1
            elif word.startswith(_PLUGIN_PREFIX):
                plugin += 1
            elif word.startswith(_X25519_PREFIX):
                try:
                    parsed.identities.append(x25519.Identity.from_str(word))
                except IdentityError:
                    raise InputError(
                        f"line {number} is not a valid age identity (bad AGE-SECRET-KEY-1 key)",
                        file=where,
                    ) from None
            else:
                raise InputError(
                    f"line {number} is not an age identity "
                    "(expected AGE-SECRET-KEY-1..., a # comment or a blank line)",
                    file=where,
                )
    if pq:
        parsed.skipped.append(f"{_plural(pq, 'post-quantum key')} skipped: not supported")
    if plugin:
        noun = "plugin identity" if plugin == 1 else "plugin identities"
        parsed.skipped.append(f"{plugin} {noun} skipped: not supported")
    return parsed


def _parse_ssh_key(content: bytes, where: str, *, strict: bool) -> _Parsed:
    """Parse an SSH private key (ed25519 or RSA) as an age identity.

    Passphrase-protected keys are skipped with a note (we never prompt). An
    unusable key raises :class:`InputError` when ``strict`` (it was named
    explicitly), else it is skipped with a note.
    """
    from pyrage import IdentityError, ssh

    parsed = _Parsed()
    if _ssh_key_is_encrypted(content):
        parsed.skipped.append("passphrase-protected SSH key: skipped")
        return parsed
    try:
        parsed.identities.append(ssh.Identity.from_buffer(content))
    except IdentityError as exc:
        if "decrypted first" in str(exc) or "Encrypted" in str(exc):
            parsed.skipped.append("passphrase-protected SSH key: skipped")
            return parsed
        if strict:
            raise InputError(
                "not a usable SSH private key (ssh-ed25519 and ssh-rsa keys are supported)",
                file=where,
            ) from None
        parsed.skipped.append("unsupported or malformed SSH key: skipped")
    return parsed


def _ssh_key_is_encrypted(content: bytes) -> bool:
    """True for an OpenSSH or PEM private key that needs a passphrase."""
    if b"Proc-Type: 4,ENCRYPTED" in content or b"BEGIN ENCRYPTED PRIVATE KEY" in content:
        return True
    lines = content.strip().splitlines()
    if not lines or b"OPENSSH PRIVATE KEY" not in lines[0]:
        return False
    body = b"".join(line.strip() for line in lines[1:] if not line.startswith(b"-----"))
    try:
        blob = base64.b64decode(body, validate=False)
    except ValueError:
        return False
    if not blob.startswith(_OPENSSH_MAGIC):
        return False
    rest = blob[len(_OPENSSH_MAGIC) :]
    if len(rest) < 4:
        return False
    size = int.from_bytes(rest[:4], "big")
    return rest[4 : 4 + size] != b"none"


class _CommandFailed(Exception):
    """A key command could not be run; the message is a note for the tried list."""


def _run_key_command(command: str, environ: Mapping[str, str]) -> bytes:
    """Run ``command`` and return its stdout, or raise :class:`_CommandFailed`.

    Like sops, the string is split into words with shell quoting rules and run
    directly (no shell), with stdin closed and stderr captured (not shown: it is
    the helper's business). The failure note names the program, not its arguments.
    """
    import shlex
    import subprocess

    try:
        args = shlex.split(command)
    except ValueError:
        raise _CommandFailed("could not parse the command (unbalanced quotes?)") from None
    if not args:
        raise _CommandFailed("empty command")
    program = args[0]
    try:
        done = subprocess.run(
            args,
            env=dict(environ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise _CommandFailed(f"command not found: {program}") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _CommandFailed(f"could not run {program}: {reason}") from None
    if done.returncode != 0:
        raise _CommandFailed(f"{program} failed with exit status {done.returncode}")
    return bytes(done.stdout)
