"""``.sops.yaml`` creation rules: which keys and selection rule a new file gets.

This follows sops' ``config`` package (``config/config.go``) so that both tools
pick the same rule for the same file:

* **Discovery.** Only a file named ``.sops.yaml`` counts. A ``.sops.yml`` seen
  on the way up is ignored with a warning (sops does the same). At most
  :data:`MAX_DEPTH` directories are searched. sops itself starts from the
  current directory; :func:`find_config` starts from the file's directory,
  which is what DESIGN.md asks for and gives the same answer whenever the
  command runs from the repository.
* **Matching.** ``path_regex`` is *searched* (not anchored) in the file's
  absolute path with the config file's directory and one separator stripped
  from the front, i.e. the path relative to the config directory when the file
  lies below it and the absolute path otherwise. Symlinks are not resolved.
  Rules are tried in order and the first match wins; a rule without (or with an
  empty) ``path_regex`` matches every file.
* **Keys.** A non-empty ``key_groups`` list replaces the rule's top-level key
  settings (``age``, ``pgp``, ``kms``, ``gcp_kms``, ``hckms``, ``azure_keyvault``,
  ``hc_vault_transit_uri``). Top-level settings accept a comma-separated string
  or a list; key-group lists must be YAML lists, as in sops. Duplicate keys in a
  group are dropped, as in sops.
* **Selection.** At most one of the six suffix/regex rules per creation rule.

Patterns are compiled with Python's :mod:`re`; sops uses Go's RE2. The common
syntax is the same, RE2-only escapes such as ``\\z`` are reported as invalid.
Only the rules up to the matching one are examined (like sops), so a broken
later rule does not stop files that an earlier rule covers;
:meth:`SopsConfig.rules` checks every rule.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from kagura_ops.errors import ConfigError
from kagura_ops.sops.selection import RULE_KEYS, Selection

__all__ = [
    "ALTERNATE_CONFIG_NAME",
    "CONFIG_FILE_NAME",
    "KEY_SPEC_KINDS",
    "MAX_DEPTH",
    "ConfigLookup",
    "CreationRule",
    "KeySpec",
    "SopsConfig",
    "find_config",
    "load_config",
    "lookup_config",
    "rule_for",
]

log = logging.getLogger(__name__)

CONFIG_FILE_NAME = ".sops.yaml"
#: Recognised only to warn that it is ignored.
ALTERNATE_CONFIG_NAME = ".sops.yml"
#: How many directories sops searches (the start directory included).
MAX_DEPTH = 100

#: The kinds a :class:`KeySpec` can have: the ``sops:`` metadata list each key lives in.
KEY_SPEC_KINDS = ("age", "pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms")

_SELECTION_KEYS = RULE_KEYS
_SELECTION_REGEXES = _SELECTION_KEYS[2:]
# Top-level key settings, in the order sops turns them into keys.
_TOP_LEVEL_KEY_FIELDS = (
    "age",
    "pgp",
    "kms",
    "gcp_kms",
    "hckms",
    "azure_keyvault",
    "hc_vault_transit_uri",
)
_RULE_FIELDS = frozenset(
    {
        "path_regex",
        "aws_profile",
        "key_groups",
        "shamir_threshold",
        "mac_only_encrypted",
        *_TOP_LEVEL_KEY_FIELDS,
        *_SELECTION_KEYS,
    }
)
_GROUP_FIELDS = frozenset(
    {"merge", "age", "pgp", "kms", "gcp_kms", "hckms", "azure_keyvault", "hc_vault"}
)
# yaml.v3 still reads YAML 1.1 booleans into a typed bool field.
_YAML11_BOOLS = {
    **dict.fromkeys(("y", "yes", "on", "true"), True),
    **dict.fromkeys(("n", "no", "off", "false"), False),
}
_AZURE_URL = re.compile(r"^(https://[^/]+)/keys/([^/]+)(/[^/]*)?$")
_VAULT_PREFIXED = re.compile(r"/[^/]+/v[0-9]+/[^/]+/[^/]+/[^/]+")
_VAULT_PATH = re.compile(r"/v[0-9]+/[^/]+/[^/]+/[^/]+")


# ---------------------------------------------------------------------------- keys


@dataclass(frozen=True)
class KeySpec:
    """One key a creation rule names, before any key source is built from it.

    ``params`` uses the field names of the key's ``sops:`` metadata entry, so a
    key source can be created from it directly:

    ============ ====================================================
    kind         params
    ============ ====================================================
    ``age``      ``recipient`` (an ``age1…`` or SSH public key)
    ``pgp``      ``fp`` (fingerprint, spaces removed)
    ``kms``      ``arn``, optional ``role`` and ``aws_profile``;
                 the encryption context is in :attr:`context`
    ``gcp_kms``  ``resource_id``
    ``azure_kv`` ``vault_url``, ``name``, ``version`` (may be empty:
                 sops resolves the latest version when encrypting)
    ``hc_vault`` ``vault_address``, ``engine_path``, ``key_name``
    ``hckms``    ``key_id`` (``region:key-uuid``)
    ============ ====================================================

    Values are checked for shape only (an age recipient is not parsed here).
    """

    kind: str
    params: tuple[tuple[str, str], ...]
    #: AWS KMS encryption context, sorted by key (empty for other kinds).
    context: tuple[tuple[str, str], ...] = ()

    def get(self, name: str, default: str = "") -> str:
        """The parameter ``name``, or ``default`` when it is not set."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    @property
    def name(self) -> str:
        """The key as sops prints it (its ``ToString``): recipient, fingerprint, ARN, URL..."""
        if self.kind == "age":
            return self.get("recipient")
        if self.kind == "pgp":
            return self.get("fp")
        if self.kind == "kms":
            role = self.get("role")
            return f"{self.get('arn')}+{role}" if role else self.get("arn")
        if self.kind == "gcp_kms":
            return self.get("resource_id")
        if self.kind == "azure_kv":
            return f"{self.get('vault_url')}/keys/{self.get('name')}/{self.get('version')}"
        if self.kind == "hc_vault":
            return (
                f"{self.get('vault_address')}/v1/{self.get('engine_path')}"
                f"/keys/{self.get('key_name')}"
            )
        return self.get("key_id")

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"


