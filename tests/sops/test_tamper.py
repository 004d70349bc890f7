"""Tampering is rejected, failures leak nothing, and writes are atomic.

A file we encrypted (two values, a list, a comment) is modified the ways an
attacker or a bad merge would: one ciphertext character, two ENC strings
swapped between keys, list items reordered (same AAD, so only the MAC can tell),
the ``mac`` itself, recipient stanzas removed; and read with the wrong key.
Each is checked through the library (the exception type and message) and the
CLI (exit code, one-line error, no plaintext in stdout/stderr, no new file in
the file's folder or in TMPDIR).
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from kagura_ops import atomicfile
from kagura_ops.atomicfile import atomic_write
from kagura_ops.cli import main
from kagura_ops.errors import IntegrityError, KaguraOpsError, NoIdentityError
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.files import decrypt_file
from kagura_ops.testing import Identity

CLI = [sys.executable, "-m", "kagura_ops.cli"]


def secret(label: str) -> str:
    return f"s3cr3t-{label}-{secrets.token_hex(8)}"


@dataclass
class Case:
    folder: Path
    tmpdir: Path
    path: Path
    identity: Identity
    other: Identity
    values: dict[str, str]

    @property
    def text(self) -> str:
        return self.path.read_text()

    def keyring(self, key: Identity | None = None) -> Keyring:
        return Keyring([(key or self.identity).path], environ={}, home=self.folder)

    def snapshot(self) -> tuple[list[str], list[str]]:
        return sorted(os.listdir(self.folder)), sorted(os.listdir(self.tmpdir))

    def cli(
        self, *args: str | Path, key: Identity | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = dict(os.environ)
        environ["TMPDIR"] = str(self.tmpdir)
        environ["SOPS_AGE_KEY_FILE"] = str((key or self.identity).path)
        return subprocess.run(
            [*CLI, *map(str, args)],
            cwd=self.folder,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def leaked(self, *texts: str) -> list[str]:
        return [name for name, value in self.values.items() if any(value in t for t in texts)]

    def assert_cli_rejects(self, code: int, key: Identity | None = None) -> str:
        """Every reading command fails with ``code``, one line, no plaintext, no new file."""
        before_text = self.text
        before = self.snapshot()
        out = self.folder / "plain-out.yaml"
        editor = f"{sys.executable} -c pass"
        stderr = ""
        for args in (
            ("decrypt", self.path),
            ("decrypt", "--output", out, self.path),
            ("decrypt", "-i", self.path),
            ("decrypt", "--extract", '["db"]["password"]', self.path),
            ("set", self.path, '["db"]["user"]', "x"),
            ("unset", self.path, '["db"]["user"]'),
            ("rotate", "-i", self.path),
        ):
            result = self.cli(*args, key=key)
            assert result.returncode == code, (args, result.returncode, result.stderr)
            assert "Traceback" not in result.stderr
            lines = result.stderr.splitlines()
            assert 1 <= len(lines) <= 2 and lines[0].startswith("kagura-ops: error: "), (
                result.stderr
            )
            assert result.stdout == ""
            assert self.leaked(result.stdout, result.stderr) == [], args
            assert self.snapshot() == before, args
            assert self.text == before_text, args
            stderr = result.stderr
        environ = dict(os.environ, TMPDIR=str(self.tmpdir), EDITOR=editor)
        environ["SOPS_AGE_KEY_FILE"] = str((key or self.identity).path)
        edit = subprocess.run(
            [*CLI, "edit", str(self.path)],
            cwd=self.folder,
            env=environ,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert edit.returncode == code and "Traceback" not in edit.stderr
        assert self.leaked(edit.stdout, edit.stderr) == []
        assert self.snapshot() == before and self.text == before_text
        return stderr


@pytest.fixture
def case(tmp_path: Path, home: Path, identity: Identity, other_identity: Identity) -> Case:
    folder = tmp_path / "work"
    folder.mkdir()
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    values = {
        "password": secret("PASSWORD"),
        "user": secret("USER"),
        "item0": secret("ITEM0"),
        "item1": secret("ITEM1"),
    }
    path = folder / "app.enc.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            db:
              password: {values["password"]}
              user: {values["user"]}  # owner
            items:
              - {values["item0"]}
              - {values["item1"]}
            """
        )
    )
    environ = dict(os.environ, TMPDIR=str(tmpdir))
    subprocess.run(
        [*CLI, "encrypt", "-i", "--age", identity.public, str(path)],
        env=environ,
        check=True,
        capture_output=True,
        timeout=60,
    )
    c = Case(folder, tmpdir, path, identity, other_identity, values)
    assert c.leaked(c.text) == []
    # The untampered file decrypts (so every failure below is caused by the tampering).
    assert decrypt_file(path, c.keyring()).trees()[0]["db"]["password"] == values["password"]
    return c


