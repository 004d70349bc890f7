"""The age key source: recipients, wrap/unwrap, metadata, and identity files."""

from __future__ import annotations

import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyrage
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from kagura_ops.errors import (
    ConfigError,
    DecryptionError,
    FormatError,
    InputError,
    NoIdentityError,
    UnsupportedError,
)
from kagura_ops.keys.age import (
    AgeKey,
    generate_identity,
    parse_recipient,
    parse_recipients,
    write_identity_file,
)
from kagura_ops.keys.identities import Keyring
from kagura_ops.testing import interop_opt_out

INTEROP_AGE = Path(__file__).parents[1] / "vectors" / "sops" / "age"
GENERATED = INTEROP_AGE / "generated-sops-3.11.0"
DATA_KEY = bytes(range(32))

needs_age_cli = pytest.mark.skipif(
    interop_opt_out("age") or interop_opt_out("age-keygen"),
    reason="KAGURA_OPS_SKIP_INTEROP=1 opt-out",
)


# -- helpers -------------------------------------------------------------------------------


def key_file(directory: Path, name: str = "keys.txt") -> tuple[Path, str, str]:
    """An age identity file; returns (path, secret, public)."""
    secret, public = generate_identity()
    path = directory / name
    path.write_text(f"# public key: {public}\n{secret}\n")
    return path, secret, public