def _spec(kind: str, context: tuple[tuple[str, str], ...] = (), **params: str) -> KeySpec:
    # Optional parameters that are empty are left out; get() returns "" for them.
    return KeySpec(kind, tuple((k, v) for k, v in params.items() if v), context)


# ---------------------------------------------------------------------------- rules


@dataclass(frozen=True)
class CreationRule:
    """The creation rule that applies to one file, with its keys and selection rule."""

    #: The rule's ``path_regex``; ``None`` for a catch-all rule.
    path_regex: str | None
    #: Key groups. One group unless the rule uses ``key_groups``; an empty list
    #: when the rule names no key at all (the caller then needs keys from elsewhere
    #: or reports that there are no recipients).
    key_groups: list[list[KeySpec]]
    #: ``shamir_threshold`` as written; 0 when unset (see :attr:`effective_threshold`).
    shamir_threshold: int
    selection: Selection
    #: ``stores.yaml.indent``; ``None`` when unset or 0 (sops then indents by 4).
    yaml_indent: int | None
    config_path: Path
    #: Position of the rule in ``creation_rules`` (0-based).
    index: int
    #: ``stores.json.indent``; ``None`` when unset.
    json_indent: int | None = None
    #: Settings of the rule that have no effect: unknown names (typos) and
    #: top-level keys shadowed by ``key_groups``. sops ignores them silently;
    #: worth a warning.
    ignored_keys: tuple[str, ...] = ()

    @property
    def location(self) -> str:
        """``<config>: creation_rules[<index>]`` for messages."""
        return f"{self.config_path}: creation_rules[{self.index}]"

    @property
    def effective_threshold(self) -> int:
        """How many groups decrypt the file: sops uses all groups when no threshold is set."""
        if len(self.key_groups) <= 1:
            return len(self.key_groups)
        return self.shamir_threshold or len(self.key_groups)

    def keys(self) -> Iterator[KeySpec]:
        """Every key of every group, in order."""
        for group in self.key_groups:
            yield from group


