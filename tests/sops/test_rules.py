""".sops.yaml creation rules: discovery, matching, key forms, selection, errors."""

from __future__ import annotations

import logging
import os
import subprocess
import textwrap
from pathlib import Path

import pytest

from kagura_ops.errors import ConfigError
from kagura_ops.sops import rules
from kagura_ops.sops.rules import (
    CreationRule,
    KeySpec,
    find_config,
    load_config,
    lookup_config,
    rule_for,
)
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import interop_opt_out

AGE1 = "age1l44xcng8dqj32nlv6d930qvvrny05hglzcv9qpc7kxjc6902ma4qufys29"
AGE2 = "age1m2p7y40c439dl56vmzsraxqdq4648vj8v7dyrp6mefeaszw853yqfh0fmt"
AGE3 = "age14qxar23z8myndz9g4rhmzpa0k89ctpqw6p5j3zw59t09lphj35zsdc92cn"
FP = "35C1A64CD7FC0AB6EB66756B2445463C3234ECE1"
KMS_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ROLE = "arn:aws:iam::123456789012:role/sops"

_INTEROP = next(
    (
        d
        for d in (Path(__file__).resolve().parents[1] / "vectors" / "sops",)
        if (d / "age").is_dir()
    ),
    None,
)
needs_vectors = pytest.mark.interop  # the vectors are in tests/vectors: never skipped


