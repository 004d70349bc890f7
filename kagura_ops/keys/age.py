"""age recipients (X25519 and SSH public keys) as a SOPS key source, via pyrage.

In a SOPS file each age recipient has one entry under ``sops.age``::

    - recipient: age1...
      enc: |
        -----BEGIN AGE ENCRYPTED FILE-----
        ...
        -----END AGE ENCRYPTED FILE-----

``enc`` is a complete ASCII-armored age file whose payload is the raw data key
(or a Shamir share). Like sops (age's armor writer) we write 64-column base64
lines, ``\\n`` line endings and one final newline, which YAML stores as a ``|``
block, so any age implementation (``age -d``) can read it back.

Recipient forms (as sops parses them): ``age1...`` (X25519), ``ssh-ed25519 AAAA...``
and ``ssh-rsa AAAA...`` (optionally followed by a comment). sops also knows
post-quantum ``age1pq1...`` and plugin ``age1<plugin>1...`` recipients; pyrage
cannot use them, so they raise :class:`~kagura_ops.errors.UnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kagura_ops.errors import (
    ConfigError,
    DecryptionError,
    EncryptionError,
    FormatError,
    InputError,
    NoIdentityError,
    UnsupportedError,
)
from kagura_ops.keys.base import MasterKey

if TYPE_CHECKING:
    import os

    from kagura_ops.keys.identities import Keyring

__all__ = [
    "AgeKey",
    "generate_identity",
    "parse_recipient",
    "parse_recipients",
    "write_identity_file",
]

_EXPECTED_FORMS = "expected an age public key (age1...) or an SSH public key (ssh-ed25519, ssh-rsa)"
_ARMOR_BEGIN = "-----BEGIN AGE ENCRYPTED FILE-----"


def _recipient_kind(recipient: str) -> str:
    """Classify as sops's ``parseRecipient`` does: pq, plugin, x25519, ssh or ``""``."""
    if recipient.startswith("age1pq1"):
        return "pq"
    if recipient.startswith("age1"):
        # Bech32 data never contains "1", so a second one means "age1<plugin-name>1...".
        return "plugin" if recipient.count("1") > 1 else "x25519"
    if recipient.startswith("ssh-"):
        return "ssh"
    return ""


def parse_recipient(text: str) -> Any:
    """Parse one recipient into a pyrage recipient object.

    Raises :class:`ConfigError` for a malformed recipient (the message shows it:
    public keys are not secret) and :class:`UnsupportedError` for post-quantum and
    plugin recipients.
    """
    from pyrage import RecipientError, ssh, x25519

    recipient = text.strip()
    kind = _recipient_kind(recipient)
    if kind in ("pq", "plugin"):
        what = "post-quantum (age1pq1...)" if kind == "pq" else "age plugin"
        raise UnsupportedError(
            f"{what} recipient {recipient!r} is not supported yet (pyrage cannot encrypt to it)",
            hint="use an X25519 recipient (age-keygen) or an ssh-ed25519 key",
        )
    try:
        if kind == "x25519":
            return x25519.Recipient.from_str(recipient)
        if kind == "ssh":
            return ssh.Recipient.from_str(recipient)
    except RecipientError:
        kind_name = "age public key" if kind == "x25519" else "SSH public key"
        raise ConfigError(
            f"invalid age recipient {recipient!r}: not a valid {kind_name}",
            hint=_EXPECTED_FORMS,
        ) from None
    raise ConfigError(f"invalid age recipient {recipient!r}: unknown form", hint=_EXPECTED_FORMS)


def parse_recipients(value: str | Sequence[str]) -> list[str]:
    """Normalise recipients from ``.sops.yaml`` or the command line into a list.

    Accepts a comma-separated string or a list of strings (whose items may also
    hold commas), strips whitespace, ignores empty entries and drops duplicates
    (keeping the first). Every recipient is validated with :func:`parse_recipient`.
    """
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"invalid age recipient {item!r}: not a string", hint=_EXPECTED_FORMS)
        for part in item.split(","):
            recipient = part.strip()
            if not recipient or recipient in out:
                continue
            parse_recipient(recipient)
            out.append(recipient)
    return out


class AgeKey(MasterKey):
    """One ``sops.age`` entry: a recipient and the data key wrapped for it."""

    kind = "age"

    def __init__(self, recipient: str, enc: str = "") -> None:
        self.recipient = recipient.strip()
        self.enc = enc

    @property
    def name(self) -> str:
        """The recipient string, exactly as stored in the file."""
        return self.recipient

    def wrap(self, data_key: bytes) -> None:
        """Encrypt ``data_key`` to the recipient and store the armored age file in ``enc``."""
        import pyrage

        recipient = parse_recipient(self.recipient)
        try:
            armored = pyrage.encrypt(bytes(data_key), [recipient], armored=True)
        except pyrage.EncryptError:
            raise EncryptionError(
                f"could not wrap the data key for age recipient {self.recipient!r}"
            ) from None
        self.enc = armored.decode("ascii")

    def unwrap(self, keyring: Keyring) -> bytes:
        """Decrypt ``enc`` with the keyring's age identities and return the data key."""
        import pyrage

        kind = _recipient_kind(self.recipient)
        if kind in ("pq", "plugin"):
            what = "post-quantum" if kind == "pq" else "plugin"
            raise UnsupportedError(
                f"cannot decrypt for {what} age recipient {self.short_name!r}: not supported yet",
                hint="add an X25519 recipient to the file with sops or kagura-ops",
            )
        if not self.enc.strip():
            raise FormatError(f"age recipient {self.recipient!r} has no wrapped data key (enc)")
        # age's armor reader skips leading whitespace; rage does not.
        armored = self.enc.lstrip().encode("ascii", errors="replace")
        if not armored.startswith(_ARMOR_BEGIN.encode()):
            raise FormatError(
                f"the enc of age recipient {self.recipient!r} is not an armored age file"
            )

        identities = keyring.age_identities()
        if not identities:
            raise NoIdentityError(
                f"no age identity found to decrypt the data key for recipient "
                f"{self.recipient}; tried: {keyring.describe_tried()}",
                hint=self._hint(keyring),
            )
        try:
            return bytes(pyrage.decrypt(armored, identities))
        except pyrage.DecryptError as exc:
            if "no matching keys" not in str(exc).lower():
                raise DecryptionError(
                    f"could not decrypt the data key for age recipient {self.recipient!r}: "
                    "the enc block is malformed or corrupted"
                ) from None
        count = len(identities)
        found = f"{count} age identit{'y' if count == 1 else 'ies'}"
        raise NoIdentityError(
            f"none of the {found} found matches recipient {self.recipient}; "
            f"tried: {keyring.describe_tried()}",
            hint=self._hint(keyring),
        )

    @staticmethod
    def _hint(keyring: Keyring) -> str:
        keys_file = keyring.sops_keys_file
        where = keyring.display_path(keys_file) if keys_file else "~/.config/sops/age/keys.txt"
        return (
            "give the private key for this recipient with --identity FILE, "
            f"SOPS_AGE_KEY_FILE or KAGURA_AGE_KEY_FILE, or put it in {where}"
        )

    def to_metadata(self) -> dict[str, Any]:
        """``{"recipient": ..., "enc": ...}``, the key order sops writes."""
        return {"recipient": self.recipient, "enc": self.enc}

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> AgeKey:
        """Read one ``sops.age`` entry. The recipient is checked only when used."""
        recipient = entry.get("recipient")
        enc = entry.get("enc", "")
        if not isinstance(recipient, str) or not recipient.strip():
            raise FormatError("a sops.age entry has no recipient")
        if not isinstance(enc, str):
            raise FormatError(f"the enc of age recipient {recipient.strip()!r} is not a string")
        return cls(str(recipient), str(enc))


def generate_identity() -> tuple[str, str]:
    """A new X25519 identity: ``(secret "AGE-SECRET-KEY-1...", public "age1...")``."""
    from pyrage import x25519

    identity = x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def _rfc3339(moment: datetime) -> str:
    """Format like Go's ``time.RFC3339`` (what age-keygen writes): seconds, ``Z`` for UTC."""
    # An aware time keeps its offset; a naive one is local time, as age-keygen writes.
    aware = moment if moment.tzinfo is not None else moment.astimezone()
    text = aware.isoformat(timespec="seconds")
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def write_identity_file(
    path: str | os.PathLike[str], *, comment_time: datetime | None = None
) -> str:
    """Write a new identity in age-keygen's format and return its public key.

    The file is created ``0600`` (atomically; parent folders are created ``0700``)
    and holds ``# created: <RFC 3339>``, ``# public key: age1...`` and the secret
    key line. An existing file is never overwritten: :class:`InputError`.
    """
    from pathlib import Path

    from kagura_ops.atomicfile import atomic_write

    target = Path(path)
    if target.exists() or target.is_symlink():
        raise InputError(
            "refusing to overwrite an existing file",
            file=str(target),
            hint="choose another path or remove the old key file first (after backing it up)",
        )
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    secret, public = generate_identity()
    created = _rfc3339(comment_time if comment_time is not None else datetime.now().astimezone())
    atomic_write(
        target,
        f"# created: {created}\n# public key: {public}\n{secret}\n",
        private=True,
    )
    return public