class _Where:
    """Builds errors that name the config file and the setting at fault."""

    def __init__(self, config_path: Path, location: str) -> None:
        self.config_path = config_path
        self.location = location

    def at(self, suffix: str) -> _Where:
        return _Where(self.config_path, f"{self.location}{suffix}")

    def fail(self, problem: str, hint: str | None = None) -> NoReturn:
        raise ConfigError(f"{self.location}: {problem}", file=str(self.config_path), hint=hint)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _scalar(value: object, where: _Where) -> str:
    """A string-typed setting: any scalar, as text (yaml.v3 decodes scalars into strings)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    where.fail(f"expected a string, got {_type_name(value)}")


def _integer(value: object, where: _Where) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        where.fail(f"expected an integer, got {_type_name(value)}")
    return value


def _boolean(value: object, where: _Where) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _YAML11_BOOLS:
        return _YAML11_BOOLS[value.lower()]
    where.fail(f"expected true or false, got {value!r}")


def _list(value: object, where: _Where) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        where.fail(f"expected a list, got {_type_name(value)}")
    return value


def _mapping(value: object, where: _Where) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        where.fail(f"expected a mapping, got {_type_name(value)}")
    return value


def _key_field(value: object, where: _Where) -> list[str]:
    """A top-level key setting: a comma-separated string or a list of strings.

    sops joins list items with commas and splits again, so items may hold
    several keys too. Blanks around keys and empty entries are dropped.
    """
    if value is None:
        return []
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, str):
                where.at(f"[{i}]").fail(f"expected a string, got {_type_name(item)}")
        items = value
    else:
        where.fail(f"expected a comma-separated string or a list, got {_type_name(value)}")
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def _string_list(value: object, where: _Where) -> list[str]:
    """A key-group list of strings (a YAML list; empty entries dropped)."""
    items = [_scalar(item, where.at(f"[{i}]")) for i, item in enumerate(_list(value, where))]
    return [item for item in items if item.strip()]


def _age(recipient: str) -> KeySpec:
    return _spec("age", recipient=recipient.strip())


def _pgp(fingerprint: str) -> KeySpec:
    return _spec("pgp", fp=fingerprint.replace(" ", ""))


def _kms_from_arn(arn: str, aws_profile: str) -> KeySpec:
    # "arn+arn:aws:iam::…:role/x" names a role to assume; ARN paths never hold ':'.
    arn = arn.replace(" ", "")
    role = ""
    split_at = arn.find("+arn:")
    if split_at > 0:
        arn, role = arn[:split_at], arn[split_at + 1 :]
    return _spec("kms", arn=arn, role=role, aws_profile=aws_profile)


def _azure_from_url(url: str, where: _Where) -> KeySpec:
    match = _AZURE_URL.match(url.strip())
    if match is None:
        where.fail(
            f"could not parse {url!r} as an Azure Key Vault key URL",
            hint="use https://<vault>.vault.azure.net/keys/<name>[/<version>]",
        )
    version = (match[3] or "/")[1:]
    return _spec("azure_kv", vault_url=match[1], name=match[2], version=version)


def _vault_from_uri(uri: str, where: _Where) -> KeySpec:
    hint = "use https://vault.example.com:8200/v1/transit/keys/<key name>"
    parts = urlsplit(uri.strip())
    if not parts.scheme or not parts.netloc:
        where.fail(f"missing scheme or host in Vault transit URI {uri!r}", hint=hint)
    request_uri = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if _VAULT_PREFIXED.search(request_uri):
        where.fail(f"Vault behind a path prefix is not supported: {uri!r}", hint=hint)
    if not _VAULT_PATH.search(request_uri):
        where.fail(f"Vault transit URI {uri!r} is not formatted correctly", hint=hint)
    dirs = request_uri.strip("/").split("/")
    engine_path = "/".join(d for d in dirs[1:-2] if d)
    return _spec(
        "hc_vault",
        vault_address=f"{parts.scheme}://{parts.netloc}",
        engine_path=engine_path,
        key_name=dirs[-1],
    )


def _hckms(key_id: str, where: _Where) -> KeySpec:
    region, sep, uuid = key_id.strip().partition(":")
    if not sep or not region.strip() or not uuid.strip():
        where.fail(f"invalid HuaweiCloud KMS key ID {key_id!r}", hint="use 'region:key-uuid'")
    return _spec("hckms", key_id=key_id.strip())


def _kms_context(value: object, where: _Where) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    items = _mapping(value, where)
    return tuple(sorted((str(k), _scalar(v, where.at(f".{k}"))) for k, v in items.items()))


def _top_level_group(rule: Mapping[str, Any], where: _Where) -> list[KeySpec]:
    """The one key group of a rule without ``key_groups``, in sops' order."""
    group: list[KeySpec] = []
    group += [_age(k) for k in _key_field(rule.get("age"), where.at(".age"))]
    group += [_pgp(k) for k in _key_field(rule.get("pgp"), where.at(".pgp"))]
    profile = _scalar(rule.get("aws_profile"), where.at(".aws_profile"))
    group += [_kms_from_arn(k, profile) for k in _key_field(rule.get("kms"), where.at(".kms"))]
    group += [
        _spec("gcp_kms", resource_id=k)
        for k in _key_field(rule.get("gcp_kms"), where.at(".gcp_kms"))
    ]
    hckms = where.at(".hckms")  # a YAML list only, as in sops
    group += [
        _hckms(part, hckms)
        for item in _string_list(rule.get("hckms"), hckms)
        for part in item.split(",")
        if part.strip()
    ]
    azure = where.at(".azure_keyvault")
    group += [_azure_from_url(k, azure) for k in _key_field(rule.get("azure_keyvault"), azure)]
    vault = where.at(".hc_vault_transit_uri")
    group += [
        _vault_from_uri(k, vault) for k in _key_field(rule.get("hc_vault_transit_uri"), vault)
    ]
    return group