def write_config(directory: Path, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / ".sops.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def rule_of(tmp_path: Path, text: str, file: str = "secrets.yaml") -> CreationRule:
    config = write_config(tmp_path, text)
    return rule_for(tmp_path / file, config)


def kinds_and_names(rule: CreationRule) -> list[list[str]]:
    return [[str(key) for key in group] for group in rule.key_groups]


# ---------------------------------------------------------------- discovery


def test_walks_up_from_the_files_directory(tmp_path: Path) -> None:
    config = write_config(tmp_path / "repo", "creation_rules: []\n")
    deep = tmp_path / "repo" / "a" / "b" / "c"
    deep.mkdir(parents=True)
    assert find_config(deep / "secret.enc.yaml") == config  # file need not exist
    assert find_config(deep) == config  # a directory is searched itself
    assert find_config(tmp_path / "repo" / "x.yaml") == config


def test_nearest_config_wins(tmp_path: Path) -> None:
    write_config(tmp_path, "creation_rules: []\n")
    inner = write_config(tmp_path / "team", "creation_rules: []\n")
    assert find_config(tmp_path / "team" / "sub" / "f.yaml") == inner


def test_no_config_found(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    result = lookup_config(tmp_path / "a" / "f.yaml")
    # Something above tmp_path could hold a .sops.yaml; it must then be outside tmp_path.
    assert result.path is None or tmp_path not in result.path.parents


def test_sops_yml_is_ignored_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outer = write_config(tmp_path, "creation_rules: []\n")
    inner = tmp_path / "inner"
    inner.mkdir()
    (inner / ".sops.yml").write_text("creation_rules: []\n")
    result = lookup_config(inner / "f.yaml")
    assert result.path == outer
    assert result.ignored == inner / ".sops.yml"
    assert result.warning is not None
    assert "must be called '.sops.yaml'" in result.warning
    with caplog.at_level(logging.WARNING, logger="kagura_ops.sops.rules"):
        assert find_config(inner / "f.yaml") == outer
    assert ".sops.yml" in caplog.text


def test_search_depth_is_limited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config(tmp_path, "creation_rules: []\n")
    deep = tmp_path / "1" / "2" / "3"
    deep.mkdir(parents=True)
    monkeypatch.setattr(rules, "MAX_DEPTH", 3)
    assert find_config(deep) is None  # checks 3, 2, 1 only
    monkeypatch.setattr(rules, "MAX_DEPTH", 4)
    assert find_config(deep) == tmp_path / ".sops.yaml"


# ---------------------------------------------------------------- matching


def test_first_match_wins(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""\
        creation_rules:
          - path_regex: prod/.*\\.yaml$
            age: {AGE1}
          - path_regex: \\.yaml$
            age: {AGE2}
          - age: {AGE3}
        """,
    )
    assert rule_for(tmp_path / "prod" / "db.yaml", config).index == 0
    assert rule_for(tmp_path / "dev" / "db.yaml", config).index == 1
    catch_all = rule_for(tmp_path / "dev" / "db.json", config)
    assert catch_all.index == 2
    assert catch_all.path_regex is None
    assert kinds_and_names(catch_all) == [[f"age:{AGE3}"]]


def test_path_is_matched_relative_to_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(
        tmp_path / "repo",
        f"""\
        creation_rules:
          - path_regex: ^secrets/[^/]+\\.yaml$
            age: {AGE1}
          - path_regex: ^/
            age: {AGE2}
        """,
    )
    loaded = load_config(config)
    assert loaded.match_path(tmp_path / "repo" / "secrets" / "a.yaml") == "secrets/a.yaml"
    # The working directory does not matter, relative paths are made absolute first.
    monkeypatch.chdir(tmp_path / "repo")
    assert loaded.rule_for(Path("secrets/a.yaml")).index == 0
    # A file outside the config directory is matched by its absolute path.
    outside = tmp_path / "elsewhere" / "secrets" / "a.yaml"
    assert loaded.match_path(outside) == str(outside)
    assert loaded.rule_for(outside).index == 1


def test_path_regex_is_searched_not_anchored(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        creation_rules:
          - path_regex: prod
            age: {AGE1}
        """,
        file="envs/prod/x.yaml",
    )
    assert rule.index == 0


def test_empty_path_regex_matches_everything(tmp_path: Path) -> None:
    rule = rule_of(tmp_path, f'creation_rules:\n  - path_regex: ""\n    age: {AGE1}\n')
    assert rule.path_regex is None


def test_no_matching_rule(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""\
        creation_rules:
          - path_regex: \\.json$
            age: {AGE1}
        """,
    )
    with pytest.raises(ConfigError) as info:
        rule_for(tmp_path / "app" / "secrets.yaml", config)
    message = str(info.value)
    assert str(config) in message
    assert "'app/secrets.yaml'" in message
    assert "hint:" in message
    assert load_config(config).find_rule(tmp_path / "app" / "secrets.yaml") is None


def test_config_without_creation_rules(tmp_path: Path) -> None:
    config = write_config(tmp_path, "stores:\n  yaml:\n    indent: 2\n")
    with pytest.raises(ConfigError, match="has no creation_rules"):
        rule_for(tmp_path / "x.yaml", config)
    empty = write_config(tmp_path / "empty", "")
    with pytest.raises(ConfigError, match="has no creation_rules"):
        rule_for(tmp_path / "empty" / "x.yaml", empty)


def test_later_broken_rules_do_not_matter_until_reached(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""\
        creation_rules:
          - path_regex: \\.yaml$
            age: {AGE1}
          - path_regex: "("
            age: 42
        """,
    )
    assert rule_for(tmp_path / "a.yaml", config).index == 0
    with pytest.raises(ConfigError, match=r"creation_rules\[1\]\.path_regex"):
        rule_for(tmp_path / "a.json", config)
    with pytest.raises(ConfigError, match=r"creation_rules\[1\]"):
        load_config(config).rules()


# ---------------------------------------------------------------- top-level key forms


def test_comma_strings_and_lists_give_the_same_keys(tmp_path: Path) -> None:
    as_string = rule_of(tmp_path / "s", f'creation_rules:\n  - age: " {AGE1} ,{AGE2},"\n')
    as_list = rule_of(tmp_path / "l", f"creation_rules:\n  - age: [{AGE1}, {AGE2}]\n")
    items_with_commas = rule_of(tmp_path / "c", f'creation_rules:\n  - age: ["{AGE1},{AGE2}"]\n')
    expected = [[f"age:{AGE1}", f"age:{AGE2}"]]
    assert kinds_and_names(as_string) == expected
    assert kinds_and_names(as_list) == expected
    assert kinds_and_names(items_with_commas) == expected


def test_every_top_level_key_kind(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        creation_rules:
          - age: {AGE1}
            pgp: "{FP[:20]} {FP[20:]}, {FP}"
            kms: "{KMS_ARN}+{ROLE},{KMS_ARN}"
            aws_profile: dev
            gcp_kms: projects/p/locations/global/keyRings/r/cryptoKeys/k
            hckms: ["cn-north-4:0f7e6a2c-1111-2222-3333-444455556666"]
            azure_keyvault: https://v.vault.azure.net/keys/sops/abc123, https://v.vault.azure.net/keys/k2
            hc_vault_transit_uri: https://vault.example.com:8200/v1/sops/transit/keys/k1
        """,
    )
    (group,) = rule.key_groups
    assert [key.kind for key in group] == [
        "age",
        "pgp",
        "pgp",
        "kms",
        "kms",
        "gcp_kms",
        "hckms",
        "azure_kv",
        "azure_kv",
        "hc_vault",
    ]
    assert group[1].get("fp") == FP  # spaces removed
    assert group[3] == KeySpec("kms", (("arn", KMS_ARN), ("role", ROLE), ("aws_profile", "dev")))
    assert group[3].name == f"{KMS_ARN}+{ROLE}"
    assert group[4].get("role") == ""
    assert group[5].get("resource_id") == "projects/p/locations/global/keyRings/r/cryptoKeys/k"
    assert group[6].get("key_id") == "cn-north-4:0f7e6a2c-1111-2222-3333-444455556666"
    assert (group[7].get("vault_url"), group[7].get("name"), group[7].get("version")) == (
        "https://v.vault.azure.net",
        "sops",
        "abc123",
    )
    assert group[8].get("version") == ""  # latest version, resolved when encrypting
    assert dict(group[9].params) == {
        "vault_address": "https://vault.example.com:8200",
        "engine_path": "sops/transit",
        "key_name": "k1",
    }
    assert group[9].name == "https://vault.example.com:8200/v1/sops/transit/keys/k1"


def test_rule_without_keys_has_no_groups(tmp_path: Path) -> None:
    rule = rule_of(tmp_path, "creation_rules:\n  - encrypted_regex: ^data$\n")
    assert rule.key_groups == []
    assert rule.effective_threshold == 0


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("age: 42", r"creation_rules\[0\]\.age: expected a comma-separated string or a list"),
        ("age: [42]", r"creation_rules\[0\]\.age\[0\]: expected a string, got int"),
        ("age: {a: b}", r"creation_rules\[0\]\.age: expected a comma-separated string"),
        ("hckms: cn:x", r"creation_rules\[0\]\.hckms: expected a list"),
        ("hckms: [nocolon]", r"invalid HuaweiCloud KMS key ID"),
        ("azure_keyvault: http://v/keys/k", r"Azure Key Vault key URL"),
        ("hc_vault_transit_uri: vault:8200/v1/transit/keys/k", r"missing scheme"),
        ("hc_vault_transit_uri: https://v/pre/v1/transit/keys/k", r"path prefix"),
        ("hc_vault_transit_uri: https://v/transit/k", r"not formatted correctly"),
        ("shamir_threshold: two", r"shamir_threshold: expected an integer"),
        ("shamir_threshold: -1", r"shamir_threshold: must not be negative"),
        ("mac_only_encrypted: maybe", r"mac_only_encrypted: expected true or false"),
        ("key_groups: {age: x}", r"key_groups: expected a list"),
        ("encrypted_regex: [a]", r"encrypted_regex: expected a string, got a list"),
    ],
)
def test_wrong_types_name_file_and_rule(tmp_path: Path, setting: str, message: str) -> None:
    config = write_config(tmp_path, f"creation_rules:\n  - {setting}\n")
    with pytest.raises(ConfigError, match=message) as info:
        rule_for(tmp_path / "x.yaml", config)
    assert str(info.value).startswith(f"{config}: creation_rules[0]")


# ---------------------------------------------------------------- key groups


def test_key_groups_and_shamir_threshold(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        creation_rules:
          - shamir_threshold: 2
            age: {AGE3}  # ignored: key_groups wins, as in sops
            key_groups:
              - age: [{AGE1}]
                pgp: ["{FP}"]
              - kms:
                  - arn: {KMS_ARN}
                    role: {ROLE}
                    context: {{app: web, env: prod}}
                    aws_profile: prod
                hc_vault: ["https://vault:8200/v1/transit/keys/k"]
              - gcp_kms: [{{resource_id: projects/p/k}}]
                azure_keyvault: [{{vaultUrl: "https://v.vault.azure.net", key: sops, version: v1}}]
                hckms: [{{key_id: "eu:abc"}}]
        """,
    )
    assert rule.shamir_threshold == 2
    assert rule.effective_threshold == 2
    assert kinds_and_names(rule) == [
        [f"age:{AGE1}", f"pgp:{FP}"],
        [f"kms:{KMS_ARN}+{ROLE}", "hc_vault:https://vault:8200/v1/transit/keys/k"],
        [
            "gcp_kms:projects/p/k",
            "hckms:eu:abc",
            "azure_kv:https://v.vault.azure.net/keys/sops/v1",
        ],
    ]
    kms = rule.key_groups[1][0]
    assert kms.context == (("app", "web"), ("env", "prod"))
    assert kms.get("aws_profile") == "prod"
    assert rule.ignored_keys == ("creation_rules[0].age (key_groups is set)",)


def test_key_groups_merge_and_deduplicate(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        creation_rules:
          - key_groups:
              - merge:
                  - age: [{AGE1}]
                  - age: [{AGE2}]
                age: [{AGE1}, "{AGE3},{AGE2}"]
        """,
    )
    assert kinds_and_names(rule) == [[f"age:{AGE1}", f"age:{AGE2}", f"age:{AGE3}"]]


def test_threshold_defaults_to_all_groups(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"creation_rules:\n  - key_groups: [{{age: [{AGE1}]}}, {{age: [{AGE2}]}}]\n",
    )
    assert rule.shamir_threshold == 0
    assert rule.effective_threshold == 2


@pytest.mark.parametrize("threshold", [1, 3])
def test_threshold_out_of_range(tmp_path: Path, threshold: int) -> None:
    config = write_config(
        tmp_path,
        f"creation_rules:\n  - shamir_threshold: {threshold}\n"
        f"    key_groups: [{{age: [{AGE1}]}}, {{age: [{AGE2}]}}]\n",
    )
    with pytest.raises(ConfigError, match=r"shamir_threshold: is .* 2 key groups"):
        rule_for(tmp_path / "x.yaml", config)


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("age: a,b", r"key_groups\[0\]\.age: expected a list"),
        ("kms: [{role: r}]", r"key_groups\[0\]\.kms\[0\]: a KMS key needs an 'arn'"),
        ("kms: [arn]", r"key_groups\[0\]\.kms\[0\]: expected a mapping"),
        ("azure_keyvault: [{key: k}]", r"needs 'vaultUrl' and 'key'"),
        ("gcp_kms: [{}]", r"needs a 'resource_id'"),
    ],
)
def test_key_group_errors(tmp_path: Path, group: str, message: str) -> None:
    config = write_config(tmp_path, f"creation_rules:\n  - key_groups:\n      - {group}\n")
    with pytest.raises(ConfigError, match=message):
        rule_for(tmp_path / "x.yaml", config)


# ---------------------------------------------------------------- anchors, real files


@needs_vectors
def test_flux_config_with_anchors_parses() -> None:
    assert _INTEROP is not None
    config = load_config(_INTEROP / "age" / "flux-kustomize-controller" / "dot-sops.yaml")
    parsed = config.rules()
    assert len(parsed) == 5
    assert [r.path_regex for r in parsed] == [
        r"(inside|pgp)\.yaml$",
        r"json\.yaml$",
        r"\.yaml$",
        r"\.(env|txt)$",
        None,
    ]
    assert parsed[2].selection.encrypted_regex == "^(data|stringData)$"  # *encrypted_regex
    assert kinds_and_names(parsed[2]) == [[f"age:{AGE1}"]]  # *age
    assert kinds_and_names(parsed[4]) == [[f"age:{AGE1}"], [f"pgp:{FP}"]]
    assert {r.yaml_indent for r in parsed} == {2}
    assert {r.json_indent for r in parsed} == {2}
    folder = config.path.parent
    assert config.rule_for(folder / "secrets" / "pgp.yaml").index == 0
    assert config.rule_for(folder / "x.env").index == 3
    assert config.rule_for(folder / "x.ini").index == 4


@needs_vectors
def test_generated_configs_parse() -> None:
    assert _INTEROP is not None
    folder = _INTEROP / "age" / "generated-sops-3.11.0"
    shamir = rule_for(folder / "x.yaml", folder / "g_shamir_2of3.dot-sops.yaml")
    assert shamir.shamir_threshold == 2
    assert [len(g) for g in shamir.key_groups] == [1, 1, 1]
    mac_only = rule_for(folder / "x.yaml", folder / "g_mac_only_encrypted.dot-sops.yaml")
    assert mac_only.selection == Selection(
        encrypted_regex="^(data|stringData)$", mac_only_encrypted=True
    )


def test_merge_keys_and_aliases(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        x-common: &common
          encrypted_regex: ^secret
          age: &team [{AGE1}, {AGE2}]
        creation_rules:
          - <<: *common
            path_regex: \\.yaml$
            key_groups:
              - age: *team
        """,
    )
    assert rule.selection.encrypted_regex == "^secret"
    assert kinds_and_names(rule) == [[f"age:{AGE1}", f"age:{AGE2}"]]


# ---------------------------------------------------------------- selection, indent


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ("", Selection.default()),
        ("unencrypted_suffix: _plain", Selection(unencrypted_suffix="_plain")),
        ("encrypted_suffix: _secret", Selection(encrypted_suffix="_secret")),
        ("unencrypted_regex: ^meta", Selection(unencrypted_regex="^meta")),
        ("encrypted_regex: ^(data|stringData)$", Selection(encrypted_regex="^(data|stringData)$")),
        (
            "unencrypted_comment_regex: sops:plain",
            Selection(unencrypted_comment_regex="sops:plain"),
        ),
        ("encrypted_comment_regex: sops:enc", Selection(encrypted_comment_regex="sops:enc")),
        (
            "mac_only_encrypted: true\n    encrypted_suffix: _s",
            Selection(encrypted_suffix="_s", mac_only_encrypted=True),
        ),
        (
            "mac_only_encrypted: yes",
            Selection(mac_only_encrypted=True, unencrypted_suffix="_unencrypted"),
        ),
    ],
)
def test_selection_options(tmp_path: Path, setting: str, expected: Selection) -> None:
    rule = rule_of(tmp_path, f"creation_rules:\n  - age: {AGE1}\n    {setting}\n")
    assert rule.selection == expected


