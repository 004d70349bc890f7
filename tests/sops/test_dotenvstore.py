"""The dotenv store: lines, comments, flattened metadata, and interop with the sops binary."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kagura_ops.errors import FormatError, InputError
from kagura_ops.keys.age import AgeKey, generate_identity
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.codec import Comment
from kagura_ops.sops.document import decrypt_document, encrypt_document
from kagura_ops.sops.dotenvstore import flatten_metadata, parse_dotenv, unflatten_metadata
from kagura_ops.sops.metadata import Metadata
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import interop_opt_out

needs_sops = pytest.mark.skipif(interop_opt_out("sops"), reason="KAGURA_OPS_SKIP_INTEROP=1 opt-out")

PLAIN = (
    "# database settings\n"
    "DB_PASSWORD=hunter2\n"
    "DB_HOST_unencrypted=db.local\n"
    "\n"
    "#\n"
    "QUOTED=\"double\" 'single'\n"
    "EQUALS= a = b \n"
    "MULTI=line one\\nline two\n"
    "EMPTY=\n"
    "#trailing comment\n"
)


# -- helpers -----------------------------------------------------------------------------------


def sops(args: list[str], cwd: Path, secret: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "HOME": str(cwd)}
    if secret is not None:
        env["SOPS_AGE_KEY"] = secret
    return subprocess.run(["sops", *args], cwd=cwd, env=env, capture_output=True, text=True)


def encrypt_ours(plain: str, key_groups: list[list[AgeKey]], **kwargs: Any) -> str:
    return encrypt_document(
        parse_dotenv(plain, source="x.env"),
        key_groups=key_groups,
        selection=kwargs.pop("selection", Selection.default()),
        source="x.env",
        **kwargs,
    )


def decrypt_ours(text: str, secret: str, home: Path) -> Any:
    keyring = Keyring(environ={"SOPS_AGE_KEY": secret}, home=home)
    return decrypt_document(parse_dotenv(text, source="x.enc.env"), keyring, source="x.enc.env")


def skeleton(text: str) -> str:
    text = re.sub(r"ENC\[AES256_GCM,[^\]]*,type:(\w+)\]", r"ENC[\1]", text)
    return re.sub(r"(_enc|lastmodified|recipient)=.*", r"\1=_", text)


# -- parsing -----------------------------------------------------------------------------------


def test_values_and_comments_are_leaves_in_file_order() -> None:
    parsed = parse_dotenv(PLAIN)
    assert [(leaf.path, leaf.value) for leaf in parsed.leaves] == [
        ((), Comment(" database settings")),
        (("DB_PASSWORD",), "hunter2"),
        (("DB_HOST_unencrypted",), "db.local"),
        ((), Comment("")),
        (("QUOTED",), "\"double\" 'single'"),
        (("EQUALS",), " a = b "),
        (("MULTI",), "line one\nline two"),
        (("EMPTY",), ""),
        ((), Comment("trailing comment")),
    ]
    assert parsed.leaves[0].aad == ":"
    assert parsed.metadata is None
    assert parsed.trees() == [
        {
            "DB_PASSWORD": "hunter2",
            "DB_HOST_unencrypted": "db.local",
            "QUOTED": "\"double\" 'single'",
            "EQUALS": " a = b ",
            "MULTI": "line one\nline two",
            "EMPTY": "",
        }
    ]


def test_comment_stacks_follow_sops() -> None:
    parsed = parse_dotenv("#a\n#b\nK=v\n#c\n")
    assert [leaf.comments for leaf in parsed.leaves] == [
        (("a",),),
        (("a", "b"),),
        (("a", "b"),),
        (("c",),),
    ]


def test_duplicate_keys_are_rejected() -> None:
    with pytest.raises(InputError) as caught:
        parse_dotenv("A=1\nB=2\nA=3\n", source="app.env")
    assert "duplicate key 'A' (first on line 1)" in caught.value.message
    assert caught.value.file == "app.env:3"
    with pytest.raises(InputError, match="duplicate key 'sops_mac'"):
        parse_dotenv("sops_mac=1\nsops_mac=2\n")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("A=1\nhunter2\n", "neither KEY=VALUE"),
        ("A=1\n  \n", "whitespace"),
        ("A=1\r\n\r\nB=2\r\n", "whitespace"),
        ("A=1\n  # indented comment\n", "neither KEY=VALUE"),
    ],
)
def test_lines_sops_rejects_are_rejected_without_quoting_them(text: str, match: str) -> None:
    with pytest.raises(InputError, match=match) as caught:
        parse_dotenv(text, source="x.env")
    assert "hunter2" not in str(caught.value)
    assert caught.value.file is not None and caught.value.file.startswith("x.env:2")


def test_crlf_stays_in_values_like_sops() -> None:
    parsed = parse_dotenv("A=1\r\n#c\r\n")
    assert [leaf.value for leaf in parsed.leaves] == ["1\r", Comment("c\r")]


# -- rendering ---------------------------------------------------------------------------------


def test_render_unchanged_keeps_every_byte() -> None:
    for text in (PLAIN, "A=1", "", "\n\nA=1\n\n"):
        parsed = parse_dotenv(text)
        assert parsed.render([None] * len(parsed.leaves), None) == text


def test_render_replaces_values_and_comments_in_place() -> None:
    parsed = parse_dotenv("#c\nA=1\n\nB=2")
    assert parsed.render(["ENC[x]", "multi\nline", None], None) == "#ENC[x]\nA=multi\\nline\n\nB=2"
    assert parsed.render([Comment(" new"), None, "3"], None) == "# new\nA=1\n\nB=3"
    with pytest.raises(ValueError, match="one value per leaf"):
        parsed.render([], None)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (42, "42"),
        (2.0, "2.0"),
        (0.25, "0.25"),
        (0.0001, "0.0001"),
        (1234567.0, "1.234567E+06"),
        (1e21, "1E+21"),
        (1.5e-7, "1.5E-07"),
        (-0.0, "-0.0"),
    ],
)
def test_typed_values_are_written_like_go_val_to_string(value: Any, text: str) -> None:
    parsed = parse_dotenv("A=x\n")
    assert parsed.render([value], None) == f"A={text}\n"


def test_metadata_is_appended_sorted_and_dropped_on_decrypt() -> None:
    mapping = {
        "age": [{"recipient": "age1x", "enc": "-----BEGIN-----\nabc\n-----END-----\n"}],
        "lastmodified": "2024-01-01T00:00:00Z",
        "mac": "ENC[m]",
        "unencrypted_suffix": "_unencrypted",
        "version": "3.11.0",
    }
    parsed = parse_dotenv("A=1")
    out = parsed.render([None], mapping)
    assert out == (
        "A=1\n"
        "sops_age__list_0__map_enc=-----BEGIN-----\\nabc\\n-----END-----\\n\n"
        "sops_age__list_0__map_recipient=age1x\n"
        "sops_lastmodified=2024-01-01T00:00:00Z\n"
        "sops_mac=ENC[m]\n"
        "sops_unencrypted_suffix=_unencrypted\n"
        "sops_version=3.11.0\n"
    )
    again = parse_dotenv(out)
    assert again.metadata == mapping
    assert [leaf.keys for leaf in again.leaves] == [("A",)]
    assert again.render([None], None) == "A=1\n"


# -- flattening --------------------------------------------------------------------------------


def test_flatten_and_unflatten_key_groups_with_typed_values() -> None:
    mapping = {
        "shamir_threshold": 2,
        "key_groups": [
            {"hc_vault": [], "age": [{"recipient": "r1", "enc": "e1"}]},
            {"pgp": [{"created_at": "t", "enc": "e2", "fp": "F"}], "age": []},
        ],
        "kms": [{"arn": "a", "context": {"k": "v"}, "aws_profile": ""}],
        "nothing": None,
        "mac_only_encrypted": True,
    }
    flat = flatten_metadata(mapping)
    assert flat == [
        ("key_groups__list_0__map_age__list_0__map_enc", "e1"),
        ("key_groups__list_0__map_age__list_0__map_recipient", "r1"),
        ("key_groups__list_1__map_pgp__list_0__map_created_at", "t"),
        ("key_groups__list_1__map_pgp__list_0__map_enc", "e2"),
        ("key_groups__list_1__map_pgp__list_0__map_fp", "F"),
        ("kms__list_0__map_arn", "a"),
        ("kms__list_0__map_aws_profile", ""),
        ("kms__list_0__map_context__map_k", "v"),
        ("mac_only_encrypted", "true"),
        ("shamir_threshold", "2"),
    ]
    assert unflatten_metadata(dict(flat)) == {
        "key_groups": [
            {"age": [{"enc": "e1", "recipient": "r1"}]},
            {"pgp": [{"created_at": "t", "enc": "e2", "fp": "F"}]},
        ],
        "kms": [{"arn": "a", "aws_profile": "", "context": {"k": "v"}}],
        "mac_only_encrypted": True,
        "shamir_threshold": 2,
    }


@pytest.mark.parametrize(
    ("flat", "expected"),
    [
        ({"mac_only_encrypted": "false"}, {"mac_only_encrypted": False}),
        ({"mac_only_encrypted": "yes"}, {"mac_only_encrypted": False}),
        ({"shamir_threshold": "3"}, {"shamir_threshold": 3}),
        ({"shamir_threshold": "2.000000"}, {"shamir_threshold": 2}),
    ],
)
def test_unflatten_typed_values(flat: dict[str, str], expected: dict[str, Any]) -> None:
    assert unflatten_metadata(flat) == expected


@pytest.mark.parametrize(
    ("flat", "match"),
    [
        ({"shamir_threshold": "two"}, "not an integer"),
        ({"shamir_threshold": "2.5"}, "not an integer"),
        ({"age": "x", "age__list_0__map_enc": "e"}, "conflicts"),
        ({"age__list_0": "x", "age__list_0__map_enc": "e"}, "conflicts"),
        ({"age__list_x__map_enc": "e"}, "bad list index"),
    ],
)
def test_unflatten_rejects_damaged_metadata(flat: dict[str, str], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        unflatten_metadata(flat, source="x.env")


# -- our own round trip ----------------------------------------------------------------------------


def test_encrypt_decrypt_round_trip(tmp_path: Path) -> None:
    secret, public = generate_identity()
    text = encrypt_ours(PLAIN, [[AgeKey(public)]])
    assert "hunter2" not in text and "database settings" not in text
    assert "DB_HOST_unencrypted=db.local\n" in text
    assert "\n#\n" in text  # empty comments stay empty
    assert "\n\n#" in text  # the blank line is kept
    assert "EMPTY=\n" in text
    parsed = parse_dotenv(text)
    assert parsed.metadata is not None
    assert (
        parsed.render_with([None] * len(parsed.leaves), Metadata.from_mapping(parsed.metadata))
        == text
    )
    decrypted = decrypt_ours(text, secret, tmp_path)
    assert decrypted.render() == PLAIN
    assert decrypted.trees() == parse_dotenv(PLAIN).trees()


# -- interop with the sops binary ---------------------------------------------------------------


@pytest.mark.interop
@needs_sops
def test_sops_decrypts_what_we_encrypt(tmp_path: Path) -> None:
    secret, public = generate_identity()
    (tmp_path / "x.enc.env").write_text(encrypt_ours(PLAIN, [[AgeKey(public)]]))
    result = sops(
        ["decrypt", "--input-type", "dotenv", "--output-type", "dotenv", "x.enc.env"],
        tmp_path,
        secret,
    )
    assert result.returncode == 0, result.stderr
    # sops drops blank lines; everything else, comments included, comes back.
    assert result.stdout == PLAIN.replace("\n\n", "\n")


@pytest.mark.interop
@needs_sops
def test_we_decrypt_what_sops_encrypts(tmp_path: Path) -> None:
    secret, public = generate_identity()
    (tmp_path / "x.env").write_text(PLAIN)
    encrypted = sops(
        ["encrypt", "--age", public, "--input-type", "dotenv", "--output-type", "dotenv", "x.env"],
        tmp_path,
    )
    assert encrypted.returncode == 0, encrypted.stderr
    decrypted = decrypt_ours(encrypted.stdout, secret, tmp_path)
    assert decrypted.trees() == parse_dotenv(PLAIN).trees()
    assert decrypted.render() == PLAIN.replace("\n\n", "\n")
    # Same lines, order and metadata keys as our own encryption (modulo the blank line).
    ours = encrypt_ours(PLAIN.replace("\n\n", "\n"), [[AgeKey(public)]])
    assert skeleton(ours) == skeleton(encrypted.stdout)


@pytest.mark.interop
@needs_sops
def test_key_groups_shamir_and_mac_only_both_ways(tmp_path: Path) -> None:
    (s1, p1), (s2, p2) = generate_identity(), generate_identity()
    (tmp_path / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - shamir_threshold: 2\n"
        "    mac_only_encrypted: true\n"
        "    encrypted_regex: PASSWORD\n"
        f"    key_groups:\n      - age: [{p1}]\n      - age: [{p2}]\n"
    )
    plain = "#note\nDB_PASSWORD=p\nHOST=h\n"
    (tmp_path / "x.env").write_text(plain)
    both = f"{s1}\n{s2}"
    theirs = sops(["encrypt", "x.env"], tmp_path)
    assert theirs.returncode == 0, theirs.stderr
    assert "sops_mac_only_encrypted=true\n" in theirs.stdout
    assert "sops_shamir_threshold=2\n" in theirs.stdout
    parsed = parse_dotenv(theirs.stdout)
    assert parsed.metadata is not None
    metadata = Metadata.from_mapping(parsed.metadata)
    assert metadata.threshold == 2 and len(metadata.key_groups) == 2
    assert metadata.selection.mac_only_encrypted
    decrypted = decrypt_ours(theirs.stdout, both, tmp_path)
    assert decrypted.render() == plain

    selection = Selection(encrypted_regex="PASSWORD", mac_only_encrypted=True)
    ours = encrypt_ours(
        plain, [[AgeKey(p1)], [AgeKey(p2)]], shamir_threshold=2, selection=selection
    )
    assert skeleton(ours) == skeleton(theirs.stdout)
    (tmp_path / "x.enc.env").write_text(ours)
    result = sops(["decrypt", "x.enc.env"], tmp_path, both)
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain
