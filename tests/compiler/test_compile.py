"""End to end through the compiler: precedence, determinism, secrets, errors, --check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest

from kagura_ops.compiler.build import compile_env
from kagura_ops.compiler.lockfile import Lockfile
from kagura_ops.compiler.project import Project
from kagura_ops.errors import CompileError, IntegrityError
from kagura_ops.keys.age import AgeKey
from kagura_ops.sops.files import EncryptionSettings, encrypt_text
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import Identity, isolated_environ

SECRET = "sk-PLAINTEXT-NEVER-IN-LOCKFILE-4242"
APP_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "app": {
            "type": "object",
            "properties": {
                "who": {"type": "string"},
                "port": {"type": "integer"},
                "tags": {"type": "array", "x-merge": "append"},
            },
        }
    },
}


class ProjectFiles:
    """A throwaway project plus global and user layers, all in tmp_path."""

    def __init__(self, tmp_path: Path, identity: Identity) -> None:
        self.root = tmp_path / "proj"
        (self.root / "envs").mkdir(parents=True)
        (self.root / "schemas").mkdir()
        (self.root / "schemas" / "app.json").write_text(json.dumps(APP_SCHEMA))
        (self.root / "kagura.yaml").write_text("project:\n  name: demo\n")
        (self.root / "envs" / "prod.yaml").write_text("{}\n")
        self.home = tmp_path / "home"
        self.kagura_home = self.home / ".kagura"
        self.kagura_home.mkdir(parents=True)
        self.global_file = tmp_path / "global.yaml"
        self.identity = identity
        self.environ = isolated_environ(self.home, KAGURA_GLOBAL_CONFIG=str(self.global_file))
        self.environ.pop("CI", None)

    def write(self, where: str, text: str) -> None:
        paths = {
            "global": self.global_file,
            "user": self.kagura_home / "config.yaml",
            "project": self.root / "kagura.yaml",
            "env": self.root / "envs" / "prod.yaml",
        }
        if where in ("project-secret", "env-secret"):
            target = self.root / (
                "secrets.enc.yaml" if where == "project-secret" else "envs/prod.enc.yaml"
            )
            settings = EncryptionSettings([[AgeKey(self.identity.public)]], Selection.default())
            target.write_text(encrypt_text(text, "yaml", settings))
            return
        paths[where].write_text(text)

    def compile(self, env: str = "prod", **kwargs: Any) -> Any:
        return compile_env(Project(self.root), env, environ=self.environ, **kwargs)


@pytest.fixture
def proj(tmp_path: Path, identity: Identity) -> ProjectFiles:
    return ProjectFiles(tmp_path, identity)


LAYERS = ["global", "user", "project", "project-secret", "env", "env-secret"]


@pytest.mark.parametrize(("low", "high"), list(combinations(LAYERS, 2)))
def test_every_pair_of_layers(proj: ProjectFiles, low: str, high: str) -> None:
    """The higher layer wins, and provenance names it and the value it replaced."""
    proj.write(low, f"app:\n  who: {low}\n  port: 1\n")
    proj.write(high, f"app:\n  who: {high}\n")
    compiled = proj.compile()
    lock = compiled.lockfile
    if "secret" in high:
        assert "app.who" in lock.secrets and "who" not in lock.values["app"]
    else:
        assert lock.values["app"]["who"] == high
    # Deep merge kept the lower layer's other key (encrypted if it came from an encrypted file).
    if "secret" in low:
        assert "app.port" in lock.secrets
    else:
        assert lock.values["app"]["port"] == 1
    provenance = lock.provenance["app.who"]
    assert provenance["layer"] == ("env:prod" if high.startswith("env") else high.split("-")[0])
    assert len(provenance["overrides"]) == 1
    if "secret" in low or "secret" in high:
        assert provenance["overrides"][0].get("sensitive") is True
    else:
        assert provenance["overrides"][0]["value"] == low


def test_defaults_are_lowest(proj: ProjectFiles) -> None:
    proj.write("project", "llm:\n  temperature: 1.5\n")
    lock = proj.compile().lockfile
    assert lock.values["llm"]["temperature"] == 1.5
    assert lock.values["llm"]["provider"] == "auto"  # schema default
    assert lock.provenance["llm.temperature"]["overrides"][0]["layer"] == "defaults"


def test_user_layer_only_in_local_compiles(proj: ProjectFiles) -> None:
    proj.write("user", "app:\n  who: me\n")
    assert proj.compile().lockfile.values["app"]["who"] == "me"
    assert "app" not in proj.compile(include_user=False).lockfile.values
    proj.environ["CI"] = "true"
    assert "app" not in proj.compile().lockfile.values


def test_list_strategy_from_schema(proj: ProjectFiles) -> None:
    proj.write("project", "app:\n  tags: [a, b]\n")
    proj.write("env", "app:\n  tags: [c]\n")
    lock = proj.compile().lockfile
    assert lock.values["app"]["tags"] == ["a", "b", "c"]
    assert lock.provenance["app.tags"]["strategy"] == "append"


def test_reset_and_delete_markers(proj: ProjectFiles) -> None:
    proj.write("project", "app:\n  who: a\n  port: 1\n")
    proj.write("env", "app: !reset\n  who: b\n")
    assert proj.compile().lockfile.values["app"] == {"who": "b"}
    proj.write("env", "app:\n  port: !delete\n")
    assert proj.compile().lockfile.values["app"] == {"who": "a"}


def test_same_inputs_same_bytes(proj: ProjectFiles, tmp_path: Path, identity: Identity) -> None:
    proj.write("project", "app:\n  who: x\n  port: 1\n")
    proj.write("project-secret", f"llm:\n  api_key: {SECRET}\n")
    first = proj.compile().text
    assert proj.compile().text == first
    # The same files written in another order (and at other times) on disk.
    other = ProjectFiles(tmp_path / "again", identity)
    (other.root / "envs" / "prod.yaml").write_text("{}\n")
    for name in ("secrets.enc.yaml", "kagura.yaml"):
        (other.root / name).write_bytes((proj.root / name).read_bytes())
    other.environ = dict(proj.environ)
    assert other.compile().text == first
    assert first.endswith("\n") and json.loads(first)["digest"].startswith("sha256:")


def test_no_plaintext_and_no_identity_needed(proj: ProjectFiles) -> None:
    proj.write(
        "project-secret",
        f"llm:\n  api_key: {SECRET}\n  providers:\n    openai:\n      api_key: {SECRET}-2\n",
    )
    assert not any(k.startswith(("SOPS_AGE", "KAGURA_AGE")) for k in proj.environ)
    text = proj.compile().text
    assert SECRET not in text
    lock = json.loads(text)
    assert set(lock["secrets"]) == {"llm.api_key", "llm.providers.openai.api_key"}
    entry = lock["secrets"]["llm.api_key"]
    assert entry["file"] == "secrets.enc.yaml" and entry["aad"] == "llm:api_key:"
    assert entry["enc"].startswith("ENC[AES256_GCM,")
    assert lock["data_keys"]["secrets.enc.yaml"]["age"][0]["recipient"] == proj.identity.public


def test_plaintext_secret_in_any_layer_fails(proj: ProjectFiles) -> None:
    proj.write("user", f"llm:\n  api_key: {SECRET}\n")
    proj.write("project-secret", "llm:\n  api_key: from-encrypted\n")
    with pytest.raises(CompileError) as info:
        proj.compile()
    text = str(info.value)
    assert "x-secret" in text and "config.yaml:2" in text
    assert SECRET not in text


def test_all_errors_reported_at_once_with_positions(proj: ProjectFiles) -> None:
    proj.write(
        "project", "llm:\n  modle: gpt\n  temperature: 7\napp:\n  port: ${config.app.nope}\n"
    )
    proj.write("env", "observability:\n  log_level: loud\nbad: [1\n")
    with pytest.raises(CompileError) as info:
        proj.compile()
    lines = str(info.value).splitlines()
    joined = "\n".join(lines)
    assert "kagura.yaml:2:3" in joined and "model" in joined  # did-you-mean
    assert "temperature" in joined
    assert "envs/prod.yaml" in joined and "invalid YAML" in joined
    assert "app.nope" in joined
    assert len(info.value.diagnostics) >= 4


def test_interpolation_of_env_and_refs(proj: ProjectFiles) -> None:
    proj.environ["APP_PORT"] = "8080"
    proj.write(
        "project",
        "app:\n  who: ${WHO:-nobody}\n  port: ${APP_PORT}\nproject:\n  name: ${config.app.who}-svc\n",
    )
    lock = proj.compile().lockfile
    assert lock.values["app"] == {"who": "nobody", "port": 8080}  # a whole-value ${VAR} is typed
    assert lock.values["project"]["name"] == "nobody-svc"
    names = {i.get("env") for i in lock.inputs}
    assert {"APP_PORT", "WHO"} <= names


def test_secret_template_is_deferred(proj: ProjectFiles) -> None:
    proj.write("project-secret", f"secrets:\n  connection_string: {SECRET}\n")
    proj.write(
        "project", "project:\n  description: \"db {{ secret('secrets.connection_string') }}\"\n"
    )
    lock = proj.compile().lockfile
    assert "project.description" in lock.deferred
    assert "secret(" in lock.deferred["project.description"]["template"]
    assert SECRET not in proj.compile().text


def test_lockfile_round_trip_and_tamper(proj: ProjectFiles) -> None:
    proj.write("project", "app:\n  who: x\n")
    text = proj.compile().text
    lock = Lockfile.from_text(text)
    assert lock.values["app"]["who"] == "x"
    with pytest.raises(IntegrityError):
        Lockfile.from_text(text.replace('"who": "x"', '"who": "y"'))


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kagura_ops.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_compile_and_check(proj: ProjectFiles) -> None:
    proj.write("project", "app:\n  who: x\n")
    proj.write("env", "app:\n  port: 2\n")
    env = dict(proj.environ)
    result = _cli("compile", "--all-envs", cwd=proj.root, env=env)
    assert result.returncode == 0, result.stderr
    assert (proj.root / "kagura.lock").exists() and (proj.root / "kagura.prod.lock").exists()
    fresh = _cli("compile", "--check", "--env", "prod", cwd=proj.root / "envs", env=env)
    assert fresh.returncode == 0, fresh.stderr
    proj.write("env", "app:\n  port: 3\n")
    stale = _cli("compile", "--check", "--env", "prod", cwd=proj.root, env=env)
    assert stale.returncode == 1
    assert "kagura.prod.lock" in stale.stderr and "stale" in stale.stderr
    assert "Traceback" not in stale.stderr
    broken = _cli("compile", "--env", "prod", cwd=proj.root, env={**env, "KAGURA_ENV": ""})
    assert broken.returncode == 0


def test_cli_errors_are_lines_not_tracebacks(proj: ProjectFiles) -> None:
    proj.write("project", "llm:\n  temperature: hot\n")
    result = _cli("compile", cwd=proj.root, env=dict(proj.environ))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "kagura.yaml:2:3" in result.stderr
    unknown = _cli("compile", "--env", "nope", cwd=proj.root, env=dict(proj.environ))
    assert unknown.returncode == 6 and "unknown environment" in unknown.stderr


def test_env_var_layer_in_config_get(proj: ProjectFiles) -> None:
    proj.write("project", "app:\n  port: 1\n")
    env = {**proj.environ, "KAGURA__APP__PORT": "9000", "KAGURA__APP__WHO": "yes"}
    got = _cli("config", "get", "app.port", "--env", "prod", cwd=proj.root, env=env)
    assert got.returncode == 0 and got.stdout.strip() == "9000"
    who = _cli("config", "get", "app.who", "--env", "prod", cwd=proj.root, env=env)
    assert who.stdout.strip() == "yes"
    listing = _cli("config", "list", "--env", "prod", cwd=proj.root, env=env)
    assert "$KAGURA__APP__PORT" in listing.stdout and "overrides" in listing.stdout
    # The environment layer never reaches the lockfile.
    _cli("compile", "--env", "prod", cwd=proj.root, env=env)
    assert json.loads((proj.root / "kagura.prod.lock").read_text())["values"]["app"]["port"] == 1


def test_cli_config_set_reset_explain(proj: ProjectFiles) -> None:
    proj.write("project", "# top comment\napp:\n  who: a  # who runs it\n")
    env = dict(proj.environ)
    assert (
        _cli("config", "set", "app.who", "b", "--scope", "prod", cwd=proj.root, env=env).returncode
        == 0
    )
    assert "who: b" in (proj.root / "envs" / "prod.yaml").read_text()
    assert _cli("config", "set", "app.port", "80", cwd=proj.root, env=env).returncode == 0
    project_text = (proj.root / "kagura.yaml").read_text()
    assert (
        "# top comment" in project_text
        and "# who runs it" in project_text
        and "port: 80" in project_text
    )
    explained = _cli("config", "explain", "app.who", "--env", "prod", cwd=proj.root, env=env)
    assert explained.returncode == 0
    out = explained.stdout
    assert out.index("kagura.yaml") < out.index("envs/prod.yaml") and "wins" in out
    assert (
        _cli("config", "reset", "app.who", "--scope", "prod", cwd=proj.root, env=env).returncode
        == 0
    )
    assert (
        _cli("config", "get", "app.who", "--env", "prod", cwd=proj.root, env=env).stdout.strip()
        == "a"
    )
    refused = _cli("config", "set", "llm.api_key", "sk-xyz", cwd=proj.root, env=env)
    assert refused.returncode == 1 and "encrypted" in refused.stderr
    assert "sk-xyz" not in (proj.root / "kagura.yaml").read_text()


def test_cli_config_list_redacts_secrets(proj: ProjectFiles) -> None:
    proj.write("project-secret", f"llm:\n  api_key: {SECRET}\n")
    env = dict(proj.environ)
    for fmt in ("text", "json", "yaml"):
        result = _cli("config", "list", "--format", fmt, "--env", "prod", cwd=proj.root, env=env)
        assert result.returncode == 0, result.stderr
        assert SECRET not in result.stdout + result.stderr
        assert "(sensitive)" in result.stdout or '"sensitive": true' in result.stdout
    got = _cli("config", "get", "llm.api_key", "--env", "prod", cwd=proj.root, env=env)
    assert got.stdout.strip() == "(sensitive)" and SECRET not in got.stdout + got.stderr


def test_validate_reports_all_problems(proj: ProjectFiles) -> None:
    proj.write("project", "llm:\n  temperature: 9\n  strategy: fastest\n")
    result = _cli("config", "validate", cwd=proj.root, env=dict(proj.environ))
    assert result.returncode == 1
    assert "temperature" in result.stderr and "strategy" in result.stderr
    proj.write("project", "llm:\n  temperature: 1\n")
    ok = _cli("config", "validate", cwd=proj.root, env=dict(proj.environ))
    assert ok.returncode == 0 and "valid" in ok.stdout


def test_project_root_is_found_from_a_subdirectory(proj: ProjectFiles) -> None:
    (proj.root / "deep" / "er").mkdir(parents=True)
    assert Project.find(proj.root / "deep" / "er").root == proj.root
    os.chdir(proj.root / "deep")
    assert Project.find().root == proj.root
