"""Key management on an existing file: ``updatekeys`` and ``rotate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from kagura_ops.atomicfile import atomic_write
from kagura_ops.errors import ConfigError
from kagura_ops.keys.base import MasterKey
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.document import Parsed, unwrap_data_key, wrap_data_key
from kagura_ops.sops.files import (
    EncryptionSettings,
    decrypt_file,
    detect_format,
    encrypt_text,
    parse,
    read_text,
    settings_for,
)
from kagura_ops.sops.metadata import Metadata

__all__ = ["KeyUpdate", "rotate_file", "update_keys"]


@dataclass
class KeyUpdate:
    """The result of matching a file's recipients against its creation rule."""

    path: Path
    parsed: Parsed
    metadata: Metadata
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)

    def render(self) -> str:
        return self.parsed.render_with([None] * len(self.parsed.leaves), self.metadata)

    def write(self) -> None:
        atomic_write(self.path, self.render())


def _names(groups: list[list[MasterKey]]) -> list[list[str]]:
    return [[k.name for k in g] for g in groups]


def update_keys(
    path: str | Path, keyring: Keyring, *, fmt: str | None = None, config: str | Path | None = None
) -> KeyUpdate:
    """Re-wrap the same data key for the recipients the creation rule names now."""
    fmt = detect_format(path, fmt)
    parsed = parse(read_text(path), fmt, source=str(path))
    if parsed.metadata is None:
        from kagura_ops.errors import FormatError

        raise FormatError("not a SOPS-encrypted file", file=str(path))
    old = Metadata.from_mapping(parsed.metadata, source=str(path))
    settings = settings_for(path, config=config)
    old_names = {n for g in _names(old.key_groups) for n in g}
    new_names = {n for g in _names(settings.key_groups) for n in g}
    update = KeyUpdate(Path(path), parsed, old)
    update.added = sorted(new_names - old_names)
    update.removed = sorted(old_names - new_names)
    same_shape = [sorted(g) for g in _names(old.key_groups)] == [
        sorted(g) for g in _names(settings.key_groups)
    ] and old.threshold == (settings.shamir_threshold or old.threshold)
    if same_shape:
        return update
    data_key = unwrap_data_key(old, keyring, source=str(path))
    groups = settings.key_groups
    if len(groups) == 1 and len(old.key_groups) == 1:
        # Keep the existing stanzas of recipients that stay; wrap only for new ones.
        by_name = {k.name: k for k in old.key_groups[0]}
        groups = [[by_name.get(k.name, k) for k in groups[0]]]
        missing = [k for k in groups[0] if not k.enc]
        if missing:
            wrap_data_key(data_key, [missing], 0)
    else:
        wrap_data_key(data_key, groups, settings.shamir_threshold)
    if not update.changed:
        update.added = [
            f"key groups: {len(groups)} (threshold {settings.shamir_threshold or len(groups)})"
        ]
    update.metadata = Metadata(
        key_groups=groups,
        selection=old.selection,
        shamir_threshold=settings.shamir_threshold if len(groups) > 1 else 0,
        lastmodified=old.lastmodified,
        mac=old.mac,
        version=old.version,
    )
    return update


def rotate_file(
    path: str | Path,
    keyring: Keyring,
    *,
    fmt: str | None = None,
    add_age: Sequence[str] = (),
    rm_age: Sequence[str] = (),
) -> str:
    """The file encrypted under a fresh data key, with recipients added or removed."""
    from kagura_ops.keys.age import AgeKey, parse_recipients

    fmt = detect_format(path, fmt)
    decrypted = decrypt_file(path, keyring, fmt=fmt)
    meta = decrypted.metadata
    removing = set(parse_recipients(list(rm_age))) if rm_age else set()
    groups = [[k.without_enc() for k in g if k.name not in removing] for g in meta.key_groups]
    present = {k.name for g in groups for k in g}
    unknown = removing - {k.name for g in meta.key_groups for k in g}
    if unknown:
        raise ConfigError(
            f"cannot remove {', '.join(sorted(unknown))}: not a recipient of the file",
            file=str(path),
        )
    for recipient in parse_recipients(list(add_age)) if add_age else []:
        if recipient not in present:
            groups[0].append(AgeKey(recipient))
    if not all(groups):
        raise ConfigError("rotating would leave a key group without recipients", file=str(path))
    settings = EncryptionSettings(groups, meta.selection, meta.shamir_threshold)
    return encrypt_text(decrypted.render(), fmt, settings, source=str(path))
