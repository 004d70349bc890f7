"""Round trips with the real sops 3.11 binary, both ways.

sops must decrypt what we write (it checks the MAC) to the plaintext we started
from, and we must decrypt what sops writes. Plaintexts cover every leaf type,
comments, lists of mappings, selection rules, key groups, several documents,
anchors and flow collections.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kagura_ops.keys.age import AgeKey
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.files import EncryptionSettings, decrypt_text, encrypt_text, settings_for
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import Identity, isolated_environ, make_identity

VECTORS = Path(__file__).parents[1] / "vectors" / "sops" / "age" / "generated-sops-3.11.0"

PLAINTEXTS = {
    "types_comments": (VECTORS / "g_types_comments.input.yaml").read_text(),
    "lists_and_strings": """\
# service settings
services:
  - name: api
    token: "s3cr3t: with colon # and hash"
    ports: [8080, 8443]
  - name: worker   # the worker
    env:
      LEVEL: debug
      EMPTY: ""
      QUOTED_TRUE: "true"
      QUOTED_NUM: "0123"
pem: |
  -----BEGIN TEST-----
  abc
  -----END TEST-----
folded: >
  folded text
  continues here
tabs: "a\\tb"
emoji: "🔑 key"
octal_like: 0o17
hex: 0x1F
neg_float: -0.5
exp: 1.5e-7
""",
    "anchors_and_flow": """\
defaults: &defaults
  retries: 3
  password: hunter2
prod:
  <<: *defaults
  host: db.example
alias_scalar: &token tok-123
again: *token
flow: {a: 1, b: [x, "y, z"], c: {d: e}}
""",
    "multidoc": "a: 1\nsecret: first\n---\n# second doc\nb: 2\nsecret: second\n",
}


def _normal(value: Any) -> Any:
    """sops (like us) reads a YAML date as a timestamp at midnight UTC."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return value


def _load(text: str) -> list[Any]:
    return [_normal(d) for d in YAML(typ="safe", pure=True).load_all(text) if d is not None]