def test_two_selection_rules_are_refused(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"""\
        creation_rules:
          - path_regex: \\.json$
            age: {AGE1}
          - age: {AGE1}
            encrypted_regex: ^data$
            unencrypted_suffix: _plain
        """,
    )
    with pytest.raises(ConfigError) as info:
        rule_for(tmp_path / "x.yaml", config)
    message = str(info.value)
    assert message.startswith(f"{config}: creation_rules[1]: sets unencrypted_suffix and ")
    assert "encrypted_regex" in message


def test_invalid_selection_regex(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"creation_rules:\n  - age: {AGE1}\n    encrypted_regex: '['\n")
    with pytest.raises(ConfigError, match=r"creation_rules\[0\]\.encrypted_regex: invalid"):
        rule_for(tmp_path / "x.yaml", config)


def test_indent_from_stores(tmp_path: Path) -> None:
    rule = rule_of(tmp_path, f"stores:\n  yaml: {{indent: 2}}\ncreation_rules:\n  - age: {AGE1}\n")
    assert rule.yaml_indent == 2
    assert rule.json_indent is None
    default = rule_of(
        tmp_path / "d", f"stores: {{yaml: {{indent: 0}}}}\ncreation_rules: [{{age: {AGE1}}}]\n"
    )
    assert default.yaml_indent is None
    config = write_config(tmp_path / "n", "stores: {yaml: {indent: -2}}\ncreation_rules: []\n")
    with pytest.raises(ConfigError, match=r"stores\.yaml\.indent: must not be negative"):
        load_config(config)


