"""The merge driver, diff textconv and git-setup, against real git repositories."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo
from ruamel.yaml import YAML

from kagura_ops.cli import main
from kagura_ops.keys.identities import Keyring
from kagura_ops.sops.files import decrypt_file, decrypt_text
from kagura_ops.testing import make_identity

A0, A1, A2 = "PLAIN-a0-1111", "PLAIN-a1-2222", "PLAIN-a2-3333"
B0, B1 = "PLAIN-b0-4444", "PLAIN-b1-5555"
C0, D1 = "PLAIN-c0-6666", "PLAIN-d1-7777"
ALL_PLAINTEXT = (A0, A1, A2, B0, B1, C0, D1)
BASE = f"svc:\n  a: {A0}\n  b: {B0}\nc: {C0}\n"


def enc_strings(text: str) -> dict[str, str]:
    tree = YAML(typ="safe").load(text)
    tree.pop("sops")
    out: dict[str, str] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
        else:
            out[prefix] = node

    walk(tree, "")
    return out


def plaintext(path: Path, repo: Repo) -> dict[str, Any]:
    keyring = Keyring([repo.identity.path], environ={}, home=repo.root)
    tree = decrypt_file(path, keyring).trees()[0]
    assert isinstance(tree, dict)
    return tree


def assert_no_plaintext_on_disk(root: Path) -> None:
    """No file under the test's whole temp dir (repo, .git, HOME, TMPDIR) holds a plaintext."""
    for path in root.parent.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            for secret in ALL_PLAINTEXT:
                assert secret.encode() not in data, (path, secret)