def ssh_key(directory: Path, kind: str) -> tuple[Path, str]:
    """An unencrypted SSH key pair; returns (private key path, public key line)."""
    path = directory / f"id_{kind}"
    if shutil.which("ssh-keygen"):
        bits = ["-b", "2048"] if kind == "rsa" else []
        subprocess.run(
            ["ssh-keygen", "-q", "-t", kind, *bits, "-N", "", "-C", "me@laptop", "-f", str(path)],
            check=True,
            stdin=subprocess.DEVNULL,
        )
        return path, path.with_suffix(".pub").read_text().strip()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    key: Any = (
        ed25519.Ed25519PrivateKey.generate()
        if kind == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return path, public.decode() + " me@laptop"


def keyring_for(home: Path, *files: Path, **env: str) -> Keyring:
    """A keyring that reads nothing but what the test gives it."""
    return Keyring(files, environ=env, home=home)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


# -- recipients ----------------------------------------------------------------------------


def test_parse_recipient_accepts_x25519_and_ssh(tmp_path: Path) -> None:
    _, public = generate_identity()
    assert str(parse_recipient(f"  {public}\n")) == public
    _, ssh_public = ssh_key(tmp_path, "ed25519")
    assert parse_recipient(ssh_public) is not None
    assert parse_recipient(ssh_public.rsplit(" ", 1)[0]) is not None  # without comment


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("age1notbech32atall", "not a valid age public key"),
        ("age1" + "q" * 58, "not a valid age public key"),
        ("ssh-ed25519 AAAAnotbase64", "not a valid SSH public key"),
        ("AGE1QQQQ", "unknown form"),
        ("pgp:ABCDEF", "unknown form"),
    ],
)
def test_parse_recipient_rejects_with_the_recipient_named(bad: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_recipient(bad)
    message = str(caught.value)
    assert bad in message
    assert why in message
    assert "age1..." in message and "ssh-ed25519" in message  # the expected forms


@pytest.mark.parametrize(
    "recipient",
    ["age1pq1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", "age1yubikey1qqqqqqqqqqqqqqqqqqqqqqqqqqq"],
)
def test_post_quantum_and_plugin_recipients_are_unsupported(recipient: str) -> None:
    with pytest.raises(UnsupportedError, match="not supported"):
        parse_recipient(recipient)
    with pytest.raises(UnsupportedError):
        AgeKey(recipient).wrap(DATA_KEY)


def test_parse_recipients_from_string_and_list() -> None:
    a, b, c = (generate_identity()[1] for _ in range(3))
    assert parse_recipients(f" {a} ,{b},, {c} ,") == [a, b, c]
    assert parse_recipients([a, f"{b}, {c}", "", "  "]) == [a, b, c]
    assert parse_recipients([a, b, a]) == [a, b]
    assert parse_recipients("") == []
    assert parse_recipients([]) == []


def test_parse_recipients_names_the_bad_one() -> None:
    good = generate_identity()[1]
    with pytest.raises(ConfigError, match="age1typo"):
        parse_recipients([good, "age1typo"])


def test_parse_recipients_keeps_ssh_comments(tmp_path: Path) -> None:
    _, ssh_public = ssh_key(tmp_path, "ed25519")
    assert parse_recipients(f"{ssh_public}, ") == [ssh_public]


# -- wrap / unwrap -------------------------------------------------------------------------


def test_x25519_round_trip_and_armor_layout(tmp_path: Path, home: Path) -> None:
    path, _, public = key_file(tmp_path)
    key = AgeKey(public)

    key.wrap(DATA_KEY)

    assert isinstance(key.enc, str)
    lines = key.enc.split("\n")
    assert lines[0] == "-----BEGIN AGE ENCRYPTED FILE-----"
    assert lines[-2:] == ["-----END AGE ENCRYPTED FILE-----", ""]  # exactly one final \n
    assert "\r" not in key.enc
    assert all(len(line) <= 64 for line in lines)
    assert key.unwrap(keyring_for(home, path)) == DATA_KEY


@pytest.mark.parametrize("kind", ["ed25519", "rsa"])
def test_ssh_round_trip(kind: str, tmp_path: Path, home: Path) -> None:
    private, public = ssh_key(tmp_path, kind)
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    assert key.name == public
    assert key.unwrap(keyring_for(home, private)) == DATA_KEY
    # ...and found by discovery at ~/.ssh/id_<kind>, like sops does.
    (home / ".ssh").mkdir()
    shutil.copy(private, home / ".ssh" / f"id_{kind}")
    assert key.unwrap(keyring_for(home)) == DATA_KEY


def test_each_wrap_is_fresh_and_any_matching_identity_works(tmp_path: Path, home: Path) -> None:
    path, _, public = key_file(tmp_path)
    other, _, _ = key_file(tmp_path, "other.txt")
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    first = key.enc
    key.wrap(DATA_KEY)
    assert key.enc != first  # age uses a fresh ephemeral key each time
    assert key.unwrap(keyring_for(home, other, path)) == DATA_KEY


@settings(max_examples=25, deadline=None)
@given(data_key=st.binary(min_size=1, max_size=64))
def test_round_trip_property(data_key: bytes) -> None:
    secret, public = generate_identity()
    key = AgeKey(public)
    key.wrap(data_key)
    keyring = Keyring(environ={"SOPS_AGE_KEY": secret}, home=Path("/nonexistent-home"))
    assert key.unwrap(keyring) == data_key


def test_unwrap_tolerates_crlf_and_surrounding_whitespace(tmp_path: Path, home: Path) -> None:
    path, _, public = key_file(tmp_path)
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    mangled = AgeKey(public, "\n  " + key.enc.replace("\n", "\r\n") + "\n\n")
    assert mangled.unwrap(keyring_for(home, path)) == DATA_KEY


def test_wrong_identity_raises_no_identity_error_listing_what_was_tried(
    tmp_path: Path, home: Path
) -> None:
    _, _, public = key_file(tmp_path, "right.txt")
    wrong, wrong_secret, _ = key_file(tmp_path, "wrong.txt")
    inline_secret, _ = generate_identity()
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    keyring = keyring_for(home, wrong, SOPS_AGE_KEY=inline_secret)

    with pytest.raises(NoIdentityError) as caught:
        key.unwrap(keyring)

    error = caught.value
    message = str(error)
    assert error.exit_code == 3
    assert public in message
    assert "none of the 2 age identities" in message
    assert f"--identity {wrong} (1 key)" in message
    assert "SOPS_AGE_KEY (1 key)" in message
    assert "SOPS_AGE_KEY_FILE (not set)" in message
    assert "~/.kagura/keys.txt (missing)" in message
    assert "--identity FILE" in message and "SOPS_AGE_KEY_FILE" in message  # the hint
    for secret in (wrong_secret, inline_secret):
        assert secret not in message
        assert secret[16:] not in message
        assert secret[16:].lower() not in message
    assert key.enc.splitlines()[1] not in message


def test_no_identity_at_all(tmp_path: Path, home: Path) -> None:
    key = AgeKey(generate_identity()[1])
    key.wrap(DATA_KEY)
    with pytest.raises(NoIdentityError, match="no age identity found") as caught:
        key.unwrap(keyring_for(home))
    assert "sops/age/keys.txt" in str(caught.value)


def test_ssh_key_does_not_open_an_x25519_stanza(tmp_path: Path, home: Path) -> None:
    private, _ = ssh_key(tmp_path, "ed25519")
    key = AgeKey(generate_identity()[1])
    key.wrap(DATA_KEY)
    with pytest.raises(NoIdentityError, match="none of the 1 age identity found"):
        key.unwrap(keyring_for(home, private))


def test_corrupted_enc_is_a_decryption_error_not_a_missing_identity(
    tmp_path: Path, home: Path
) -> None:
    path, _, public = key_file(tmp_path)
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    lines = key.enc.split("\n")
    body = lines[-3]
    lines[-3] = ("A" if body[0] != "A" else "B") + body[1:]  # flip payload bytes
    tampered = AgeKey(public, "\n".join(lines))

    with pytest.raises(DecryptionError) as caught:
        tampered.unwrap(keyring_for(home, path))
    assert not isinstance(caught.value, NoIdentityError)


@pytest.mark.parametrize(
    ("enc", "match"), [("", "no wrapped data key"), ("hello", "not an armored")]
)
def test_enc_that_is_not_an_age_file(enc: str, match: str, tmp_path: Path, home: Path) -> None:
    path, _, public = key_file(tmp_path)
    with pytest.raises(FormatError, match=match):
        AgeKey(public, enc).unwrap(keyring_for(home, path))


def test_unwrap_for_post_quantum_recipient_is_unsupported(home: Path) -> None:
    key = AgeKey("age1pq1qqqq", "-----BEGIN AGE ENCRYPTED FILE-----\n")
    with pytest.raises(UnsupportedError):
        key.unwrap(keyring_for(home))


# -- metadata ------------------------------------------------------------------------------


def test_metadata_round_trip_and_key_order() -> None:
    _, public = generate_identity()
    key = AgeKey(public)
    key.wrap(DATA_KEY)

    entry = key.to_metadata()

    assert list(entry) == ["recipient", "enc"]
    again = AgeKey.from_metadata(entry)
    assert (again.recipient, again.enc) == (public, key.enc)
    assert again.same_recipient(key)
    assert again.kind == "age"
    assert repr(again) == f"AgeKey({public!r})"


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"enc": "x"}, "no recipient"),
        ({"recipient": "  "}, "no recipient"),
        ({"recipient": "age1x", "enc": 3}, "not a string"),
    ],
)
def test_from_metadata_rejects_malformed_entries(entry: dict[str, Any], match: str) -> None:
    with pytest.raises(FormatError, match=match):
        AgeKey.from_metadata(entry)


