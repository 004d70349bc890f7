"""The one small interface every key source implements: wrap and unwrap a data key.

A SOPS file has one random 32-byte data key. Each recipient (an age public key,
a Vault transit key, an AWS KMS key...) stores that data key wrapped for itself
in the file's ``sops:`` block. A :class:`MasterKey` is one such entry: it knows
how to wrap a data key for its recipient, how to unwrap it again given the
identities on this machine (a :class:`~kagura_ops.keys.identities.Keyring`), and
how to read and write its entry in the metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kagura_ops.keys.identities import Keyring

__all__ = ["MasterKey"]


class MasterKey(ABC):
    """One recipient of a file's data key, as stored in the ``sops:`` metadata."""

    #: The metadata list this key type lives in (``age``, ``hc_vault``, ``kms``, ``pgp``...).
    kind: str

    #: The wrapped data key exactly as stored in the file (empty until :meth:`wrap`).
    enc: str = ""

    @property
    @abstractmethod
    def name(self) -> str:
        """A public identifier for messages: the recipient, ARN or key path. Never secret."""

    @property
    def short_name(self) -> str:
        """:attr:`name` cut to a readable length (post-quantum recipients run to 2,000 chars)."""
        name = self.name
        return name if len(name) <= 72 else f"{name[:40]}…{name[-8:]}"

    @abstractmethod
    def wrap(self, data_key: bytes) -> None:
        """Wrap ``data_key`` for this recipient and store the result in :attr:`enc`."""

    @abstractmethod
    def unwrap(self, keyring: Keyring) -> bytes:
        """Return the data key (or Shamir share) using an identity from ``keyring``.

        Raises :class:`~kagura_ops.errors.NoIdentityError` when no identity fits and
        :class:`~kagura_ops.errors.UnsupportedError` for key types we cannot use.
        """

    @abstractmethod
    def to_metadata(self) -> dict[str, Any]:
        """The entry as it is written under ``sops.<kind>`` (key order as sops writes it)."""

    @classmethod
    @abstractmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> MasterKey:
        """Read an entry of ``sops.<kind>``."""

    def without_enc(self) -> MasterKey:
        """The same recipient with nothing wrapped yet (to wrap a new data key)."""
        return type(self).from_metadata({**self.to_metadata(), "enc": ""})

    def same_recipient(self, other: MasterKey) -> bool:
        """True when both entries wrap for the same recipient (their wrapped keys may differ)."""
        return self.kind == other.kind and self.name == other.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"