def enc_line(text: str, key: str) -> re.Match[str]:
    match = re.search(rf"^(\s*{key}: )(ENC\[AES256_GCM,[^\]]*\])", text, re.M)
    assert match, key
    return match


def flip(char: str) -> str:
    return "B" if char == "A" else "A"


# -- tampering -------------------------------------------------------------------------------------


def test_one_changed_ciphertext_character(case: Case) -> None:
    text = case.text
    m = enc_line(text, "password")
    data_at = m.start(2) + len("ENC[AES256_GCM,data:")
    case.path.write_text(text[:data_at] + flip(text[data_at]) + text[data_at + 1 :])
    with pytest.raises(IntegrityError) as info:
        decrypt_file(case.path, case.keyring())
    message = str(info.value)
    assert "app.enc.yaml" in message and "db.password" in message
    assert case.leaked(message) == []
    case.assert_cli_rejects(4)


def test_changed_iv_or_tag(case: Case) -> None:
    text = case.text
    m = enc_line(text, "user")
    for field in ("iv:", "tag:"):
        at = text.index(field, m.start(2)) + len(field)
        case.path.write_text(text[:at] + flip(text[at]) + text[at + 1 :])
        with pytest.raises(IntegrityError):
            decrypt_file(case.path, case.keyring())
    case.assert_cli_rejects(4)


def test_values_swapped_between_keys(case: Case) -> None:
    text = case.text
    pw, user = enc_line(text, "password").group(2), enc_line(text, "user").group(2)
    case.path.write_text(text.replace(pw, "@@PW@@").replace(user, pw).replace("@@PW@@", user))
    with pytest.raises(IntegrityError) as info:
        decrypt_file(case.path, case.keyring())
    assert case.leaked(str(info.value)) == []
    case.assert_cli_rejects(4)


def test_list_items_reordered_caught_by_mac(case: Case) -> None:
    text = case.text
    items = re.findall(r"^\s*- (ENC\[AES256_GCM,[^\]]*\])$", text, re.M)
    assert len(items) == 2
    case.path.write_text(
        text.replace(items[0], "@@0@@").replace(items[1], items[0]).replace("@@0@@", items[1])
    )
    # Each value still authenticates (list indices are not in the AAD) ...
    with pytest.raises(IntegrityError, match="MAC") as info:
        decrypt_file(case.path, case.keyring())
    assert case.leaked(str(info.value)) == []
    # ... which is why only the MAC catches it; --ignore-mac shows the swapped order.
    ignored = decrypt_file(case.path, case.keyring(), verify_mac=False)
    assert ignored.trees()[0]["items"] == [case.values["item1"], case.values["item0"]]
    assert "MAC" in case.assert_cli_rejects(4)


def test_changed_mac(case: Case) -> None:
    text = case.text
    m = re.search(r"^\s*mac: ENC\[AES256_GCM,data:", text, re.M)
    assert m
    at = m.end() + 5
    case.path.write_text(text[:at] + flip(text[at]) + text[at + 1 :])
    with pytest.raises(IntegrityError):
        decrypt_file(case.path, case.keyring())
    case.assert_cli_rejects(4)


def test_mac_from_another_file_version(case: Case) -> None:
    """A valid mac, but for other plaintext (an older version's block pasted in)."""
    old_mac = re.search(r"^\s*mac: .*$", case.text, re.M)
    assert old_mac
    assert case.cli("set", case.path, '["db"]["user"]', secret("NEWUSER")).returncode == 0
    new_mac = re.search(r"^\s*mac: .*$", case.text, re.M)
    assert new_mac and new_mac.group(0) != old_mac.group(0)
    case.path.write_text(case.text.replace(new_mac.group(0), old_mac.group(0)))
    with pytest.raises(IntegrityError):
        decrypt_file(case.path, case.keyring())
    case.values["user"] = "s3cr3t-NEWUSER-"  # the prefix is enough to catch a leak
    case.assert_cli_rejects(4)