def _sops_age_entries(path: Path) -> list[dict[str, Any]]:
    yaml = YAML(typ="safe")
    documents = list(yaml.load_all(path.read_text()))
    return list(documents[0]["sops"]["age"] or documents[0]["sops"]["key_groups"][0]["age"])


@pytest.mark.interop
def test_unwraps_data_keys_written_by_sops(home: Path) -> None:
    [entry] = _sops_age_entries(GENERATED / "g_multidoc.enc.yaml")
    key = AgeKey.from_metadata(entry)
    # What sops writes is what we write: one armored file, "\n" endings, final newline.
    assert key.enc.endswith("-----END AGE ENCRYPTED FILE-----\n")
    assert key.unwrap(keyring_for(home, GENERATED / "main.key")) == key.unwrap(
        Keyring(environ={"SOPS_AGE_KEY_FILE": str(GENERATED / "main.key")}, home=home)
    )
    assert len(key.unwrap(keyring_for(home, GENERATED / "main.key"))) == 32


@pytest.mark.interop
def test_unwraps_shamir_shares_written_by_sops(home: Path) -> None:
    yaml = YAML(typ="safe")
    document = yaml.load((GENERATED / "g_shamir_2of3.enc.yaml").read_text())
    groups = document["sops"]["key_groups"]
    keys = [AgeKey.from_metadata(group["age"][0]) for group in groups]
    share = keys[0].unwrap(keyring_for(home, GENERATED / "g1.key"))
    assert len(share) == 33
    with pytest.raises(NoIdentityError):
        keys[1].unwrap(keyring_for(home, GENERATED / "g1.key"))