class Sides:
    """base/ours/theirs versions of one encrypted file as git hands them to the driver."""

    def __init__(self, repo: Repo, ours: str, theirs: str, base: str = BASE) -> None:
        self.repo = repo
        self.base = repo.encrypt("f/secrets.enc.yaml", base).read_text()
        self.ours = repo.encrypt("f/secrets.enc.yaml", ours).read_text()
        repo.write("f/secrets.enc.yaml", self.base)
        self.theirs = repo.encrypt("f/secrets.enc.yaml", theirs).read_text()
        self.paths = []
        for name, text in (("O", self.base), ("A", self.ours), ("B", self.theirs)):
            path = repo.root / f".merge_file_{name}"
            path.write_text(text)
            self.paths.append(path)

    def run(self, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
        code = main(["merge-driver", *map(str, self.paths), "f/secrets.enc.yaml"])
        return code, capsys.readouterr().err

    @property
    def result(self) -> str:
        return self.paths[1].read_text()


def test_disjoint_edits_merge_cleanly_with_stable_ciphertext(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    sides = Sides(
        repo,
        ours=f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\n",
        theirs=f"svc:\n  a: {A0}\n  b: {B1}\nc: {C0}\n",
    )
    code, err = sides.run(capsys)
    assert code == 0, err
    assert plaintext(sides.paths[1], repo) == {"svc": {"a": A1, "b": B1}, "c": C0}
    merged, base, ours, theirs = (
        enc_strings(t) for t in (sides.result, sides.base, sides.ours, sides.theirs)
    )
    assert merged["c"] == base["c"]  # untouched: byte-identical ciphertext
    assert merged["svc.a"] == ours["svc.a"]  # our change keeps our ciphertext
    assert merged["svc.b"] == theirs["svc.b"]  # theirs keeps theirs (same data key)
    for secret in ALL_PLAINTEXT:
        assert secret not in err
    assert_no_plaintext_on_disk(repo.root)


def test_added_and_deleted_keys(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    sides = Sides(
        repo,
        ours=f"svc:\n  a: {A0}\n  b: {B0}\nc: {C0}\nd: {D1}\n",  # adds d
        theirs=f"svc:\n  a: {A0}\nc: {C0}\n",  # deletes svc.b
    )
    code, err = sides.run(capsys)
    assert code == 0, err
    assert plaintext(sides.paths[1], repo) == {"svc": {"a": A0}, "c": C0, "d": D1}
    assert enc_strings(sides.result)["svc.a"] == enc_strings(sides.base)["svc.a"]


def test_same_change_on_both_sides_is_not_a_conflict(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    same = f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\n"
    sides = Sides(repo, ours=same, theirs=same)
    code, err = sides.run(capsys)
    assert code == 0, err
    assert sides.result == sides.ours  # nothing to do: ours untouched, byte for byte


@pytest.mark.parametrize(
    ("ours", "theirs", "conflicts"),
    [
        # Same key changed differently.
        (
            f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\n",
            f"svc:\n  a: {A2}\n  b: {B0}\nc: {C0}\n",
            ["svc.a"],
        ),
        # One side deleted what the other changed.
        (f"svc:\n  b: {B0}\nc: {C0}\n", f"svc:\n  a: {A2}\n  b: {B0}\nc: {C0}\n", ["svc.a"]),
        # Both added one key with different values, and changed another.
        (
            f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\nd: {D1}\n",
            f"svc:\n  a: {A2}\n  b: {B1}\nc: {C0}\nd: {A0}\n",
            ["svc.a", "d"],
        ),
    ],
)
def test_conflicts_exit_1_keep_ours_and_name_only_keys(
    repo: Repo,
    capsys: pytest.CaptureFixture[str],
    ours: str,
    theirs: str,
    conflicts: list[str],
) -> None:
    sides = Sides(repo, ours=ours, theirs=theirs)
    code, err = sides.run(capsys)
    assert code == 1
    assert sides.result == sides.ours  # ours left in place, still encrypted
    listed = [
        line.strip() for line in err.splitlines() if line.startswith("  ") and "hint" not in line
    ]
    assert listed == conflicts
    assert "merge conflict in f/secrets.enc.yaml" in err
    for secret in ALL_PLAINTEXT:
        assert secret not in err
    assert_no_plaintext_on_disk(repo.root)


def test_without_an_identity_exit_1_with_a_clear_message(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sides = Sides(
        repo,
        ours=f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\n",
        theirs=f"svc:\n  a: {A0}\n  b: {B1}\nc: {C0}\n",
    )
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    code, err = sides.run(capsys)
    assert code == 1
    assert err.startswith(
        "kagura-ops: error: merge-driver: f/secrets.enc.yaml (ours): cannot decrypt"
    )
    assert "git reports a conflict" in err
    assert sides.result == sides.ours


def test_git_setup_is_idempotent_and_uninstalls(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write(".gitattributes", "*.png binary\n")
    assert main(["git-setup"]) == 0
    attributes = (repo.root / ".gitattributes").read_text()
    config = (repo.root / ".git" / "config").read_text()
    assert '[merge "kagura-ops"]' in config and '[diff "kagura-ops"]' in config  # this clone only
    assert attributes.startswith("*.png binary\n\n# >>> kagura-ops git-setup")
    assert "\n*.enc.yaml merge=kagura-ops diff=kagura-ops\n" in attributes
    driver = repo.git("config", "merge.kagura-ops.driver").stdout.strip()
    assert driver.endswith(" merge-driver %O %A %B %P")
    assert repo.git("config", "diff.kagura-ops.textconv").stdout.strip().endswith(" diff-textconv")
    assert repo.git("config", "diff.kagura-ops.cachetextconv", check=False).returncode == 1
    assert main(["git-setup"]) == 0
    assert (repo.root / ".gitattributes").read_text() == attributes
    assert (repo.root / ".git" / "config").read_text() == config
    assert "already registered" in capsys.readouterr().err
    assert main(["git-setup", "--uninstall"]) == 0
    assert (repo.root / ".gitattributes").read_text() == "*.png binary\n"
    assert "kagura-ops" not in (repo.root / ".git" / "config").read_text()


def test_git_setup_patterns_from_creation_rules(repo: Repo) -> None:
    repo.write(
        ".sops.yaml",
        "creation_rules:\n"
        "  - path_regex: ^envs/(prod|staging)\\.enc\\.yaml$\n    age: x\n"
        "  - path_regex: \\.enc\\.(json|env)$\n    age: x\n"
        "  - path_regex: \\d+\\.yaml$\n    age: x\n",
    )
    assert main(["git-setup"]) == 0
    lines = (repo.root / ".gitattributes").read_text().splitlines()
    patterns = [line.split()[0] for line in lines if "merge=kagura-ops" in line]
    assert patterns == [
        "/envs/prod.enc.yaml",
        "/envs/staging.enc.yaml",
        "*.enc.json",
        "*.enc.env",
        *("*.enc.yaml", "*.enc.json", "*.enc.env")[:1],  # the untranslatable rule's fallback
    ]


@pytest.mark.parametrize(
    ("regex", "directory", "patterns"),
    [
        (r"\.enc\.yaml$", "", ["*.enc.yaml"]),
        (r"\.enc\.(yaml|json|env)$", "", ["*.enc.yaml", "*.enc.json", "*.enc.env"]),
        (r"\.enc\.yaml$", "svc", ["/svc/**/*.enc.yaml"]),
        (r"^secrets\.enc\.yaml$", "", ["/secrets.enc.yaml"]),
        (r"^secrets/.*", "", ["/secrets/**"]),
        (r"envs/prod\..*\.yaml$", "", ["**/*envs/prod.*.yaml"]),
        (r"\.sops(\.prod)?\.yaml$", "", ["*.sops.prod.yaml", "*.sops.yaml"]),
        (r"a\.yaml$|b\.json$", "", ["*a.yaml", "*b.json"]),
        (r"\d+\.yaml$", "", None),  # a class: not a glob
        (r"x+\.yaml$", "", None),  # a quantifier
        (r".*", "", None),  # everything: a catch-all rule, use the defaults
        (None, "", None),
    ],
)
def test_path_regex_to_gitattributes_patterns(
    regex: str | None, directory: str, patterns: list[str] | None
) -> None:
    from kagura_ops.git.setup import patterns_for_regex

    assert patterns_for_regex(regex, directory) == patterns


@pytest.mark.parametrize("module", [False, True], ids=["console-script", "python-m"])
def test_real_git_merge_after_git_setup(
    repo: Repo, capsys: pytest.CaptureFixture[str], module: bool
) -> None:
    repo.encrypt("secrets.enc.yaml", BASE)
    repo.commit("base")
    command = [f"--command={shlex.quote(sys.executable)} -m kagura_ops.cli"] if module else []
    assert main(["git-setup", *command]) == 0
    capsys.readouterr()
    repo.commit("attributes")
    # git must call *this* installation: the console script beside this interpreter, or -m.
    driver = repo.git("config", "merge.kagura-ops.driver").stdout
    assert str(Path(sys.executable).parent) in driver
    repo.git("checkout", "-q", "-b", "theirs")
    repo.encrypt("secrets.enc.yaml", f"svc:\n  a: {A0}\n  b: {B1}\nc: {C0}\n")
    repo.commit("theirs: b")
    repo.git("checkout", "-q", "main")
    repo.encrypt("secrets.enc.yaml", f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\nd: {D1}\n")
    repo.commit("ours: a, d")
    merged = repo.git("merge", "--no-edit", "theirs", check=False)
    assert merged.returncode == 0, merged.stdout + merged.stderr
    assert "kagura-ops: merged secrets.enc.yaml" in merged.stderr
    assert plaintext(repo.root / "secrets.enc.yaml", repo) == {
        "svc": {"a": A1, "b": B1},
        "c": C0,
        "d": D1,
    }
    assert repo.git("status", "--porcelain").stdout == ""
    # textconv: git diff shows plaintext with the identity, digests without.
    shown = repo.git("diff", "HEAD~1", "HEAD", "--", "secrets.enc.yaml").stdout
    assert f"+  b: {B1}" in shown and "sops:" not in shown
    env = {k: v for k, v in repo.environ.items() if k != "SOPS_AGE_KEY_FILE"}
    redacted = subprocess.run(
        ["git", "diff", "HEAD~1", "HEAD", "--", "secrets.enc.yaml"],
        cwd=repo.root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    changed = [line for line in redacted.splitlines() if line.startswith(("+ ", "- "))]
    assert [line.split(":")[0] for line in changed] == ["-  b", "+  b"]
    assert "<encrypted sha256:" in redacted
    for secret in ALL_PLAINTEXT:
        assert secret not in redacted
    assert_no_plaintext_on_disk(repo.root)


def test_real_git_merge_conflict_leaves_ours_encrypted(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.encrypt("secrets.enc.yaml", BASE)
    assert main(["git-setup"]) == 0
    repo.commit("base")
    repo.git("checkout", "-q", "-b", "theirs")
    repo.encrypt("secrets.enc.yaml", f"svc:\n  a: {A2}\n  b: {B0}\nc: {C0}\n")
    repo.commit("theirs")
    repo.git("checkout", "-q", "main")
    ours = repo.encrypt("secrets.enc.yaml", f"svc:\n  a: {A1}\n  b: {B0}\nc: {C0}\n").read_text()
    repo.commit("ours")
    merged = repo.git("merge", "--no-edit", "theirs", check=False)
    assert merged.returncode == 1
    assert "svc.a" in merged.stderr and "CONFLICT" in merged.stdout
    assert (repo.root / "secrets.enc.yaml").read_text() == ours  # no conflict markers
    for secret in ALL_PLAINTEXT:
        assert secret not in merged.stdout + merged.stderr
    assert_no_plaintext_on_disk(repo.root)


def test_textconv_without_identity_shows_digests(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = repo.encrypt("secrets.enc.yaml", BASE)
    assert main(["diff-textconv", str(path)]) == 0
    assert capsys.readouterr().out == f"svc:\n  a: {A0}\n  b: {B0}\nc: {C0}\n"
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(make_identity(tmp_path, "stranger.txt").path))
    assert main(["diff-textconv", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("<encrypted sha256:") == 3 and "sops" not in out
    for secret in ALL_PLAINTEXT:
        assert secret not in out
    keyring = Keyring([repo.identity.path], environ={}, home=repo.root)
    assert decrypt_text(path.read_text(), "yaml", keyring).trees()[0]["c"] == C0
    plain = repo.write("plain.enc.yaml", "not: encrypted\n")
    assert main(["diff-textconv", str(plain)]) == 0
    assert capsys.readouterr().out == "not: encrypted\n"


@pytest.mark.parametrize(
    ("fmt", "base", "ours", "theirs", "merged"),
    [
        (
            "json",
            '{"a": "A0", "b": {"c": "C0"}, "keep": "K"}',
            '{"a": "A1", "b": {"c": "C0"}, "keep": "K"}',
            '{"a": "A0", "b": {"c": "C1", "d": true}, "keep": "K"}',
            {"a": "A1", "b": {"c": "C1", "d": True}, "keep": "K"},
        ),
        (
            "dotenv",
            "A=1\nB=2\nC=3\n",
            "A=9\nB=2\nC=3\n",
            "A=1\nB=2\nD=4\n",
            {"A": "9", "B": "2", "D": "4"},
        ),
    ],
)
def test_json_and_dotenv_files_merge_too(
    repo: Repo, fmt: str, base: str, ours: str, theirs: str, merged: dict[str, Any]
) -> None:
    from kagura_ops.git.merge import merge_texts
    from kagura_ops.keys.age import AgeKey
    from kagura_ops.sops.files import EncryptionSettings, encrypt_text, reencrypt
    from kagura_ops.sops.selection import Selection

    keyring = Keyring([repo.identity.path], environ={}, home=repo.root)
    settings = EncryptionSettings([[AgeKey(repo.identity.public)]], Selection.default())
    base_text = encrypt_text(base, fmt, settings)
    previous = decrypt_text(base_text, fmt, keyring)
    ours_text = reencrypt(previous, ours, fmt)
    theirs_text = reencrypt(previous, theirs, fmt)
    result = merge_texts(base_text, ours_text, theirs_text, fmt, keyring)
    assert result.clean and result.text is not None
    assert decrypt_text(result.text, fmt, keyring).trees()[0] == merged
