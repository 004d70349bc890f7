"""The ``sops:`` metadata block: recipients, key groups, MAC, selection rule.

Read from any store as a plain mapping and written back in sops' own field
order, so a file we rewrite differs from sops' output only where values differ.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kagura_ops.errors import FormatError
from kagura_ops.keys.base import MasterKey
from kagura_ops.keys.registry import KEY_KINDS, key_from_metadata
from kagura_ops.sops.codec import Timestamp
from kagura_ops.sops.selection import Selection

__all__ = ["FORMAT_VERSION", "Metadata", "rfc3339"]

#: The sops file-format version we write (the sops release whose format we match).
FORMAT_VERSION = "3.11.0"


def rfc3339(moment: datetime) -> str:
    """Go's ``time.RFC3339`` layout in UTC, as sops writes ``lastmodified``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _canonical_time(value: Any) -> str:
    """``lastmodified`` re-formatted the way sops does before using it as additional data."""
    text = value.text if isinstance(value, Timestamp) else str(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FormatError(f"sops.lastmodified is not an RFC 3339 time: {text!r}") from None
    if moment.tzinfo is None:
        raise FormatError(f"sops.lastmodified has no time zone: {text!r}")
    offset = moment.utcoffset()
    assert offset is not None
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    seconds = int(offset.total_seconds())
    if seconds == 0:
        return base + "Z"
    sign = "+" if seconds > 0 else "-"
    seconds = abs(seconds)
    return f"{base}{sign}{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


@dataclass
class Metadata:
    """Everything in a file's ``sops:`` block."""

    key_groups: list[list[MasterKey]]
    selection: Selection = field(default_factory=Selection.default)
    shamir_threshold: int = 0
    lastmodified: str = ""
    mac: str = ""
    version: str = FORMAT_VERSION

    @property
    def mac_aad(self) -> str:
        """The additional data the MAC is encrypted with: ``lastmodified`` as RFC 3339."""
        return _canonical_time(self.lastmodified)

    @property
    def recipients(self) -> list[MasterKey]:
        return [key for group in self.key_groups for key in group]

    @property
    def threshold(self) -> int:
        """How many key groups must be unlocked (1 without Shamir)."""
        if len(self.key_groups) <= 1:
            return 1
        return self.shamir_threshold or len(self.key_groups)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "") -> Metadata:
        """Read a ``sops:`` mapping; missing recipients or fields are a :class:`FormatError`."""
        if not isinstance(data, Mapping):
            raise FormatError("the sops metadata is not a mapping", file=source or None)

        def entries(holder: Mapping[str, Any], kind: str, where: str) -> list[MasterKey]:
            raw = holder.get(kind)
            if raw in (None, "", []):
                return []
            if not isinstance(raw, list):
                raise FormatError(f"{where}.{kind} must be a list", file=source or None)
            keys = []
            for i, entry in enumerate(raw):
                if not isinstance(entry, Mapping):
                    raise FormatError(f"{where}.{kind}[{i}] must be a mapping", file=source or None)
                keys.append(key_from_metadata(kind, entry))
            return keys

        groups: list[list[MasterKey]] = []
        raw_groups = data.get("key_groups")
        if raw_groups:
            if not isinstance(raw_groups, list):
                raise FormatError("sops.key_groups must be a list", file=source or None)
            for i, group in enumerate(raw_groups):
                if not isinstance(group, Mapping):
                    raise FormatError(
                        f"sops.key_groups[{i}] must be a mapping", file=source or None
                    )
                groups.append(
                    [k for kind in KEY_KINDS for k in entries(group, kind, f"sops.key_groups[{i}]")]
                )
        else:
            single = [k for kind in KEY_KINDS for k in entries(data, kind, "sops")]
            if single:
                groups.append(single)
        if not any(groups):
            raise FormatError(
                "the sops metadata lists no recipients",
                file=source or None,
                hint="the file is damaged",
            )
        for field_name in ("mac", "lastmodified"):
            if not data.get(field_name):
                raise FormatError(f"the sops metadata has no {field_name}", file=source or None)
        threshold = data.get("shamir_threshold") or 0
        try:
            threshold = int(threshold)
        except (TypeError, ValueError):
            raise FormatError(
                "sops.shamir_threshold must be an integer", file=source or None
            ) from None
        lastmodified = data["lastmodified"]
        if isinstance(lastmodified, Timestamp):
            lastmodified = lastmodified.text
        return cls(
            key_groups=groups,
            selection=Selection.from_mapping(dict(data)),
            shamir_threshold=threshold,
            lastmodified=str(lastmodified),
            mac=str(data["mac"]),
            version=str(data.get("version", "")),
        )

    def to_mapping(self) -> dict[str, Any]:
        """The block in sops' field order (what the JSON store writes)."""
        out: dict[str, Any] = {}
        if len(self.key_groups) > 1:
            out["shamir_threshold"] = self.threshold
            out["key_groups"] = [_group_mapping(group, in_group=True) for group in self.key_groups]
        elif self.key_groups:
            out.update(_group_mapping(self.key_groups[0], in_group=False))
        pgp = out.pop("pgp", None)
        out["lastmodified"] = self.lastmodified
        out["mac"] = self.mac
        if pgp is not None:
            out["pgp"] = pgp
        out.update(self.selection.rules())
        if self.selection.mac_only_encrypted:
            out["mac_only_encrypted"] = True
        out["version"] = self.version
        return out

    def to_yaml_block(self) -> str:
        """The block as YAML text, ``sops:`` at column 0 and 4-space indentation."""
        lines = ["sops:"]
        _emit_mapping(self.to_mapping(), 1, lines)
        return "\n".join(lines) + "\n"


def _group_mapping(group: list[MasterKey], *, in_group: bool) -> dict[str, Any]:
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for key in group:
        by_kind.setdefault(key.kind, []).append(key.to_metadata())
    out: dict[str, Any] = {}
    # Inside a key group sops writes pgp first; at the top level after mac (see to_mapping).
    order = ("pgp", *KEY_KINDS[:-1]) if in_group else KEY_KINDS
    for kind in order:
        if kind in by_kind:
            out[kind] = by_kind[kind]
        elif in_group and kind in ("hc_vault", "age"):
            out[kind] = []  # sops always writes these two inside key groups
    return out


# -- a tiny block-YAML writer for the metadata (fixed shapes, no user data) -------------------

_PLAIN = re.compile(r"^[A-Za-z0-9_./+=@-][A-Za-z0-9_./+=@:, \[\]-]*$")


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if value is None:
        return "null"
    text = str(value)
    from kagura_ops.sops.yamlscalars import resolve_plain

    if (
        _PLAIN.match(text)
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
        and isinstance(resolve_plain(text), str)
        and (not text.startswith("-") or text.startswith("-----"))
        and text.lower() not in ("y", "n", "yes", "no", "on", "off")
    ):
        return text
    import json

    return json.dumps(text, ensure_ascii=False)


def _emit_value(prefix: str, value: Any, depth: int, lines: list[str]) -> None:
    pad = "    " * depth
    if isinstance(value, Mapping):
        if not value:
            lines.append(f"{prefix} {{}}")
            return
        lines.append(prefix)
        _emit_mapping(value, depth + 1, lines)
    elif isinstance(value, list):
        if not value:
            lines.append(f"{prefix} []")
            return
        lines.append(prefix)
        _emit_sequence(value, depth + 1, lines)
    elif isinstance(value, str) and "\n" in value:
        lines.append(f"{prefix} |" + ("" if value.endswith("\n") else "-"))
        for line in value.rstrip("\n").split("\n"):
            lines.append(f"{pad}    {line}" if line else "")
    else:
        lines.append(f"{prefix} {_scalar(value)}")


def _emit_mapping(mapping: Mapping[str, Any], depth: int, lines: list[str]) -> None:
    pad = "    " * depth
    for key, value in mapping.items():
        _emit_value(f"{pad}{key}:", value, depth, lines)


def _emit_sequence(items: list[Any], depth: int, lines: list[str]) -> None:
    pad = "    " * depth
    for item in items:
        if isinstance(item, Mapping) and item:
            first = True
            for key, value in item.items():
                lead = f"{pad}- " if first else f"{pad}  "
                # Nested content of a list item's mapping sits two columns in.
                sub: list[str] = []
                _emit_value(f"{lead}{key}:", value, depth, sub)
                lines.append(sub[0])
                lines.extend("  " + line if line else line for line in sub[1:])
                first = False
        else:
            _emit_value(f"{pad}-", item, depth, lines)