def test_unknown_settings_are_reported_not_fatal(tmp_path: Path) -> None:
    rule = rule_of(
        tmp_path,
        f"""\
        destination_rules:
          - s3_bucket: b
            recreation_rule: {{age: {AGE1}}}
        creation_rules:
          - age: {AGE1}
            encrypted_regexp: ^data$
            key_groups: []
        """,
    )
    assert rule.selection == Selection.default()
    assert rule.ignored_keys == ("creation_rules[0].encrypted_regexp",)
    assert kinds_and_names(rule) == [[f"age:{AGE1}"]]  # empty key_groups: top-level keys apply


# ---------------------------------------------------------------- invalid files


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("creation_rules: [\n", r"invalid YAML: .*\(line \d+, column \d+\)"),
        ("creation_rules:\n  - age: a\ncreation_rules: []\n", r"invalid YAML: .*duplicate key"),
        ("- a\n- b\n", r"top level: expected a mapping, got a list"),
        ("creation_rules: {age: a}\n", r"creation_rules: expected a list"),
        ("creation_rules: [a]\n", r"creation_rules\[0\]: expected a mapping, got str"),
        ("stores: [1]\ncreation_rules: []\n", r"stores: expected a mapping"),
    ],
)
def test_invalid_config_files(tmp_path: Path, text: str, message: str) -> None:
    config = write_config(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        rule_for(tmp_path / "x.yaml", config)
    assert str(info.value).startswith(f"{config}: ")
    assert info.value.exit_code == 6


def test_unreadable_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the config file") as info:
        rule_for(tmp_path / "x.yaml", tmp_path / "missing" / ".sops.yaml")
    assert info.value.file == str(tmp_path / "missing" / ".sops.yaml")


# ---------------------------------------------------------------- agreement with sops


@pytest.mark.interop
@pytest.mark.skipif(interop_opt_out("sops"), reason="KAGURA_OPS_SKIP_INTEROP=1 opt-out")
def test_same_rule_as_sops(tmp_path: Path) -> None:
    """Each rule gets a distinct encrypted_regex; sops writes the chosen one into the file."""
    repo = tmp_path / "repo"
    config = write_config(
        repo,
        f"""\
        creation_rules:
          - path_regex: ^prod/
            encrypted_regex: ^r0$
            age: {AGE2}
          - path_regex: ^/
            encrypted_regex: ^r1$
            age: {AGE2}
          - path_regex: \\.yaml$
            encrypted_regex: ^r2$
            age: {AGE2}
          - encrypted_regex: ^r3$
            age: {AGE2}
        """,
    )
    files = [
        repo / "prod" / "a.yaml",
        repo / "dev" / "prod" / "a.yaml",
        repo / "a.json",
        tmp_path / "outside" / "a.yaml",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    for file in files:
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text('{"r0": 1}\n' if file.suffix == ".json" else "r0: 1\n")
        ours = rule_for(file, config).selection.encrypted_regex
        result = subprocess.run(
            ["sops", "--config", str(config), "encrypt", str(file)],
            cwd=repo / "dev" if (repo / "dev").is_dir() else repo,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert f'"encrypted_regex": "{ours}"' in result.stdout or (
            f"encrypted_regex: {ours}" in result.stdout
        ), (file, ours, result.stdout)
