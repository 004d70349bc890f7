"""Which class handles which ``sops:`` key list, and keys we only carry along.

sops files can name recipients of kinds we cannot use yet (PGP, GCP KMS, Azure
Key Vault...). Their entries are kept byte for byte, so re-encrypting a file
never drops another team member's access, and trying to *use* one gives a clear
"not supported yet" error instead of a vague failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kagura_ops.errors import NoIdentityError, UnsupportedError
from kagura_ops.keys.base import MasterKey
from kagura_ops.keys.identities import Keyring

__all__ = ["KEY_KINDS", "OpaqueKey", "key_from_metadata"]

#: Every key list a ``sops:`` block (or a key group) may hold, in the order sops writes them.
KEY_KINDS = ("kms", "gcp_kms", "hckms", "azure_kv", "hc_vault", "age", "pgp")

_NAME_FIELDS = {
    "kms": "arn",
    "gcp_kms": "resource_id",
    "hckms": "key_id",
    "azure_kv": "vault_url",
    "hc_vault": "vault_address",
    "pgp": "fp",
}

_LABELS = {
    "kms": "AWS KMS",
    "gcp_kms": "GCP KMS",
    "hckms": "HuaweiCloud KMS",
    "azure_kv": "Azure Key Vault",
    "hc_vault": "Vault transit",
    "pgp": "pgp",
}


class OpaqueKey(MasterKey):
    """A recipient kagura-ops cannot use (yet): kept as is, never used."""

    def __init__(self, kind: str, entry: Mapping[str, Any]) -> None:
        self.kind = kind
        self._entry = dict(entry)
        self.enc = str(entry.get("enc", ""))

    @property
    def name(self) -> str:
        field = _NAME_FIELDS.get(self.kind, "")
        return f"{self.kind}:{self._entry.get(field, '?')}"

    def _unsupported(self) -> UnsupportedError:
        label = _LABELS.get(self.kind, self.kind)
        return UnsupportedError(
            f"{label} identities are not supported yet ({self.name})",
            hint="add an age recipient to the file (kagura-ops rotate --add-age) to use it here",
        )

    def wrap(self, data_key: bytes) -> None:
        raise self._unsupported()

    def unwrap(self, keyring: Keyring) -> bytes:
        raise self._unsupported()

    def to_metadata(self) -> dict[str, Any]:
        return dict(self._entry)

    def without_enc(self) -> MasterKey:
        raise self._unsupported()

    @classmethod
    def from_metadata(cls, entry: Mapping[str, Any]) -> MasterKey:
        raise TypeError("use OpaqueKey(kind, entry)")


def key_from_metadata(kind: str, entry: Mapping[str, Any]) -> MasterKey:
    """The key object for one entry of ``sops.<kind>``."""
    if kind == "age":
        from kagura_ops.keys.age import AgeKey

        return AgeKey.from_metadata(entry)
    return OpaqueKey(kind, entry)


def unusable(error: Exception) -> bool:
    """Whether ``error`` means "this key cannot be used here" (try the next one)."""
    return isinstance(error, UnsupportedError | NoIdentityError)
