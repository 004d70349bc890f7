"""End-to-end tests of the ``kagura-ops`` command, run as a real process.

Every command of the file group (keygen, encrypt, decrypt, edit, set, unset,
updatekeys, rotate, filestatus) is driven through ``python -m kagura_ops.cli``
in an isolated HOME. Secrets are distinctive random strings, so checking that
they do not appear in an output is meaningful. Results are cross-checked with
the real ``sops`` and ``age`` CLIs where a peer tool can judge them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from kagura_ops.cli import main
from kagura_ops.testing import Identity, make_identity

CLI = [sys.executable, "-m", "kagura_ops.cli"]
ENC_RE = re.compile(r"ENC\[AES256_GCM,[^\]]*\]")


# -- helpers -----------------------------------------------------------------------------------


def secret(label: str = "VALUE") -> str:
    return f"s3cr3t-{label}-{secrets.token_hex(8)}"


def load_yaml(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def enc_by_path(text: str) -> dict[str, str]:
    """Every ENC string of an encrypted YAML file (outside ``sops:``), keyed by its path."""
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{prefix}[{i}]")
        else:
            assert isinstance(node, str) and node.startswith("ENC[AES256_GCM,"), (prefix, node)
            out[prefix] = node

    tree = load_yaml(text)
    tree.pop("sops")
    walk(tree, "")
    return out


def sops_block(text: str) -> dict[str, Any]:
    block = load_yaml(text)["sops"]
    assert isinstance(block, dict)
    return block


def recipients(text: str) -> list[str]:
    return [entry["recipient"] for entry in sops_block(text).get("age") or []]


def assert_user_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit ``code``; stderr is one ``kagura-ops: error:`` line plus at most a hint line."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert 1 <= len(lines) <= 2, result.stderr
    assert lines[0].startswith("kagura-ops: error: "), result.stderr
    if len(lines) == 2:
        assert lines[1].startswith("  hint: "), result.stderr
    return result.stderr


def assert_usage_error(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert "Error:" in result.stderr or "error:" in result.stderr
    assert result.stdout == ""


@dataclass
class Project:
    """A working folder, a private TMPDIR, our identity and a plaintext with known secrets."""

    root: Path
    tmpdir: Path
    identity: Identity
    other: Identity
    values: dict[str, str]

    def run(
        self,
        *args: str | Path,
        input: str | None = None,
        env: dict[str, str] | None = None,
        key: Identity | bool | None = True,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run kagura-ops in ``root``; ``key`` is the SOPS_AGE_KEY_FILE (True: ours, None: none)."""
        environ = dict(os.environ)
        environ["TMPDIR"] = str(self.tmpdir)
        environ.pop("EDITOR", None)
        environ.pop("VISUAL", None)
        if key is True:
            environ["SOPS_AGE_KEY_FILE"] = str(self.identity.path)
        elif isinstance(key, Identity):
            environ["SOPS_AGE_KEY_FILE"] = str(key.path)
        environ.update(env or {})
        result = subprocess.run(
            [*CLI, *map(str, args)],
            cwd=self.root,
            env=environ,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check:
            assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result

    def plaintext(self) -> str:
        v = self.values
        return textwrap.dedent(
            f"""\
            # service credentials
            db:
              password: {v["password"]}
              user: admin
            api:
              token: {v["token"]}  # rotated monthly
            list:
              - {v["item0"]}
              - {v["item1"]}
            port: 5432
            debug: false
            """
        )

    def leaked(self, *texts: str) -> list[str]:
        return [name for name, value in self.values.items() if any(value in t for t in texts)]

    def encrypted(self, name: str = "secrets.enc.yaml") -> Path:
        """A file we encrypted for our own identity."""
        path = self.root / name
        path.write_text(self.plaintext())
        self.run("encrypt", "-i", "--age", self.identity.public, path, check=True)
        return path

    def decrypt(self, path: Path, key: Identity | bool | None = True) -> str:
        result = self.run("decrypt", path, key=key, check=True)
        return result.stdout


@pytest.fixture
def project(tmp_path: Path, home: Path, identity: Identity, other_identity: Identity) -> Project:
    root = tmp_path / "work"
    root.mkdir()
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    values = {
        "password": secret("PASSWORD"),
        "token": secret("TOKEN"),
        "item0": secret("ITEM0"),
        "item1": secret("ITEM1"),
    }
    return Project(root, tmpdir, identity, other_identity, values)


def sops_decrypt(sops_bin: str, path: Path, key: Identity) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    env["SOPS_AGE_KEY_FILE"] = str(key.path)
    result = subprocess.run(
        [sops_bin, "decrypt", "--output-type", "json", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_editor(path: Path, body: str) -> str:
    """A tiny Python "editor"; returns the $EDITOR value that runs it."""
    path.write_text(
        "import os, sys\nfile = sys.argv[1]\ntext = open(file, encoding='utf-8').read()\n"
        + textwrap.dedent(body)
    )
    return f"{shlex.quote(sys.executable)} {shlex.quote(str(path))}"


# -- the command itself --------------------------------------------------------------------------


def test_help_lists_every_command(project: Project) -> None:
    result = project.run("--help", check=True)
    for command in (
        "keygen",
        "encrypt",
        "decrypt",
        "edit",
        "set",
        "unset",
        "updatekeys",
        "rotate",
        "filestatus",
    ):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    version = project.run("--version", check=True)
    assert version.stdout.startswith("kagura-ops ")


def test_main_returns_exit_codes_in_process(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project.root)
    (project.root / "plain.yaml").write_text(project.plaintext())
    assert main(["filestatus", "plain.yaml"]) == 0
    assert json.loads(capsys.readouterr().out) == {"encrypted": False}
    assert main(["decrypt", "plain.yaml"]) == 5
    err = capsys.readouterr().err
    assert err.startswith("kagura-ops: error: plain.yaml: ")
    assert main(["decrypt", "--bogus", "plain.yaml"]) == 2


# -- keygen --------------------------------------------------------------------------------------


def test_keygen_writes_private_identity_usable_by_age(project: Project, age_bin: str) -> None:
    target = project.root / "keys" / "me.txt"
    result = project.run("keygen", "-o", target, key=None, check=True)
    match = re.fullmatch(r"Public key: (age1[0-9a-z]{58})\n", result.stdout)
    assert match, result.stdout
    public = match.group(1)
    assert mode(target) == 0o600
    content = target.read_text()
    secret_line = next(line for line in content.splitlines() if line.startswith("AGE-SECRET-KEY-1"))
    assert f"# public key: {public}" in content
    assert secret_line not in result.stdout + result.stderr
    # The real age CLI agrees that this is the identity for that public key.
    plain = secret("AGE")
    enc = subprocess.run(
        [age_bin, "-r", public, "-a"],
        input=plain.encode(),
        capture_output=True,
        check=True,
        timeout=30,
    )
    dec = subprocess.run(
        [age_bin, "-d", "-i", str(target)],
        input=enc.stdout,
        capture_output=True,
        check=True,
        timeout=30,
    )
    assert dec.stdout.decode() == plain
    # Never overwrites an identity.
    again = project.run("keygen", "-o", target, key=None)
    assert_user_error(again, 1)
    assert target.read_text() == content


def test_keygen_default_location_is_found_for_decrypt(project: Project, home: Path) -> None:
    result = project.run("keygen", key=None, check=True)
    public = result.stdout.split("Public key: ")[1].strip()
    default = home / ".kagura" / "keys.txt"
    assert mode(default) == 0o600
    assert public in default.read_text()
    path = project.root / "s.enc.yaml"
    path.write_text(project.plaintext())
    project.run("encrypt", "-i", "--age", public, path, key=None, check=True)
    assert project.run("decrypt", path, key=None, check=True).stdout == project.plaintext()


# -- encrypt / decrypt ---------------------------------------------------------------------------


def test_encrypt_to_stdout_output_and_in_place(project: Project, sops_bin: str) -> None:
    plain = project.root / "plain.yaml"
    plain.write_text(project.plaintext())
    result = project.run("encrypt", "--age", project.identity.public, plain, check=True)
    assert project.leaked(result.stdout, result.stderr) == []
    assert plain.read_text() == project.plaintext()  # stdout mode leaves the input alone
    tree = load_yaml(result.stdout)
    assert set(tree) == {"db", "api", "list", "port", "debug", "sops"}
    assert recipients(result.stdout) == [project.identity.public]
    assert tree["port"].endswith("type:int]") and tree["debug"].endswith("type:bool]")
    # The top-level comment is encrypted too; keys stay readable.
    assert "service credentials" not in result.stdout
    assert "password:" in result.stdout

    out = project.root / "out.enc.yaml"
    project.run("encrypt", "--age", project.identity.public, "--output", out, plain, check=True)
    assert project.decrypt(out) == project.plaintext()

    project.run("encrypt", "-i", "--age", project.identity.public, plain, check=True)
    assert project.leaked(plain.read_text()) == []
    assert project.decrypt(plain) == project.plaintext()
    assert (
        sops_decrypt(sops_bin, plain, project.identity)["db"]["password"]
        == project.values["password"]
    )


def test_decrypt_output_and_in_place_are_private(project: Project) -> None:
    path = project.encrypted()
    os.chmod(path, 0o644)
    out = project.root / "plain-out.yaml"
    result = project.run("decrypt", "--output", out, path, check=True)
    assert result.stdout == ""
    assert project.leaked(result.stderr) == []
    assert out.read_text() == project.plaintext()
    assert mode(out) == 0o600

    result = project.run("decrypt", "-i", path, check=True)
    assert result.stdout == ""
    assert path.read_text() == project.plaintext()
    assert mode(path) == 0o600


def test_decrypt_extract_scalar_and_subtree(project: Project) -> None:
    path = project.encrypted()
    v = project.values
    got = project.run("decrypt", "--extract", '["db"]["password"]', path, check=True)
    assert got.stdout == v["password"]
    assert project.run("decrypt", "--extract", '["list"][1]', path, check=True).stdout == v["item1"]
    assert project.run("decrypt", "--extract", '["port"]', path, check=True).stdout == "5432"
    assert project.run("decrypt", "--extract", '["debug"]', path, check=True).stdout == "false"
    sub = project.run("decrypt", "--extract", '["db"]', path, check=True)
    assert load_yaml(sub.stdout) == {"password": v["password"], "user": "admin"}
    lst = project.run("decrypt", "--extract", '["list"]', path, check=True)
    assert load_yaml(lst.stdout) == [v["item0"], v["item1"]]
    missing = project.run("decrypt", "--extract", '["db"]["nope"]', path)
    err = assert_user_error(missing, 1)
    assert "nope" in err and project.leaked(missing.stdout, err) == []


def test_filestatus(project: Project) -> None:
    plain = project.root / "plain.yaml"
    plain.write_text(project.plaintext())
    assert json.loads(project.run("filestatus", plain, check=True).stdout) == {"encrypted": False}
    path = project.encrypted()
    assert json.loads(project.run("filestatus", path, check=True).stdout) == {"encrypted": True}
    (project.root / "c.json").write_text('{"a": "b"}\n')
    assert json.loads(project.run("filestatus", "c.json", check=True).stdout) == {
        "encrypted": False
    }


# -- .sops.yaml creation rules -------------------------------------------------------------------


def test_creation_rules_choose_recipients(project: Project, sops_bin: str) -> None:
    (project.root / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - path_regex: ^prod/.*\\.yaml$\n    age: {project.other.public}\n"
        f"  - path_regex: \\.yaml$\n    age: >-\n      {project.identity.public},{project.other.public}\n"
    )
    (project.root / "prod").mkdir()
    prod = project.root / "prod" / "db.yaml"
    dev = project.root / "dev.yaml"
    prod.write_text(project.plaintext())
    dev.write_text(project.plaintext())
    project.run("encrypt", "-i", prod, check=True)
    project.run("encrypt", "-i", dev, check=True)
    assert recipients(prod.read_text()) == [project.other.public]
    assert recipients(dev.read_text()) == [project.identity.public, project.other.public]
    # The rule decided who can read: we cannot read prod, the other key can.
    assert_user_error(project.run("decrypt", prod), 3)
    assert project.decrypt(prod, key=project.other) == project.plaintext()
    assert project.decrypt(dev, key=project.other) == project.plaintext()
    assert sops_decrypt(sops_bin, dev, project.identity)["api"]["token"] == project.values["token"]
    # Run from another directory: the rule still applies relative to .sops.yaml.
    sub = project.root / "prod"
    again = project.root / "prod" / "other.yaml"
    again.write_text("a: b\n")
    environ = dict(os.environ, SOPS_AGE_KEY_FILE=str(project.identity.path))
    subprocess.run(
        [*CLI, "encrypt", "-i", "other.yaml"], cwd=sub, env=environ, check=True, timeout=60
    )
    assert recipients(again.read_text()) == [project.other.public]


# -- exit codes and error output ------------------------------------------------------------------


def test_usage_errors_exit_2(project: Project) -> None:
    path = project.encrypted()
    assert_usage_error(project.run("encrypt"))
    assert_usage_error(project.run("decrypt", "--no-such-option", path))
    assert_usage_error(project.run("nosuchcommand"))
    assert_usage_error(project.run("decrypt", "-i", "--output", "x.yaml", path))
    assert_usage_error(project.run("set", path, '["db"]'))  # VALUE missing
    assert not (project.root / "x.yaml").exists()


def test_no_identity_exits_3_and_names_sources(project: Project) -> None:
    path = project.encrypted()
    result = project.run("decrypt", path, key=None)
    err = assert_user_error(result, 3)
    assert "secrets.enc.yaml" in err
    assert project.identity.public in err  # which recipient it needed
    assert "SOPS_AGE_KEY_FILE" in err and "~/.kagura/keys.txt" in err  # where it looked
    assert result.stdout == "" and project.leaked(err) == []
    # A wrong key is the same clear error.
    wrong = project.run("decrypt", path, key=project.other)
    assert "other-key.txt" in assert_user_error(wrong, 3)
    assert wrong.stdout == ""


def test_tampered_file_exits_4(project: Project) -> None:
    path = project.encrypted()
    text = path.read_text()
    items = [line for line in text.splitlines() if line.startswith("  - ENC[")]
    assert len(items) == 2
    path.write_text(
        text.replace(items[0], "@@").replace(items[1], items[0]).replace("@@", items[1])
    )
    result = project.run("decrypt", path)
    assert "MAC" in assert_user_error(result, 4)
    assert result.stdout == "" and project.leaked(result.stderr) == []


def test_not_encrypted_and_already_encrypted_exit_5(project: Project) -> None:
    plain = project.root / "plain.yaml"
    plain.write_text(project.plaintext())
    for args in (
        ("decrypt", plain),
        ("set", plain, "a", "b"),
        ("unset", plain, "port"),
        ("rotate", plain),
    ):
        result = project.run(*args)
        assert_user_error(result, 5)
        assert project.leaked(result.stdout, result.stderr) == []
    assert plain.read_text() == project.plaintext()
    path = project.encrypted()
    before = path.read_bytes()
    result = project.run("encrypt", "-i", "--age", project.identity.public, path)
    assert "already encrypted" in assert_user_error(result, 5)
    assert path.read_bytes() == before


def test_no_recipients_and_bad_sops_yaml_exit_6(project: Project) -> None:
    plain = project.root / "plain.yaml"
    plain.write_text(project.plaintext())
    result = project.run("encrypt", plain)
    assert ".sops.yaml" in assert_user_error(result, 6)
    config = project.root / ".sops.yaml"
    for bad in (
        "creation_rules: [\n",  # not YAML
        "creation_rules:\n  - path_regex: '(unclosed'\n    age: " + project.identity.public + "\n",
        "creation_rules:\n  - path_regex: nothing-matches-this\n    age: "
        + project.identity.public
        + "\n",
        "creation_rules:\n  - path_regex: .*\n",  # no keys
        "creation_rules:\n  - path_regex: .*\n    age: not-a-recipient\n",
    ):
        config.write_text(bad)
        result = project.run("encrypt", "-i", plain)
        assert_user_error(result, 6)
        assert plain.read_text() == project.plaintext(), bad
        assert project.leaked(result.stdout, result.stderr) == []


# -- updatekeys ---------------------------------------------------------------------------------------


def test_updatekeys_rewraps_same_data_key(project: Project, sops_bin: str) -> None:
    config = project.root / ".sops.yaml"
    rule = "creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {}\n"
    config.write_text(rule.format(project.identity.public))
    path = project.root / "secrets.enc.yaml"
    path.write_text(project.plaintext())
    project.run("encrypt", "-i", path, check=True)
    before = path.read_text()
    assert_user_error(project.run("decrypt", path, key=project.other), 3)

    # Nothing to do yet: the file is left alone.
    same = project.run("updatekeys", "-y", path, check=True)
    assert "nothing to do" in same.stderr
    assert path.read_text() == before

    config.write_text(rule.format(f"{project.identity.public},{project.other.public}"))
    # Without -y and without a terminal it refuses and writes nothing.
    refused = project.run("updatekeys", path)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert path.read_text() == before

    result = project.run("updatekeys", "-y", path, check=True)
    assert f"+++ {project.other.public}" in result.stderr
    after = path.read_text()
    assert enc_by_path(after) == enc_by_path(before)
    assert sops_block(after)["mac"] == sops_block(before)["mac"]
    assert sops_block(after)["lastmodified"] == sops_block(before)["lastmodified"]
    assert recipients(after) == [project.identity.public, project.other.public]
    # Our stanza is kept as it was; the new one is added.
    assert sops_block(after)["age"][0] == sops_block(before)["age"][0]
    assert project.decrypt(path, key=project.other) == project.plaintext()
    assert project.decrypt(path) == project.plaintext()
    assert sops_decrypt(sops_bin, path, project.other)["list"] == [
        project.values["item0"],
        project.values["item1"],
    ]


# -- rotate ---------------------------------------------------------------------------------------------


def test_rotate_changes_every_ciphertext(project: Project, sops_bin: str) -> None:
    path = project.encrypted()
    before = path.read_text()
    stdout = project.run("rotate", path, check=True)
    assert path.read_text() == before  # without -i the file is untouched
    assert project.leaked(stdout.stdout, stdout.stderr) == []
    project.run("rotate", "-i", path, check=True)
    after = path.read_text()
    old, new = enc_by_path(before), enc_by_path(after)
    assert old.keys() == new.keys()
    assert all(old[k] != new[k] for k in old), [k for k in old if old[k] == new[k]]
    old_tokens, new_tokens = set(ENC_RE.findall(before)), set(ENC_RE.findall(after))
    assert not old_tokens & new_tokens  # comments and the mac too
    assert sops_block(after)["age"][0]["enc"] != sops_block(before)["age"][0]["enc"]
    assert project.decrypt(path) == project.plaintext()
    assert (
        sops_decrypt(sops_bin, path, project.identity)["db"]["password"]
        == project.values["password"]
    )


def test_rotate_add_and_remove_recipients(project: Project) -> None:
    path = project.encrypted()
    project.run("rotate", "-i", "--add-age", project.other.public, path, check=True)
    assert recipients(path.read_text()) == [project.identity.public, project.other.public]
    assert project.decrypt(path, key=project.other) == project.plaintext()

    kept = path.read_text()
    project.run("rotate", "-i", "--rm-age", project.other.public, path, check=True)
    assert recipients(path.read_text()) == [project.identity.public]
    locked_out = project.run("decrypt", path, key=project.other)
    assert_user_error(locked_out, 3)
    assert project.leaked(locked_out.stdout, locked_out.stderr) == []
    assert project.decrypt(path) == project.plaintext()
    # A new data key: the removed recipient's old stanza cannot open the new values.
    assert not set(ENC_RE.findall(kept)) & set(ENC_RE.findall(path.read_text()))

    unknown = project.run("rotate", "-i", "--rm-age", project.other.public, path)
    assert_user_error(unknown, 6)
    last = project.run("rotate", "-i", "--rm-age", project.identity.public, path)
    assert_user_error(last, 6)  # would leave no recipient
    assert project.decrypt(path) == project.plaintext()


# -- set / unset ------------------------------------------------------------------------------------------


def test_set_value_and_from_stdin(project: Project, sops_bin: str) -> None:
    path = project.encrypted()
    before = enc_by_path(path.read_text())
    new_password = secret("NEWPW")
    result = project.run("set", path, '["db"]["password"]', new_password, check=True)
    assert new_password not in result.stdout + result.stderr
    after = enc_by_path(path.read_text())
    assert after["db.password"] != before["db.password"]
    assert {k: v for k, v in after.items() if k != "db.password"} == {
        k: v for k, v in before.items() if k != "db.password"
    }
    assert new_password not in path.read_text()
    assert (
        project.run("decrypt", "--extract", '["db"]["password"]', path, check=True).stdout
        == new_password
    )

    piped = secret("PIPED")
    result = project.run("set", path, "api.token", "-", input=piped + "\n", check=True)
    assert piped not in result.stdout + result.stderr
    tree = sops_decrypt(sops_bin, path, project.identity)
    assert tree["api"]["token"] == piped  # the trailing newline of the pipe is dropped
    assert tree["db"]["password"] == new_password
    # A new key is created; the list is untouched.
    project.run("set", path, '["db"]["host"]', "db.internal", check=True)
    final = enc_by_path(path.read_text())
    assert "db.host" in final and final["list[0]"] == before["list[0]"]
    assert load_yaml(project.decrypt(path))["db"] == {
        "password": new_password,
        "user": "admin",
        "host": "db.internal",
    }


def test_unset(project: Project, sops_bin: str) -> None:
    path = project.encrypted()
    before = enc_by_path(path.read_text())
    project.run("unset", path, '["api"]["token"]', check=True)
    after = enc_by_path(path.read_text())
    assert "api.token" not in after
    assert after == {k: v for k, v in before.items() if k != "api.token"}
    tree = sops_decrypt(sops_bin, path, project.identity)
    assert tree["api"] == {} or tree["api"] is None
    assert project.values["token"] not in project.decrypt(path)
    missing = project.run("unset", path, '["api"]["token"]')
    assert_user_error(missing, 1)
    assert project.leaked(missing.stdout, missing.stderr) == []


# -- edit -----------------------------------------------------------------------------------------------


def test_edit_changes_only_the_edited_value(
    project: Project, tmp_path: Path, sops_bin: str
) -> None:
    path = project.encrypted()
    before_text = path.read_text()
    before = enc_by_path(before_text)
    new_token = secret("EDITED")
    report = tmp_path / "editor-report.json"
    editor = write_editor(
        tmp_path / "editor.py",
        f"""\
        import json, stat
        st_dir = os.stat(os.path.dirname(file))
        st_file = os.stat(file)
        json.dump({{"file": file, "dir_mode": stat.S_IMODE(st_dir.st_mode),
                   "file_mode": stat.S_IMODE(st_file.st_mode)}}, open({str(report)!r}, "w"))
        open(file, "w", encoding="utf-8").write(text.replace({project.values["token"]!r}, {new_token!r}))
        """,
    )
    result = project.run("edit", path, env={"EDITOR": editor}, check=True)
    assert project.leaked(result.stdout, result.stderr) == [] and new_token not in result.stderr
    seen = json.loads(report.read_text())
    assert seen["dir_mode"] == 0o700 and seen["file_mode"] == 0o600
    assert Path(seen["file"]).is_relative_to(project.tmpdir)
    assert not Path(seen["file"]).exists() and not Path(seen["file"]).parent.exists()
    assert list(project.tmpdir.iterdir()) == []

    after = enc_by_path(path.read_text())
    assert after["api.token"] != before["api.token"]
    assert {k: v for k, v in after.items() if k != "api.token"} == {
        k: v for k, v in before.items() if k != "api.token"
    }
    changed = [
        (a, b)
        for a, b in zip(before_text.splitlines(), path.read_text().splitlines(), strict=True)
        if a != b
    ]
    assert {a.split(":")[0].strip() for a, _ in changed} <= {"token", "mac", "lastmodified"}
    assert sops_decrypt(sops_bin, path, project.identity)["api"]["token"] == new_token


def test_edit_without_changes_leaves_file_untouched(project: Project, tmp_path: Path) -> None:
    path = project.encrypted()
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    editor = write_editor(tmp_path / "noop.py", "open(file, 'w', encoding='utf-8').write(text)\n")
    result = project.run("edit", path, env={"EDITOR": editor}, check=True)
    assert "unchanged" in result.stderr
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert list(project.tmpdir.iterdir()) == []
    assert sorted(p.name for p in project.root.iterdir()) == ["secrets.enc.yaml"]


def test_edit_invalid_yaml_writes_nothing_and_removes_plaintext(
    project: Project, tmp_path: Path
) -> None:
    path = project.encrypted()
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    where = tmp_path / "where.txt"
    editor = write_editor(
        tmp_path / "broken.py",
        f"""\
        open({str(where)!r}, "w").write(file)
        open(file, "w", encoding="utf-8").write(text + "\\nbroken: [unclosed\\n  - x: : :\\n")
        """,
    )
    result = project.run("edit", path, env={"EDITOR": editor})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert project.leaked(result.stdout, result.stderr) == []
    assert "kagura-ops: error:" in result.stderr
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime
    temp = Path(where.read_text())
    assert temp.is_relative_to(project.tmpdir)
    assert not temp.exists() and not temp.parent.exists()
    leftovers = [p for p in project.tmpdir.rglob("*") if p.is_file()]
    for leftover in leftovers:
        assert project.leaked(leftover.read_text(errors="replace")) == [], leftover
    assert list(project.tmpdir.iterdir()) == []
    assert sorted(p.name for p in project.root.iterdir()) == ["secrets.enc.yaml"]


def test_edit_failing_editor_removes_plaintext(project: Project, tmp_path: Path) -> None:
    path = project.encrypted()
    before = path.read_bytes()
    editor = write_editor(
        tmp_path / "fail.py", "open(file, 'w').write(text + 'x: 1\\n')\nsys.exit(3)\n"
    )
    result = project.run("edit", path, env={"EDITOR": editor})
    assert_user_error(result, 1)
    assert path.read_bytes() == before
    assert list(project.tmpdir.iterdir()) == []


def test_edit_creates_new_file_from_rules(project: Project, tmp_path: Path) -> None:
    (project.root / ".sops.yaml").write_text(
        f"creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {project.identity.public}\n"
    )
    value = secret("NEW")
    editor = write_editor(tmp_path / "new.py", f"open(file, 'w').write('k: {value}\\n')\n")
    project.run("edit", "new.enc.yaml", env={"EDITOR": editor}, check=True)
    path = project.root / "new.enc.yaml"
    assert value not in path.read_text()
    assert recipients(path.read_text()) == [project.identity.public]
    assert project.decrypt(path) == f"k: {value}\n"


def test_edit_with_no_identity_exits_3_without_temp_files(project: Project, tmp_path: Path) -> None:
    path = project.encrypted()
    marker = tmp_path / "editor-ran"
    editor = write_editor(tmp_path / "e.py", f"open({str(marker)!r}, 'w').write('ran')\n")
    result = project.run("edit", path, env={"EDITOR": editor}, key=None)
    assert_user_error(result, 3)
    assert not marker.exists()
    assert list(project.tmpdir.iterdir()) == []


def test_identity_flag_and_kagura_env(project: Project, tmp_path: Path) -> None:
    path = project.encrypted()
    assert project.run(
        "decrypt", "--identity", project.identity.path, path, key=None, check=True
    ).stdout == (project.plaintext())
    env = {"KAGURA_AGE_KEY_FILE": str(project.identity.path)}
    assert project.run("decrypt", path, key=None, env=env, check=True).stdout == project.plaintext()
    # An explicit --identity that does not exist is a clear error, not a traceback.
    missing = project.run("decrypt", "--identity", tmp_path / "nope.txt", path, key=None)
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    assert missing.stderr.startswith("kagura-ops: error:")
    # A second identity file works alongside.
    extra = make_identity(tmp_path, "third.txt")
    both = project.run(
        "decrypt",
        "--identity",
        extra.path,
        "--identity",
        project.identity.path,
        path,
        key=None,
        check=True,
    )
    assert both.stdout == project.plaintext()
