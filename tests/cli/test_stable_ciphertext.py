"""Stable ciphertext on every path, checked the way a reviewer sees it: ``git diff``.

An encrypted file is committed to a real git repository; then one value is
changed through ``set``, ``edit``, ``decrypt -i`` + a text edit + ``encrypt -i``
(the previous version is found at ``HEAD``), ``encrypt --output`` over the old
encrypted file, and ``encrypt --previous OLD``. Each time the diff holds the
changed value's line plus ``mac`` and ``lastmodified``, nothing else.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from kagura_ops.testing import Identity

CLI = [sys.executable, "-m", "kagura_ops.cli"]
NAME = "secrets.enc.yaml"


def secret(label: str) -> str:
    return f"s3cr3t-{label}-{secrets.token_hex(8)}"


@dataclass
class Repo:
    root: Path
    identity: Identity
    values: dict[str, str]

    def env(self, **extra: str) -> dict[str, str]:
        environ = dict(os.environ)
        environ["SOPS_AGE_KEY_FILE"] = str(self.identity.path)
        environ.pop("EDITOR", None)
        environ.pop("VISUAL", None)
        environ.update(extra)
        return environ

    def kagura(self, *args: str | Path, **env: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*CLI, *map(str, args)],
            cwd=self.root,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def git(self, *args: str) -> str:
        result = subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    def plaintext(self, **changes: str) -> str:
        v = {**self.values, **changes}
        return textwrap.dedent(
            f"""\
            # app secrets
            db:
              password: {v["password"]}
              user: {v["user"]}
            api:
              token: {v["token"]}  # rotated monthly
              retries: 3
            hosts:
              - {v["host0"]}
              - {v["host1"]}
            """
        )

    def diff_lines(self, path: str = NAME) -> list[str]:
        """The ``-``/``+`` lines of ``git diff`` for ``path`` against HEAD."""
        out = self.git("diff", "--no-color", "-U0", "--", path)
        return [
            line
            for line in out.splitlines()
            if line[:1] in "+-" and not line.startswith(("+++", "---"))
        ]


@pytest.fixture
def repo(tmp_path: Path, home: Path, identity: Identity) -> Repo:
    root = tmp_path / "repo"
    root.mkdir()
    values = {
        "password": secret("PASSWORD"),
        "user": secret("USER"),
        "token": secret("TOKEN"),
        "host0": secret("HOST0"),
        "host1": secret("HOST1"),
    }
    repo = Repo(root, identity, values)
    repo.git("init", "-q", "-b", "main")
    (root / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: \\.yaml$\n    age: {identity.public}\n"
    )
    (root / NAME).write_text(repo.plaintext())
    repo.kagura("encrypt", "-i", NAME)
    repo.git("add", ".sops.yaml", NAME)
    repo.git("commit", "-q", "-m", "secrets")
    assert repo.diff_lines() == []
    return repo


def assert_only_changed(lines: list[str], key: str, old: str | None = None) -> None:
    """The diff is ``key``'s line once out, once in, plus ``mac`` and maybe ``lastmodified``."""
    keys = sorted(line[1:].split(":", 1)[0].strip() for line in lines)
    removed = [line for line in lines if line.startswith("-")]
    added = [line for line in lines if line.startswith("+")]
    assert len(removed) == len(added), lines
    assert keys.count(key) == 2, lines
    assert keys.count("mac") == 2, lines
    assert set(keys) <= {key, "mac", "lastmodified"}, lines
    assert all(
        "ENC[AES256_GCM," in line
        for line in lines
        if not line[1:].strip().startswith("lastmodified")
    )
    if old is not None:
        assert all(old not in line for line in lines)


def test_set_diff_shows_only_the_value(repo: Repo) -> None:
    new = secret("NEWPW")
    repo.kagura("set", NAME, '["db"]["password"]', new)
    assert_only_changed(repo.diff_lines(), "password")
    assert repo.kagura("decrypt", "--extract", '["db"]["password"]', NAME).stdout == new


def test_edit_diff_shows_only_the_value(repo: Repo, tmp_path: Path) -> None:
    new = secret("EDITED")
    script = tmp_path / "editor.py"
    script.write_text(
        "import sys\n"
        "p = sys.argv[1]\n"
        "t = open(p, encoding='utf-8').read()\n"
        f"open(p, 'w', encoding='utf-8').write(t.replace({repo.values['token']!r}, {new!r}))\n"
    )
    editor = f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}"
    repo.kagura("edit", NAME, EDITOR=editor)
    assert_only_changed(repo.diff_lines(), "token")
    assert repo.kagura("decrypt", NAME).stdout == repo.plaintext(token=new)