def test_removed_only_recipient_stanza(case: Case) -> None:
    text = case.text
    stripped = re.sub(r"^  age:\n(?:    .*\n)+", "", text, flags=re.M)
    assert stripped != text and "recipient" not in stripped
    case.path.write_text(stripped)
    with pytest.raises(KaguraOpsError) as info:
        decrypt_file(case.path, case.keyring())
    assert "recipient" in str(info.value)
    code = info.value.exit_code
    assert code in (3, 5)
    case.assert_cli_rejects(code)


def test_removed_our_stanza_of_two(case: Case) -> None:
    assert case.cli("rotate", "-i", "--add-age", case.other.public, case.path).returncode == 0
    text = case.text
    ours = re.search(rf"^    - recipient: {case.identity.public}\n(?:      .*\n)+", text, re.M)
    assert ours
    case.path.write_text(text[: ours.start()] + text[ours.end() :])
    # The other recipient can still read it: only our stanza is gone.
    assert (
        decrypt_file(case.path, case.keyring(case.other)).trees()[0]["items"][0]
        == case.values["item0"]
    )
    with pytest.raises(NoIdentityError) as info:
        decrypt_file(case.path, case.keyring())
    message = str(info.value)
    assert case.other.public in message  # the recipient it would need
    assert str(case.identity.path) in message or "--identity" in message  # what it tried
    assert "tried" in message
    stderr = case.assert_cli_rejects(3)
    assert "SOPS_AGE_KEY_FILE" in stderr and "tried" in stderr


def test_wrong_key(case: Case) -> None:
    with pytest.raises(NoIdentityError):
        decrypt_file(case.path, case.keyring(case.other))
    stderr = case.assert_cli_rejects(3, key=case.other)
    assert case.identity.public in stderr
    assert "other-key.txt" in stderr


def test_in_process_cli_failure_prints_no_plaintext(
    case: Case, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    text = case.text
    m = enc_line(text, "user")
    at = m.start(2) + len("ENC[AES256_GCM,data:")
    case.path.write_text(text[:at] + flip(text[at]) + text[at + 1 :])
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(case.identity.path))
    assert main(["decrypt", str(case.path)]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("kagura-ops: error: ") and "db.user" in captured.err
    assert case.leaked(captured.out, captured.err) == []


# -- atomic writes ------------------------------------------------------------------------------------


def _boom(*_args: object, **_kwargs: object) -> None:
    raise OSError(errno.EIO, "simulated I/O error")


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_atomic_write_failure_keeps_original(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "data.yaml"
    target.write_text("original\n")
    os.chmod(target, 0o640)
    with monkeypatch.context() as patch, pytest.raises(OSError, match="simulated"):
        patch.setattr(atomicfile.os, failing, _boom)
        atomic_write(target, "new content that must not appear\n")
    assert target.read_text() == "original\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["data.yaml"]


def test_atomic_write_private_mode_before_first_byte(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "key.txt"
    seen: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(atomicfile.os, "fsync", spy)
    old_umask = os.umask(0)
    try:
        atomic_write(target, "AGE-SECRET-KEY-1TEST\n", private=True)
    finally:
        os.umask(old_umask)
    assert seen == [0o600]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # Replacing a world-readable file with private content makes it 0600 too.
    public = tmp_path / "was-public.txt"
    public.write_text("x")
    os.chmod(public, 0o644)
    atomic_write(public, "secret", private=True)
    assert stat.S_IMODE(public.stat().st_mode) == 0o600


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_cli_set_write_failure_keeps_encrypted_file(
    case: Case, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failing: str
) -> None:
    before = case.path.read_bytes()
    listing = case.snapshot()
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(case.identity.path))
    new_value = secret("NEVERWRITTEN")
    with monkeypatch.context() as patch:
        patch.setattr(atomicfile.os, failing, _boom)
        try:
            code: int | None = main(["set", str(case.path), '["db"]["password"]', new_value])
        except OSError:
            code = None  # an unexpected I/O error may propagate; the file must still be intact
    assert code != 0
    assert case.path.read_bytes() == before
    assert case.snapshot() == listing
    captured = capsys.readouterr()
    assert (
        case.leaked(captured.out, captured.err) == []
        and new_value not in captured.out + captured.err
    )
