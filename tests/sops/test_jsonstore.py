"""The JSON store: leaves, sops' JSON layout and typing, and interop with the sops binary."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kagura_ops.errors import FormatError, InputError, IntegrityError
from kagura_ops.keys.age import AgeKey, generate_identity
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.document import decrypt_document, encrypt_document
from kagura_ops.sops.jsonstore import dump_json, go_float, go_string, parse_json
from kagura_ops.sops.metadata import Metadata
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import interop_opt_out

HUMPHD = Path(__file__).parents[1] / "vectors" / "sops" / "age" / "humphd-sops-age"

needs_sops = pytest.mark.skipif(interop_opt_out("sops"), reason="KAGURA_OPS_SKIP_INTEROP=1 opt-out")

PLAIN = """{
  "name": "svc",
  "port": 8080,
  "ratio": 0.25,
  "big": 1e21,
  "tiny": 1.5e-7,
  "enabled": true,
  "nothing": null,
  "empty": "",
  "html": "<a href='x'>&</a>\\u2028",
  "unicode": "héllo ✓",
  "list": [1, [2, {"deep": "x"}], null, {}, []],
  "db": {"password": "hunter2", "host_unencrypted": "db.local", "opts": {}},
  "token_unencrypted": "visible"
}
"""


# -- helpers -----------------------------------------------------------------------------------


def unchanged(text: str) -> str:
    parsed = parse_json(text)
    return parsed.render([None] * len(parsed.leaves), None)


def sops(args: list[str], cwd: Path, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    if secret is not None:
        env["SOPS_AGE_KEY"] = secret
    return subprocess.run(["sops", *args], cwd=cwd, env=env, capture_output=True, text=True)


def encrypt_ours(plain: str, key_groups: list[list[AgeKey]], **kwargs: Any) -> str:
    return encrypt_document(
        parse_json(plain, source="x.json"),
        key_groups=key_groups,
        selection=kwargs.pop("selection", Selection.default()),
        source="x.json",
        **kwargs,
    )


def decrypt_ours(text: str, secret: str, home: Path) -> Any:
    keyring = Keyring(environ={"SOPS_AGE_KEY": secret}, home=home)
    return decrypt_document(parse_json(text, source="x.enc.json"), keyring, source="x.enc.json")


def skeleton(text: str) -> str:
    """An encrypted file with everything random (ciphertexts, stanzas, times) blanked."""
    text = re.sub(r"ENC\[AES256_GCM,[^\]]*,type:(\w+)\]", r"ENC[\1]", text)
    text = re.sub(r'"(enc|lastmodified|recipient)": "[^"]*"', r'"\1": _', text)
    return text


# -- parsing -----------------------------------------------------------------------------------


def test_leaves_in_document_order_with_paths_and_keys() -> None:
    parsed = parse_json(PLAIN)
    assert [leaf.keys for leaf in parsed.leaves] == [
        ("name",),
        ("port",),
        ("ratio",),
        ("big",),
        ("tiny",),
        ("enabled",),
        ("empty",),
        ("html",),
        ("unicode",),
        ("list", 0),
        ("list", 1, 0),
        ("list", 1, 1, "deep"),
        ("db", "password"),
        ("db", "host_unencrypted"),
        ("token_unencrypted",),
    ]
    # List indices are not part of the additional data.
    deep = parsed.leaves[11]
    assert deep.path == ("list", "deep")
    assert deep.aad == "list:deep:"
    assert parsed.metadata is None
    assert parsed.trees()[0]["nothing"] is None
    assert parsed.trees()[0]["list"][2:] == [None, {}, []]


def test_numbers_are_float64_like_go() -> None:
    parsed = parse_json('{"i": 7, "f": 3.14, "big": 12345678901234567890, "neg": -0}')
    values = [leaf.value for leaf in parsed.leaves]
    assert all(isinstance(v, float) for v in values)
    assert values[:3] == [7.0, 3.14, 12345678901234567890.0]


def test_sops_member_is_metadata_not_a_leaf() -> None:
    parsed = parse_json('{"a": "x", "sops": {"mac": "m", "shamir_threshold": 2, "age": []}}')
    assert [leaf.keys for leaf in parsed.leaves] == [("a",)]
    assert parsed.metadata == {"mac": "m", "shamir_threshold": 2, "age": []}
    assert isinstance(parsed.metadata["shamir_threshold"], int)
    assert "sops" not in parsed.trees()[0]
    assert parse_json('{"sops": "x"}').metadata == {"__scalar__": "x"}


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ('{"a": 1, "a": 2}', "'a'"),
        ('{"a": {"b": 1, "b": 1}}', "'a.b'"),
        ('{"l": [{"k": 1, "k": 2}]}', "'l[0].k'"),
        ('{"sops": {}, "sops": {}}', "'sops'"),
        ('{"sops": {"mac": "1", "mac": "2"}}', "'sops.mac'"),
    ],
)
def test_duplicate_keys_are_rejected(text: str, shown: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_json(text, source="conf.json")
    assert f"duplicate key {shown}" in caught.value.message
    assert caught.value.file == "conf.json"


@pytest.mark.parametrize("text", ["[1, 2]", '"s"', "3", "null", "true"])
def test_top_level_must_be_an_object(text: str) -> None:
    with pytest.raises(InputError, match="must be an object"):
        parse_json(text, source="x.json")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ('{"a": NaN}', "NaN"),
        ('{"a": Infinity}', "Infinity"),
        ('{"a": 1e400}', "out of the range"),
        ("", "invalid JSON"),
        ('{"a": 1} {}', "invalid JSON"),
    ],
)
def test_invalid_json(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        parse_json(text, source="x.json")


def test_syntax_errors_point_at_the_place_and_never_quote_values() -> None:
    with pytest.raises(InputError) as caught:
        parse_json('{\n  "password": "hunter2"\n  "next": 1}', source="x.json")
    assert caught.value.file == "x.json:3:3"
    assert "hunter2" not in str(caught.value)


def test_lone_surrogates_become_replacement_characters_like_go() -> None:
    parsed = parse_json('{"a": "x\\ud800y"}')
    assert parsed.leaves[0].value == "x\ufffdy"


# -- rendering ---------------------------------------------------------------------------------


def test_render_uses_sops_layout() -> None:
    text = '{"a": {"b": [1, 2.5, "x"], "e": {}, "f": []}, "n": null, "t": false}'
    assert unchanged(text) == (
        '{\n\t"a": {\n\t\t"b": [\n\t\t\t1,\n\t\t\t2.5,\n\t\t\t"x"\n\t\t],\n'
        '\t\t"e": {},\n\t\t"f": []\n\t},\n\t"n": null,\n\t"t": false\n}\n'
    )
    assert unchanged("{}") == "{}\n"
    parsed = parse_json('{"a": [1]}', indent="  ")
    assert parsed.render([None], None) == '{\n  "a": [\n    1\n  ]\n}\n'


def test_render_is_stable() -> None:
    once = unchanged(PLAIN)
    assert unchanged(once) == once
    assert json.loads(once) == json.loads(PLAIN)


def test_render_replaces_leaves_in_walk_order() -> None:
    parsed = parse_json('{"a": 1, "l": [null, "x", {"k": true}]}')
    out = parsed.render(["A", None, False], None)
    assert json.loads(out) == {"a": "A", "l": [None, "x", {"k": False}]}
    with pytest.raises(ValueError, match="one value per leaf"):
        parsed.render([None], None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (7.0, "7"),
        (-0.0, "-0"),
        (0.0, "0"),
        (3.14, "3.14"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (1.2345e-10, "1.2345e-10"),
        (12345678901234567890.0, "12345678901234567000"),
        (1e100, "1e+100"),
    ],
)
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_go_float_rejects_non_finite() -> None:
    with pytest.raises(FormatError):
        go_float(float("nan"))


def test_go_string_escapes_like_encoding_json() -> None:
    assert go_string('<a&b>"\\\n\t\x01\x7f\u2028\u2029é') == (
        '"\\u003ca\\u0026b\\u003e\\"\\\\\\n\\t\\u0001\x7f\\u2028\\u2029é"'
    )


def test_dump_json_of_metadata_values() -> None:
    assert dump_json({"k": [{"a": None}], "t": 2, "b": True}) == (
        '{\n\t"k": [\n\t\t{\n\t\t\t"a": null\n\t\t}\n\t],\n\t"t": 2,\n\t"b": true\n}'
    )


def test_metadata_round_trips_through_render_with() -> None:
    _, public = generate_identity()
    text = encrypt_ours('{"a": "b"}', [[AgeKey(public)]])
    parsed = parse_json(text)
    assert parsed.metadata is not None
    metadata = Metadata.from_mapping(parsed.metadata)
    assert parsed.render_with([None], metadata) == text


def test_key_groups_carry_null_key_lists_like_sops() -> None:
    groups = [[AgeKey(generate_identity()[1])], [AgeKey(generate_identity()[1])]]
    text = encrypt_ours('{"a": "b"}', groups, shamir_threshold=2)
    sops_block = json.loads(text)["sops"]
    assert list(sops_block)[:2] == ["shamir_threshold", "key_groups"]
    assert sops_block["shamir_threshold"] == 2
    for group in sops_block["key_groups"]:
        assert list(group) == ["hc_vault", "age"]
        assert group["hc_vault"] is None


def test_encrypt_types_and_selection(tmp_path: Path) -> None:
    secret, public = generate_identity()
    text = encrypt_ours(PLAIN, [[AgeKey(public)]])
    doc = json.loads(text)
    assert doc["port"].endswith("type:float]")
    assert doc["enabled"].endswith("type:bool]")
    assert doc["name"].endswith("type:str]")
    assert doc["empty"] == ""
    assert doc["nothing"] is None
    assert doc["db"]["host_unencrypted"] == "db.local"
    assert doc["token_unencrypted"] == "visible"
    assert list(doc)[-1] == "sops"
    assert "hunter2" not in text
    decrypted = decrypt_ours(text, secret, tmp_path)
    assert decrypted.trees() == [json.loads(PLAIN)]
    assert decrypted.render() == unchanged(PLAIN)


def test_tampered_value_error_names_the_path_not_the_value(tmp_path: Path) -> None:
    secret, public = generate_identity()
    doc = json.loads(encrypt_ours('{"a": "hunter2", "b": "s3cr3t-b"}', [[AgeKey(public)]]))
    doc["a"], doc["b"] = doc["b"], doc["a"]
    with pytest.raises(IntegrityError) as caught:
        decrypt_ours(json.dumps(doc), secret, tmp_path)
    assert "hunter2" not in str(caught.value)
    assert "s3cr3t-b" not in str(caught.value)


# -- interop with the sops binary ---------------------------------------------------------------


@pytest.mark.interop
@needs_sops
def test_sops_decrypts_what_we_encrypt(tmp_path: Path) -> None:
    secret, public = generate_identity()
    (tmp_path / "x.enc.json").write_text(encrypt_ours(PLAIN, [[AgeKey(public)]]))
    result = sops(
        ["decrypt", "--input-type", "json", "--output-type", "json", "x.enc.json"],
        tmp_path,
        secret,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(PLAIN)
    # ...and prints it exactly as we do.
    assert result.stdout == unchanged(PLAIN)


@pytest.mark.interop
@needs_sops
def test_we_decrypt_what_sops_encrypts(tmp_path: Path) -> None:
    secret, public = generate_identity()
    (tmp_path / "x.json").write_text(PLAIN)
    encrypted = sops(
        ["encrypt", "--age", public, "--input-type", "json", "--output-type", "json", "x.json"],
        tmp_path,
    )
    assert encrypted.returncode == 0, encrypted.stderr
    decrypted = decrypt_ours(encrypted.stdout, secret, tmp_path)
    assert decrypted.trees() == [json.loads(PLAIN)]
    (tmp_path / "x.enc.json").write_text(encrypted.stdout)
    theirs = sops(["decrypt", "x.enc.json"], tmp_path, secret)
    assert theirs.returncode == 0, theirs.stderr
    assert decrypted.render() == theirs.stdout
    # Same layout, key order and types as our own encryption of the same input.
    ours = encrypt_ours(PLAIN, [[AgeKey(public)]])
    assert skeleton(ours) == skeleton(encrypted.stdout)


@pytest.mark.interop
@needs_sops
def test_key_groups_shamir_and_mac_only_both_ways(tmp_path: Path) -> None:
    (s1, p1), (s2, p2) = generate_identity(), generate_identity()
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - shamir_threshold: 2\n"
        "    mac_only_encrypted: true\n"
        "    encrypted_regex: ^(password|list)$\n"
        f"    key_groups:\n      - age: [{p1}]\n      - age: [{p2}]\n"
    )
    plain = '{"password": "p", "list": [1, "two"], "port": 5432, "host": "h"}\n'
    (tmp_path / "x.json").write_text(plain)
    both = f"{s1}\n{s2}"
    theirs = sops(["encrypt", "x.json"], tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    decrypted = decrypt_ours(theirs.stdout, both, tmp_path)
    assert decrypted.trees() == [json.loads(plain)]
    assert decrypted.metadata.threshold == 2

    selection = Selection(encrypted_regex="^(password|list)$", mac_only_encrypted=True)
    ours = encrypt_ours(
        plain, [[AgeKey(p1)], [AgeKey(p2)]], shamir_threshold=2, selection=selection
    )
    assert skeleton(ours) == skeleton(theirs.stdout)
    (tmp_path / "x.enc.json").write_text(ours)
    result = sops(["decrypt", "x.enc.json"], tmp_path, both)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(plain)


@pytest.mark.interop
def test_decrypts_the_humphd_vector(tmp_path: Path) -> None:
    text = (HUMPHD / "secret.enc.json").read_text()
    assert '"int": "ENC[' in text and "type:float]" in text
    keyring = Keyring([HUMPHD / "key.txt"], environ={}, home=tmp_path)
    decrypted = decrypt_document(parse_json(text), keyring, source="secret.enc.json")
    expected = json.loads((HUMPHD / "secret.json").read_text())
    assert decrypted.trees() == [expected]
    assert '\t"int": 7,\n' in decrypted.render()