def test_decrypt_in_place_then_encrypt_in_place_uses_head(repo: Repo) -> None:
    path = repo.root / NAME
    repo.kagura("decrypt", "-i", NAME)
    assert path.read_text() == repo.plaintext()
    new = secret("HOST1")
    path.write_text(path.read_text().replace(repo.values["host1"], new))
    repo.kagura("encrypt", "-i", NAME)
    # The list item's line is the only value line that changed.
    lines = repo.diff_lines()
    assert_only_changed([line.replace("- ENC", "host1: ENC", 1) for line in lines], "host1")
    assert repo.kagura("decrypt", NAME).stdout == repo.plaintext(host1=new)


def test_encrypt_output_over_existing_encrypted_file(repo: Repo) -> None:
    """The existing encrypted file at the output path is the previous version."""
    # Move HEAD away, so only the file on disk can supply the old ciphertext.
    repo.git("rm", "-q", "--cached", NAME)
    repo.git("commit", "-q", "-m", "untrack")
    before = (repo.root / NAME).read_text()
    plain = repo.root / "plain.yaml"
    new = secret("USER")
    plain.write_text(repo.plaintext(user=new))
    repo.kagura("encrypt", "--output", NAME, plain)
    after = (repo.root / NAME).read_text()
    lines = [
        f"-{a}" for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    lines += [
        f"+{b}" for a, b in zip(before.splitlines(), after.splitlines(), strict=True) if a != b
    ]
    assert_only_changed(lines, "user")


def test_encrypt_previous_flag(repo: Repo, tmp_path: Path) -> None:
    old = tmp_path / "old.enc.yaml"
    old.write_bytes((repo.root / NAME).read_bytes())
    fresh = repo.root / "fresh.yaml"  # not in git, no encrypted file at its path
    new = secret("PASSWORD")
    fresh.write_text(repo.plaintext(password=new))
    out = repo.kagura("encrypt", "--previous", old, fresh).stdout
    (repo.root / NAME).write_text(out)
    assert_only_changed(repo.diff_lines(), "password")
    # Without --previous the same plaintext gets all-new ciphertext.
    unrelated = repo.kagura("encrypt", fresh).stdout
    (repo.root / NAME).write_text(unrelated)
    assert len(repo.diff_lines()) > 10


def test_reencrypting_unchanged_plaintext_is_byte_identical(repo: Repo) -> None:
    path = repo.root / NAME
    committed = path.read_bytes()
    repo.kagura("decrypt", "-i", NAME)
    repo.kagura("encrypt", "-i", NAME)
    assert path.read_bytes() == committed
    assert repo.diff_lines() == []
    # Through --previous as well.
    plain = repo.root / "p.yaml"
    plain.write_text(repo.plaintext())
    old = repo.root / "old.enc.yaml"
    old.write_bytes(committed)
    assert repo.kagura("encrypt", "--previous", old, plain).stdout.encode() == committed
    # And a set to the value it already has.
    repo.kagura("set", NAME, '["db"]["password"]', repo.values["password"])
    assert path.read_bytes() == committed


def test_successive_edits_keep_earlier_changes_stable(repo: Repo) -> None:
    """Two commits in a row: each diff holds only its own value."""
    repo.kagura("set", NAME, '["api"]["token"]', secret("T1"))
    repo.git("commit", "-q", "-am", "token")
    repo.kagura("set", NAME, '["db"]["user"]', secret("U1"))
    assert_only_changed(repo.diff_lines(), "user")


def test_one_settings_object_serves_many_files(tmp_path: Path) -> None:
    """Recipients are copied per file: reusing them never leaves a data key unwrapped."""
    from kagura_ops.keys.age import AgeKey
    from kagura_ops.keys.identities import Keyring
    from kagura_ops.sops.files import EncryptionSettings, decrypt_text, encrypt_text
    from kagura_ops.sops.selection import Selection
    from kagura_ops.testing import make_identity

    ident = make_identity(tmp_path, "reuse.key")
    settings = EncryptionSettings([[AgeKey(ident.public)]], Selection.default())
    first = encrypt_text("a: one\n", "yaml", settings)
    second = encrypt_text("a: two\n", "yaml", settings)
    keyring = Keyring([ident.path], home=tmp_path, environ={})
    assert decrypt_text(first, "yaml", keyring).trees() == [{"a": "one"}]
    assert decrypt_text(second, "yaml", keyring).trees() == [{"a": "two"}]
    assert settings.key_groups[0][0].enc == ""