def _key_group(raw: object, where: _Where, ignored: list[str]) -> list[KeySpec]:
    """One entry of ``key_groups`` (or of a group's ``merge``), deduplicated like sops."""
    group_map = _mapping(raw, where)
    ignored += [f"{where.location}.{k}" for k in group_map if k not in _GROUP_FIELDS]
    group: list[KeySpec] = []
    merge = where.at(".merge")
    for i, sub in enumerate(_list(group_map.get("merge"), merge)):
        group += _key_group(sub, merge.at(f"[{i}]"), ignored)
    age = where.at(".age")
    group += [
        _age(part)
        for item in _string_list(group_map.get("age"), age)
        for part in item.split(",")
        if part.strip()
    ]
    group += [_pgp(k) for k in _string_list(group_map.get("pgp"), where.at(".pgp"))]
    kms = where.at(".kms")
    for i, entry in enumerate(_list(group_map.get("kms"), kms)):
        at = kms.at(f"[{i}]")
        fields = _mapping(entry, at)
        arn = _scalar(fields.get("arn"), at.at(".arn"))
        if not arn:
            at.fail("a KMS key needs an 'arn'")
        group.append(
            _spec(
                "kms",
                context=_kms_context(fields.get("context"), at.at(".context")),
                arn=arn,
                role=_scalar(fields.get("role"), at.at(".role")),
                aws_profile=_scalar(fields.get("aws_profile"), at.at(".aws_profile")),
            )
        )
    gcp = where.at(".gcp_kms")
    for i, entry in enumerate(_list(group_map.get("gcp_kms"), gcp)):
        at = gcp.at(f"[{i}]")
        resource_id = _scalar(_mapping(entry, at).get("resource_id"), at.at(".resource_id"))
        if not resource_id:
            at.fail("a GCP KMS key needs a 'resource_id'")
        group.append(_spec("gcp_kms", resource_id=resource_id))
    hckms = where.at(".hckms")
    for i, entry in enumerate(_list(group_map.get("hckms"), hckms)):
        at = hckms.at(f"[{i}]")
        group.append(_hckms(_scalar(_mapping(entry, at).get("key_id"), at.at(".key_id")), at))
    azure = where.at(".azure_keyvault")
    for i, entry in enumerate(_list(group_map.get("azure_keyvault"), azure)):
        at = azure.at(f"[{i}]")
        fields = _mapping(entry, at)
        vault_url = _scalar(fields.get("vaultUrl"), at.at(".vaultUrl"))
        name = _scalar(fields.get("key"), at.at(".key"))
        if not vault_url or not name:
            at.fail("an Azure Key Vault key needs 'vaultUrl' and 'key'")
        version = _scalar(fields.get("version"), at.at(".version"))
        group.append(_spec("azure_kv", vault_url=vault_url, name=name, version=version))
    vault = where.at(".hc_vault")
    group += [_vault_from_uri(uri, vault) for uri in _string_list(group_map.get("hc_vault"), vault)]
    return list(dict.fromkeys(group))


def _check_regex(pattern: str, where: _Where) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        where.fail(
            f"invalid regular expression {pattern!r}: {exc}",
            hint="patterns use the syntax common to Go RE2 and Python re",
        )


