"""``kagura-ops plan`` against real git repositories: every kind of change, every format."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from gitrepo import Repo

from kagura_ops.cli import main

SECRET_OLD = "PLAINTEXT-old-hunter2-4242"
SECRET_NEW = "PLAINTEXT-new-hunter3-4343"
USER_MARKER = "USER-LAYER-MARKER-7777"
FORMATS = ("text", "markdown", "json")


def plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def plan_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = plan(capsys, "--format", "json", *args)
    return code, json.loads(out)


def changes(document: dict[str, Any], env: str = "default") -> dict[str, dict[str, Any]]:
    (found,) = [e for e in document["envs"] if e["env"] == env]
    return {c["path"]: c for c in found["changes"]}


def test_no_change(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit()
    code, out, err = plan(capsys, "--detailed-exitcode")
    assert code == 0, err
    assert "No changes" in out
    code, document = plan_json(capsys, "--all-envs")
    assert code == 0
    assert document["summary"] == {"add": 0, "change": 0, "remove": 0}
    assert [e["status"] for e in document["envs"]] == ["unchanged", "unchanged"]
    assert document["changed"] is False
    assert repo.git("status", "--porcelain").stdout == ""  # nothing written, nothing checked out


def test_plain_keys_added_changed_removed(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    base = repo.commit()
    repo.write("kagura.yaml", "app:\n  name: renamed\n  tags: [a, b]\n  replicas: 3\n")
    code, out, _ = plan(capsys, "--detailed-exitcode", "--no-color")
    assert code == 2
    assert "Plan: 1 to add, 1 to change, 1 to remove." in out
    assert '  ~ app.name: "demo" -> "renamed"  (kagura.yaml:2, project)' in out
    assert "  + app.replicas = 3  (kagura.yaml:4, project)" in out
    assert "  - app.port = 8080  (kagura.yaml:3, project)" in out
    assert "\x1b[" not in out
    _, document = plan_json(capsys)
    assert document["base_commit"] == base
    found = changes(document)
    assert found["app.name"] == {
        "action": "change",
        "path": "app.name",
        "kind": "value",
        "old": "demo",
        "new": "renamed",
        "origin": {"layer": "project", "file": "kagura.yaml", "line": 2},
    }
    assert found["app.replicas"]["action"] == "add" and found["app.replicas"]["new"] == 3
    assert found["app.port"]["action"] == "remove" and found["app.port"]["old"] == 8080
    # Without --detailed-exitcode a plan with changes exits 0.
    assert plan(capsys)[0] == 0


def test_type_change_is_a_change(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("kagura.yaml", "app:\n  flag: 1\n  other: 1\n")
    repo.commit()
    repo.write("kagura.yaml", "app:\n  flag: '1'\n  other: true\n")
    _, document = plan_json(capsys)
    assert changes(document)["app.flag"]["old"] == 1
    assert changes(document)["app.flag"]["new"] == "1"
    assert changes(document)["app.other"]["new"] is True


def test_secret_changes_by_ciphertext_never_plaintext(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.encrypt(
        "secrets.enc.yaml", f"db:\n  password: {SECRET_OLD}\napi:\n  token: {SECRET_OLD}\n"
    )
    repo.commit()
    # Same file re-encrypted with one value unchanged: stable ciphertext, no change reported.
    repo.encrypt(
        "secrets.enc.yaml", f"db:\n  password: {SECRET_NEW}\napi:\n  token: {SECRET_OLD}\n"
    )
    code, document = plan_json(capsys)
    assert code == 0, document
    assert list(changes(document)) == ["db.password"]
    assert changes(document)["db.password"] == {
        "action": "change",
        "path": "db.password",
        "kind": "secret",
        "sensitive": True,
        "origin": {"layer": "project", "file": "secrets.enc.yaml", "line": 2},
    }
    repo.encrypt(
        "secrets.enc.yaml", f"db:\n  password: {SECRET_NEW}\nextra:\n  key: {SECRET_NEW}\n"
    )
    outputs = []
    for fmt in FORMATS:
        code, out, err = plan(capsys, "--format", fmt, "--all-envs")
        assert code == 0, err
        outputs.append(out + err)
    text, markdown, _ = outputs
    assert "  ~ db.password: (sensitive value) changed" in text
    assert "  + extra.key: (sensitive value) added" in text
    assert "  - api.token: (sensitive value) removed" in text
    assert "*(sensitive value) removed*" in markdown
    for out in outputs:
        assert SECRET_OLD not in out and SECRET_NEW not in out
        assert "ENC[" not in out  # not even the ciphertext


def test_value_becoming_a_secret_hides_the_old_plain_value(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.write("kagura.yaml", "app:\n  name: was-plain-value\n")
    repo.commit()
    repo.write("kagura.yaml", "app: {}\n")
    repo.encrypt("secrets.enc.yaml", f"app:\n  name: {SECRET_NEW}\n")
    for fmt in FORMATS:
        _, out, _ = plan(capsys, "--format", fmt)
        assert "was-plain-value" not in out and SECRET_NEW not in out
        assert "was a plain value" in out


def test_list_changes_are_readable(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.write(
        "kagura.yaml",
        "app:\n  tags: [a, b, c]\n  hosts:\n    - {name: x, port: 1}\n    - {name: y, port: 2}\n"
        "  order: [1, 2, 3]\n",
    )
    repo.commit()
    repo.write(
        "kagura.yaml",
        "app:\n  tags: [a, c, d]\n  hosts:\n    - {name: y, port: 3}\n    - {name: x, port: 1}\n"
        "  order: [3, 2, 1]\n",
    )
    code, out, _ = plan(capsys, "--no-color")
    assert code == 0
    assert '  ~ app.tags  (kagura.yaml:2, project)\n      - "b"\n      + "d"\n' in out
    assert "      ~ [1].port: 2 -> 3\n" in out
    assert "  ~ app.order (reordered)" in out
    _, document = plan_json(capsys)
    tags = changes(document)["app.tags"]
    assert tags["old"] == ["a", "b", "c"] and tags["new"] == ["a", "c", "d"]
    assert tags["items"] == [
        {"op": "-", "where": "[1]", "old": "b"},
        {"op": "+", "where": "[2]", "new": "d"},
    ]
    assert document["summary"] == {"add": 0, "change": 3, "remove": 0}


def test_env_overlay_changes(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit()
    repo.write("envs/prod.yaml", "app:\n  name: prod-name\n")  # drops the port override
    repo.write("envs/staging.yaml", "app:\n  port: 9000\n")
    code, out, _ = plan(capsys, "--env", "prod", "--no-color")
    assert code == 0
    assert "env default" not in out
    assert '  + app.name: "demo" -> "prod-name"' not in out
    assert (
        '  ~ app.name: "demo" -> "prod-name"  (envs/prod.yaml:2, env:prod; was kagura.yaml:2, project)'
        in out
    )
    # The override is gone: the project value shows through, and the plan says where from.
    assert (
        "  ~ app.port: 443 -> 8080  (kagura.yaml:3, project; was envs/prod.yaml:2, env:prod)" in out
    )
    _, document = plan_json(capsys, "--all-envs")
    assert [(e["env"], e["status"]) for e in document["envs"]] == [
        ("default", "unchanged"),
        ("prod", "changed"),
        ("staging", "added"),
    ]
    assert changes(document, "staging")["app.port"]["new"] == 9000
    assert changes(document, "staging")["app.port"]["origin"]["layer"] == "env:staging"
    markdown = plan(capsys, "--format", "markdown", "--all-envs")[1]
    total = document["summary"]
    assert total["change"] == 2 and total["remove"] == 0  # staging adds every key, defaults too
    assert markdown.startswith(
        f"### kagura-ops plan\n\n**Plan: {total['add']} to add, 2 to change, 0 to remove.**"
    )
    assert "<summary><b>prod</b>: 0 to add, 2 to change, 0 to remove</summary>" in markdown
    assert "<summary><b>staging</b>: new environment," in markdown
    assert "No changes in `default`." in markdown


def test_removals_are_called_out_in_markdown(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit()
    repo.write("kagura.yaml", "app:\n  name: demo\n  tags: [a, b]\n")
    (repo.root / "envs" / "prod.yaml").unlink()
    markdown = plan(capsys, "--format", "markdown", "--all-envs")[1]
    summary, _, rest = markdown.partition("> [!WARNING]")
    assert "to remove" in summary and rest
    assert "> - environment `prod` is removed" in rest
    assert "> - `app.port` in `default`" in rest
    assert rest.index("[!WARNING]") if "[!WARNING]" in rest else True
    assert rest.index("<details>") > rest.index("`app.port` in `default`")


def test_user_and_global_layers_never_in_a_plan(
    repo: Repo, git_env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo.commit()
    user = Path(git_env["HOME"]) / ".kagura" / "config.yaml"
    user.write_text(f"app:\n  name: {USER_MARKER}\n  user_only: {USER_MARKER}\n")
    Path(git_env["KAGURA_GLOBAL_CONFIG"]).write_text(f"app:\n  global_only: {USER_MARKER}\n")
    # A local compile sees the user layer...
    from kagura_ops.compiler.build import compile_env
    from kagura_ops.compiler.project import Project

    assert USER_MARKER in compile_env(Project(repo.root), "default", include_user=True).text
    # ...a plan never does, on either side.
    for fmt in FORMATS:
        code, out, err = plan(capsys, "--format", fmt, "--all-envs", "--detailed-exitcode")
        assert code == 0, (out, err)
        assert USER_MARKER not in out + err
        assert "user" not in json.dumps(plan_json(capsys)[1]["envs"])


def test_base_ref_missing_is_a_clear_error(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.commit()
    code, out, err = plan(capsys, "--base", "no-such-branch", "--detailed-exitcode")
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "kagura-ops: error: base ref 'no-such-branch' not found in this repository"
    assert lines[1].startswith("  hint: fetch it first")
    assert len(lines) == 2


def test_no_commit_at_all(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = plan(capsys)
    assert code == 1
    assert "no base to compare with" in err


def test_outside_a_git_repository(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "kagura.yaml").write_text("project:\n  name: x\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    code, _, err = plan(capsys, "--detailed-exitcode")
    assert code == 1
    assert "not inside a git repository" in err


def test_schema_error_at_head_is_a_plan_error(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit()
    repo.write("kagura.yaml", "app:\n  port: not-a-number\n  ${MISSING_VAR}: 1\n  url: ${NOPE}\n")
    for fmt in FORMATS:
        code, out, err = plan(capsys, "--format", fmt, "--detailed-exitcode")
        assert code == 1, (out, err)
        assert "kagura.yaml:2" in out and "expected integer" in out
        assert "NOPE" in out
        assert err.startswith("kagura-ops: error: plan failed: default has errors")
    _, document = plan_json(capsys)
    assert document["errors"] is True and document["envs"][0]["status"] == "error"


def test_usage_error_exits_1_with_detailed_exitcode(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    repo.commit()
    assert plan(capsys, "--detailed-exitcode", "--no-such-flag")[0] == 1
    assert plan(capsys, "--env", "prod", "--all-envs")[0] == 1
    code, _, err = plan(capsys, "--env", "nowhere")
    assert code == 1 and "unknown environment 'nowhere'" in err


def test_default_base_is_merge_base_with_origin_main(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    fork = repo.commit("base")
    repo.git("update-ref", "refs/remotes/origin/main", fork)
    repo.git("checkout", "-q", "-b", "feature")
    repo.write("kagura.yaml", "app:\n  name: feature\n  port: 8080\n  tags: [a, b]\n")
    repo.commit("feature")
    _, document = plan_json(capsys)
    assert document["base"] == f"merge-base(HEAD, origin/main) ({fork[:7]})"
    assert changes(document)["app.name"]["new"] == "feature"


def test_base_compiles_from_git_objects_in_a_shallow_clone(
    repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.commit("one")
    repo.write("kagura.yaml", "app:\n  name: two\n  port: 8080\n  tags: [a, b]\n")
    repo.commit("two")
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "-q", "--depth=1", f"file://{repo.root}", str(clone)],
        check=True,
        env=repo.environ,
    )
    monkeypatch.chdir(clone)
    (clone / "kagura.yaml").write_text("app:\n  name: three\n  port: 8080\n  tags: [a, b]\n")
    _, document = plan_json(capsys, "--base", "HEAD")
    assert changes(document)["app.name"]["old"] == "two"
    assert changes(document)["app.name"]["new"] == "three"
    # Only the working tree was read for head; nothing was checked out.
    assert (clone / "kagura.yaml").read_text().startswith("app:\n  name: three")


def test_project_in_a_subdirectory_and_new_project(
    repo: Repo, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo.write("README", "x\n")
    repo.commit()
    sub = repo.root / "svc"
    sub.mkdir()
    (sub / "kagura.yaml").write_text("project:\n  name: svc\n")
    monkeypatch.chdir(sub)
    _, document = plan_json(capsys)
    assert document["envs"][0]["status"] == "added"
    assert "no kagura.yaml" in document["envs"][0]["warnings"][0]
    repo.commit()
    (sub / "kagura.yaml").write_text("project:\n  name: svc2\n")
    _, document = plan_json(capsys)
    assert changes(document)["project.name"]["origin"]["file"] == "kagura.yaml"


def test_lockfile_mode_catches_a_stale_lockfile(
    repo: Repo, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compile", "--no-user", "--no-global"]) == 0
    capsys.readouterr()
    code, out, _ = plan(capsys, "--lockfile", "--detailed-exitcode")
    assert code == 0, out
    repo.write("kagura.yaml", "app:\n  name: demo\n  port: 9090\n  tags: [a, b]\n")
    code, out, _ = plan(capsys, "--lockfile", "--detailed-exitcode", "--no-color")
    assert code == 2
    assert "  ~ app.port: 8080 -> 9090" in out
    # Same values, other bytes (a comment changes the input digest): still stale.
    repo.write("kagura.yaml", "# comment\napp:\n  name: demo\n  port: 8080\n  tags: [a, b]\n")
    code, document = plan_json(capsys, "--lockfile", "--detailed-exitcode")
    assert code == 2
    assert document["envs"][0]["stale"] is True and document["envs"][0]["changes"] == []
    assert plan(capsys, "--lockfile", "--base", "HEAD")[0] == 1


def test_deferred_templates_are_sensitive(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.encrypt("secrets.enc.yaml", f"db:\n  password: {SECRET_OLD}\n")
    repo.write(
        "kagura.yaml",
        "app:\n  url: \"postgres://app:{{ secret('db.password') }}@db-old/app\"\n",
    )
    repo.commit()
    repo.write(
        "kagura.yaml",
        "app:\n  url: \"postgres://app:{{ secret('db.password') }}@db-new/app\"\n",
    )
    code, document = plan_json(capsys)
    assert code == 0, document
    assert changes(document)["app.url"] == {
        "action": "change",
        "path": "app.url",
        "kind": "secret",
        "sensitive": True,
        "origin": {"layer": "project", "file": "kagura.yaml", "line": 2},
    }
    for fmt in FORMATS:
        out = plan(capsys, "--format", fmt)[1]
        assert "db-old" not in out and "db-new" not in out and SECRET_OLD not in out