# -- the age CLI reads what we write, and we read what it writes ------------------------------


@pytest.mark.interop
@needs_age_cli
def test_age_cli_decrypts_our_enc(tmp_path: Path) -> None:
    path, _, public = key_file(tmp_path)
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    (tmp_path / "enc.age").write_text(key.enc)

    result = subprocess.run(
        ["age", "-d", "-i", str(path), str(tmp_path / "enc.age")],
        capture_output=True,
        check=True,
    )
    assert result.stdout == DATA_KEY


@pytest.mark.interop
@needs_age_cli
def test_we_decrypt_what_the_age_cli_armors(tmp_path: Path, home: Path) -> None:
    path, _, public = key_file(tmp_path)
    result = subprocess.run(
        ["age", "-a", "-r", public], input=DATA_KEY, capture_output=True, check=True
    )
    key = AgeKey(public, result.stdout.decode())
    assert key.unwrap(keyring_for(home, path)) == DATA_KEY


# -- identities ----------------------------------------------------------------------------


def test_generate_identity() -> None:
    secret, public = generate_identity()
    assert secret.startswith("AGE-SECRET-KEY-1")
    assert public.startswith("age1")
    assert str(pyrage.x25519.Identity.from_str(secret).to_public()) == public
    assert generate_identity()[0] != secret


def test_write_identity_file_format_mode_and_use(tmp_path: Path, home: Path) -> None:
    path = tmp_path / "new" / "dir" / "keys.txt"
    when = datetime(2024, 3, 24, 21, 11, 43, tzinfo=timezone(timedelta(hours=-4)))

    public = write_identity_file(path, comment_time=when)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert re.fullmatch(
        r"# created: 2024-03-24T21:11:43-04:00\n"
        rf"# public key: {public}\n"
        r"AGE-SECRET-KEY-1[0-9A-Z]{58}\n",
        text,
    )
    key = AgeKey(public)
    key.wrap(DATA_KEY)
    assert key.unwrap(keyring_for(home, path)) == DATA_KEY


def test_write_identity_file_utc_is_written_with_z(tmp_path: Path) -> None:
    write_identity_file(tmp_path / "k.txt", comment_time=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert path_line(tmp_path / "k.txt", 0) == "# created: 2025-01-02T03:04:05Z"


def test_write_identity_file_default_time_is_now(tmp_path: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    write_identity_file(tmp_path / "k.txt")
    stamp = path_line(tmp_path / "k.txt", 0).removeprefix("# created: ")
    written = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before <= written <= datetime.now(UTC)


def path_line(path: Path, index: int) -> str:
    return path.read_text().splitlines()[index]


def test_write_identity_file_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    path.write_text("precious\n")
    with pytest.raises(InputError, match="refusing to overwrite") as caught:
        write_identity_file(path)
    assert caught.value.file == str(path)
    assert path.read_text() == "precious\n"


@pytest.mark.interop
@needs_age_cli
def test_age_keygen_agrees_on_the_public_key(tmp_path: Path) -> None:
    path = tmp_path / "keys.txt"
    public = write_identity_file(path)
    result = subprocess.run(
        ["age-keygen", "-y", str(path)], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == public