def _parse_rule(
    raw: Mapping[str, Any],
    index: int,
    config: SopsConfig,
) -> CreationRule:
    """Turn one raw ``creation_rules`` entry into a :class:`CreationRule`."""
    where = _Where(config.path, f"creation_rules[{index}]")
    path_regex = _scalar(raw.get("path_regex"), where.at(".path_regex"))
    if path_regex:
        _check_regex(path_regex, where.at(".path_regex"))
    ignored = [f"{where.location}.{k}" for k in raw if k not in _RULE_FIELDS]

    selection_values = {k: _scalar(raw.get(k), where.at(f".{k}")) for k in _SELECTION_KEYS}
    chosen = [k for k in _SELECTION_KEYS if selection_values[k]]
    if len(chosen) > 1:
        where.fail(
            f"sets {' and '.join(chosen)}; a rule can use only one of {', '.join(_SELECTION_KEYS)}",
            hint="keep one selection rule per creation rule (sops refuses more)",
        )
    for name in _SELECTION_REGEXES:
        if selection_values[name]:
            _check_regex(selection_values[name], where.at(f".{name}"))
    mac_only = _boolean(raw.get("mac_only_encrypted"), where.at(".mac_only_encrypted"))
    selection = Selection.from_mapping(
        {**{k: v for k, v in selection_values.items() if v}, "mac_only_encrypted": mac_only}
    )

    groups_where = where.at(".key_groups")
    raw_groups = _list(raw.get("key_groups"), groups_where)
    if raw_groups:
        key_groups = [
            _key_group(group, groups_where.at(f"[{i}]"), ignored)
            for i, group in enumerate(raw_groups)
        ]
        ignored += [
            f"{where.location}.{k} (key_groups is set)"
            for k in (*_TOP_LEVEL_KEY_FIELDS, "aws_profile")
            if raw.get(k) not in (None, "", [])
        ]
    else:
        group = _top_level_group(raw, where)
        key_groups = [group] if group else []

    threshold_where = where.at(".shamir_threshold")
    threshold = _integer(raw.get("shamir_threshold"), threshold_where)
    if threshold < 0:
        threshold_where.fail(f"must not be negative, got {threshold}")
    if len(key_groups) > 1 and threshold and not 2 <= threshold <= len(key_groups):
        threshold_where.fail(
            f"is {threshold} but the rule has {len(key_groups)} key groups",
            hint=f"use a value from 2 to {len(key_groups)}, or leave it out to need all groups",
        )

    return CreationRule(
        path_regex=path_regex or None,
        key_groups=key_groups,
        shamir_threshold=threshold,
        selection=selection,
        yaml_indent=config.yaml_indent,
        config_path=config.path,
        index=index,
        json_indent=config.json_indent,
        ignored_keys=tuple(ignored),
    )


# ---------------------------------------------------------------------------- config file


@dataclass(frozen=True)
class SopsConfig:
    """A loaded ``.sops.yaml``: its creation rules (parsed on use) and store settings."""

    path: Path
    #: The raw rule mappings; ``None`` when the file has no ``creation_rules`` key.
    raw_rules: tuple[Mapping[str, Any], ...] | None
    yaml_indent: int | None = None
    json_indent: int | None = None

    def match_path(self, file_path: Path | str) -> str:
        """The string ``path_regex`` is searched in for ``file_path`` (see the module doc)."""
        absolute = os.path.abspath(file_path)
        prefix = os.path.abspath(os.path.dirname(self.path)) + os.sep
        return absolute[len(prefix) :] if absolute.startswith(prefix) else absolute

    def find_rule(self, file_path: Path | str) -> CreationRule | None:
        """The first rule that matches ``file_path``, or ``None``.

        Raises :class:`ConfigError` when a rule up to and including the match is invalid.
        """
        target = self.match_path(file_path)
        for index, raw in enumerate(self.raw_rules or ()):
            where = _Where(self.path, f"creation_rules[{index}].path_regex")
            pattern = _scalar(raw.get("path_regex"), where)
            if pattern:
                _check_regex(pattern, where)
                if re.search(pattern, target) is None:
                    continue
            return _parse_rule(raw, index, self)
        return None

    def rule_for(self, file_path: Path | str) -> CreationRule:
        """The rule for ``file_path``; :class:`ConfigError` when none matches."""
        if self.raw_rules is None:
            raise ConfigError(
                "has no creation_rules",
                file=str(self.path),
                hint="add a creation_rules list (see `sops --help` or the kagura-ops docs)",
            )
        rule = self.find_rule(file_path)
        if rule is None:
            target = self.match_path(file_path)
            raise ConfigError(
                f"no creation rule matches {target!r} "
                f"(checked {len(self.raw_rules)} path_regex rules)",
                file=str(self.path),
                hint=(
                    f"path_regex is searched in the path relative to {self.path.parent}; "
                    "add a rule that matches it, or a last rule without path_regex as a catch-all"
                ),
            )
        return rule

    def rules(self) -> list[CreationRule]:
        """Every creation rule, fully checked (for validating a config file)."""
        return [_parse_rule(raw, i, self) for i, raw in enumerate(self.raw_rules or ())]