def _run_sops(
    sops_bin: str, home: Path, identity: Identity, *args: str, cwd: Path | None = None
) -> str:
    env = isolated_environ(home, SOPS_AGE_KEY_FILE=str(identity.path))
    result = subprocess.run(
        [sops_bin, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _settings(identity: Identity, **selection: Any) -> EncryptionSettings:
    chosen = Selection.from_mapping(selection) if selection else Selection.default()
    return EncryptionSettings([[AgeKey(identity.public)]], chosen)


@pytest.mark.parametrize("name", sorted(PLAINTEXTS))
def test_sops_decrypts_our_files(
    name: str, tmp_path: Path, home: Path, identity: Identity, sops_bin: str
) -> None:
    plain = PLAINTEXTS[name]
    encrypted = encrypt_text(plain, "yaml", _settings(identity), source=name)
    target = tmp_path / f"{name}.enc.yaml"
    target.write_text(encrypted)
    assert _load(_run_sops(sops_bin, home, identity, "decrypt", str(target))) == _load(plain)


@pytest.mark.parametrize("name", sorted(PLAINTEXTS))
def test_we_decrypt_sops_files(
    name: str, tmp_path: Path, home: Path, identity: Identity, sops_bin: str
) -> None:
    plain = PLAINTEXTS[name]
    source = tmp_path / f"{name}.yaml"
    source.write_text(plain)
    encrypted = _run_sops(
        sops_bin, home, identity, "encrypt", "--age", identity.public, str(source)
    )
    keyring = Keyring([identity.path], home=home, environ={})
    decrypted = decrypt_text(encrypted, "yaml", keyring, source=name)
    assert _load(decrypted.render()) == _load(plain)


def test_our_plaintext_survives_both_tools(
    tmp_path: Path, home: Path, identity: Identity, sops_bin: str
) -> None:
    """Our decrypt output re-encrypted by sops decrypts to the same values again."""
    plain = PLAINTEXTS["lists_and_strings"]
    keyring = Keyring([identity.path], home=home, environ={})
    ours = decrypt_text(encrypt_text(plain, "yaml", _settings(identity)), "yaml", keyring).render()
    (tmp_path / "again.yaml").write_text(ours)
    again = _run_sops(
        sops_bin, home, identity, "encrypt", "--age", identity.public, str(tmp_path / "again.yaml")
    )
    assert _load(decrypt_text(again, "yaml", keyring).render()) == _load(plain)


@pytest.mark.parametrize(
    "selection",
    [
        {"encrypted_regex": "^(password|token)$"},
        {"encrypted_regex": "^(password|token)$", "mac_only_encrypted": True},
        {"unencrypted_regex": "^(name|host)$"},
        {"encrypted_suffix": "_secret"},
    ],
    ids=["encrypted_regex", "mac_only_encrypted", "unencrypted_regex", "encrypted_suffix"],
)
def test_selection_rules_interoperate(
    selection: dict[str, Any], tmp_path: Path, home: Path, identity: Identity, sops_bin: str
) -> None:
    plain = "name: app\npassword: pw-1\ndb:\n  host: h\n  token: t-2\n  api_secret: as-3\n"
    encrypted = encrypt_text(plain, "yaml", _settings(identity, **selection))
    target = tmp_path / "sel.enc.yaml"
    target.write_text(encrypted)
    assert _load(_run_sops(sops_bin, home, identity, "decrypt", str(target))) == _load(plain)
    # And the other way, with the same rule given to sops through a .sops.yaml.
    rule = "".join(
        f"    {k}: {v!r}\n".replace("'", '"') if isinstance(v, str) else f"    {k}: true\n"
        for k, v in selection.items()
    )
    (tmp_path / ".sops.yaml").write_text(f"creation_rules:\n  - age: {identity.public}\n{rule}")
    (tmp_path / "sel.yaml").write_text(plain)
    theirs = _run_sops(sops_bin, home, identity, "encrypt", "sel.yaml", cwd=tmp_path)
    assert "mac_only_encrypted" in theirs or not selection.get("mac_only_encrypted")
    keyring = Keyring([identity.path], home=home, environ={})
    assert _load(decrypt_text(theirs, "yaml", keyring).render()) == _load(plain)


def test_shamir_key_groups_from_creation_rules(tmp_path: Path, home: Path, sops_bin: str) -> None:
    ids = [make_identity(tmp_path, f"g{i}.key") for i in range(3)]
    groups = "\n".join(f"      - age:\n          - {i.public}" for i in ids)
    (tmp_path / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    shamir_threshold: 2\n    key_groups:\n{groups}\n"
    )
    target = tmp_path / "team.enc.yaml"
    plain = "db_password: pw-shamir\napi:\n  token: t0k\n"
    encrypted = encrypt_text(plain, "yaml", settings_for(target), source=str(target))
    target.write_text(encrypted)
    assert encrypted.count("-----BEGIN AGE ENCRYPTED FILE-----") == 3
    # Any two of the three identities decrypt, with sops and with us.
    for pair in ((0, 1), (0, 2), (1, 2)):
        keyfile = tmp_path / f"pair{pair[0]}{pair[1]}.txt"
        keyfile.write_text(ids[pair[0]].path.read_text() + ids[pair[1]].path.read_text())
        both = Identity(keyfile, ids[pair[0]].public)
        assert _load(_run_sops(sops_bin, home, both, "decrypt", str(target))) == _load(plain)
        keyring = Keyring([keyfile], home=home, environ={})
        assert _load(decrypt_text(encrypted, "yaml", keyring).render()) == _load(plain)


def test_sops_edit_of_our_file(
    tmp_path: Path, home: Path, identity: Identity, sops_bin: str
) -> None:
    """sops can change a value in a file we wrote, and we read the result."""
    target = tmp_path / "edit.enc.yaml"
    target.write_text(encrypt_text("a: 1\nsecret: old\n", "yaml", _settings(identity)))
    _run_sops(sops_bin, home, identity, "set", str(target), '["secret"]', '"new-value"')
    keyring = Keyring([identity.path], home=home, environ={})
    assert _load(decrypt_text(target.read_text(), "yaml", keyring).render()) == [
        {"a": 1, "secret": "new-value"}
    ]


def test_age_cli_unwraps_our_data_key(tmp_path: Path, identity: Identity, age_bin: str) -> None:
    """The reference age implementation decrypts the enc stanza of a file we wrote."""
    encrypted = encrypt_text("secret: x\n", "yaml", _settings(identity))
    data = YAML(typ="safe", pure=True).load(encrypted)
    stanza = data["sops"]["age"][0]["enc"]
    result = subprocess.run(
        [age_bin, "-d", "-i", str(identity.path)],
        input=stanza.encode(),
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout) == 32