def _read_yaml(config_path: Path) -> object:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the config file: {exc}", file=str(config_path)) from None
    try:
        # Like sops (yaml.Unmarshal), only the first document is used.
        return next(iter(YAML(typ="safe").load_all(text)), None)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError(f"invalid YAML: {problem}{position}", file=str(config_path)) from None
    except YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=str(config_path)) from None


def _indent(stores: Mapping[str, Any], store: str, where: _Where) -> int | None:
    section = stores.get(store)
    if section is None:
        return None
    at = where.at(f".{store}")
    value = _mapping(section, at).get("indent")
    return None if value is None else _integer(value, at.at(".indent"))


def load_config(config_path: Path) -> SopsConfig:
    """Read ``config_path`` and check its top-level shape.

    Rules themselves are checked when used (:meth:`SopsConfig.rule_for`) or all at
    once with :meth:`SopsConfig.rules`.
    """
    config_path = Path(config_path)
    doc = _read_yaml(config_path)
    top = _Where(config_path, "top level")
    if doc is None:
        return SopsConfig(config_path, None)
    top_map = _mapping(doc, top)

    stores_where = _Where(config_path, "stores")
    raw_stores = top_map.get("stores")
    stores = {} if raw_stores is None else _mapping(raw_stores, stores_where)
    yaml_indent = _indent(stores, "yaml", stores_where)
    if yaml_indent is not None and yaml_indent < 0:
        stores_where.at(".yaml.indent").fail(f"must not be negative, got {yaml_indent}")
    json_indent = _indent(stores, "json", stores_where)

    raw_rules: tuple[Mapping[str, Any], ...] | None = None
    if top_map.get("creation_rules") is not None:
        rules_where = _Where(config_path, "creation_rules")
        raw_rules = tuple(
            _mapping(raw, rules_where.at(f"[{i}]"))
            for i, raw in enumerate(_list(top_map["creation_rules"], rules_where))
        )
    # destination_rules (sops publish) are not used by kagura-ops.
    return SopsConfig(config_path, raw_rules, yaml_indent or None, json_indent)


def rule_for(file_path: Path, config_path: Path) -> CreationRule:
    """The creation rule of ``config_path`` that applies to ``file_path`` (first match wins)."""
    return load_config(config_path).rule_for(file_path)


# ---------------------------------------------------------------------------- discovery


@dataclass(frozen=True)
class ConfigLookup:
    """The result of searching for ``.sops.yaml``."""

    path: Path | None
    #: A ``.sops.yml`` found on the way (closest first), which sops ignores.
    ignored: Path | None = None

    @property
    def warning(self) -> str | None:
        """sops' warning about an ignored ``.sops.yml``, if there is one."""
        if self.ignored is None:
            return None
        text = (
            f"ignoring {str(self.ignored)!r} when searching for config file; "
            f"the config file must be called {CONFIG_FILE_NAME!r}"
        )
        return f"{text}; using {str(self.path)!r} instead" if self.path else text


def lookup_config(start: Path) -> ConfigLookup:
    """Search ``start`` (a directory, or a file whose directory is used) and its parents.

    At most :data:`MAX_DEPTH` directories are searched; the path is made absolute
    first, without resolving symlinks.
    """
    start = Path(os.path.abspath(start))
    directory = start if start.is_dir() else start.parent
    ignored: Path | None = None
    for _ in range(MAX_DEPTH):
        candidate = directory / CONFIG_FILE_NAME
        if candidate.is_file():
            return ConfigLookup(candidate, ignored)
        alternate = directory / ALTERNATE_CONFIG_NAME
        if ignored is None and alternate.is_file():
            ignored = alternate
        if directory.parent == directory:
            break
        directory = directory.parent
    return ConfigLookup(None, ignored)


def find_config(start: Path) -> Path | None:
    """The nearest ``.sops.yaml`` at or above ``start``; ``None`` if there is none.

    Logs sops' warning when a ``.sops.yml`` was skipped on the way.
    """
    result = lookup_config(start)
    if result.warning:
        log.warning("%s", result.warning)
    return result.path
