"""``load_resolved``: reads, lazy decryption, the env-var and runtime layers, keep-last-good."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
from runtime_project import API_KEY, DB_PASSWORD, RuntimeProject

from kagura_ops import (
    ConfigError,
    FormatError,
    IntegrityError,
    NoIdentityError,
    Resolved,
    Secret,
    load_resolved,
)


def test_reads_values_sections_lists_and_provenance(rproj: RuntimeProject) -> None:
    r = rproj.load()
    assert isinstance(r, Resolved)
    assert r["llm.model"] == r.llm.model == r.get("llm.model") == "gpt-4o"
    assert r["app.port"] == 8080 and r.app.debug is False
    assert r["llm.fallback_chain[1]"] == r.llm.fallback_chain[1] == "claude-3-haiku"
    assert list(r.llm.fallback_chain) == ["gpt-4o-mini", "claude-3-haiku"]
    assert r.get("llm.nope", "dflt") == "dflt" and r.get("nope.deeper") is None
    with pytest.raises(KeyError):
        r["llm.nope"]
    with pytest.raises(AttributeError):
        r.llm.nope  # noqa: B018
    assert r.provenance("llm.model") == {
        "layer": "project",
        "file": "kagura.yaml",
        "line": 4,
        "column": 3,
    }
    assert r.provenance("llm.temperature")["layer"] == "defaults"
    names = r.keys()  # every leaf, secrets included
    assert r.snapshot().env == "default" and "llm.model" in names and "llm.api_key" in names


def test_default_path_is_found_from_the_working_directory(
    rproj: RuntimeProject, monkeypatch: pytest.MonkeyPatch
) -> None:
    (rproj.root / "sub").mkdir()
    monkeypatch.chdir(rproj.root / "sub")
    assert load_resolved(environ=rproj.environ)["llm.model"] == "gpt-4o"
    with pytest.raises(ConfigError, match=r"kagura\.prod\.lock"):
        load_resolved(env="prod", environ=rproj.environ)


def test_secrets_are_lazy_and_errors_name_the_key(rproj: RuntimeProject) -> None:
    # No identity anywhere: loading and reading plain values work.
    r = rproj.load(environ=rproj.environ)
    assert r["llm.model"] == "gpt-4o"
    assert r.as_dict()["llm"]["api_key"] == "***"
    with pytest.raises(NoIdentityError) as info:
        r["llm.api_key"]
    message = str(info.value)
    assert "llm.api_key" in message and "secrets.enc.yaml" in message
    assert "SOPS_AGE_KEY_FILE" in message and API_KEY not in message
    with pytest.raises(NoIdentityError, match=r"app\.db_password"):
        r.app.db_url  # noqa: B018  (a deferred template needs the secret it renders)


def test_secrets_decrypt_once_per_snapshot(rproj: RuntimeProject) -> None:
    r = rproj.load(identity=rproj.identity.path, environ=rproj.environ)
    key = r["llm.api_key"]
    assert isinstance(key, Secret) and key.reveal() == API_KEY
    assert r.llm.api_key is key  # cached: decrypted once
    assert r["llm.providers.openai.api_key"].reveal() == API_KEY + "-oa"
    url = r["app.db_url"]
    assert isinstance(url, Secret)
    assert url.reveal() == f"postgres://app:{DB_PASSWORD}@db/app"
    assert r.as_dict(reveal=True)["app"]["db_password"] == DB_PASSWORD
    assert API_KEY not in json.dumps(r.as_dict()) and API_KEY not in repr(r.snapshot())
    assert API_KEY not in repr(r.llm)


def test_environment_variable_and_runtime_layers(rproj: RuntimeProject) -> None:
    environ = rproj.keyed_environ(
        KAGURA__LLM__MODEL="from-env", KAGURA__APP__PORT="9000", KAGURA__LLM__API_KEY="sk-env"
    )
    r = load_resolved(rproj.lockfile, environ=environ, overrides={"app.port": 1, "new.key": True})
    assert r["llm.model"] == "from-env"
    assert r["app.port"] == 1 and r["new.key"] is True
    env_prov = r.provenance("llm.model")
    assert env_prov["layer"] == "environment" and env_prov["env_var"] == "KAGURA__LLM__MODEL"
    assert env_prov["overrides"][-1] == {
        "layer": "project",
        "file": "kagura.yaml",
        "line": 4,
        "column": 3,
        "value": "gpt-4o",
    }
    port = r.provenance("app.port")
    assert port["layer"] == "runtime"
    assert [o["layer"] for o in port["overrides"]] == ["project", "environment"]
    assert port["overrides"][-1]["value"] == 9000
    # A value set over a secret stays a Secret, and its provenance never shows it.
    key = r["llm.api_key"]
    assert isinstance(key, Secret) and key.reveal() == "sk-env"
    assert r.provenance("llm.api_key")["overrides"][-1]["sensitive"] is True
    assert "sk-env" not in json.dumps(r.as_dict()) + json.dumps(r.provenance("llm.api_key"))
    # The environment layer is read from `environ`, never from the lockfile.
    assert "from-env" not in rproj.lockfile.read_text()


def test_mapping_overrides_merge_deeply(rproj: RuntimeProject) -> None:
    r = rproj.load(overrides={"app": {"port": 2}})
    assert r["app.port"] == 2 and r["app.debug"] is False


def _broken_variants(text: str) -> dict[str, str]:
    data = json.loads(text)
    wrong_format = dict(data, format=99)
    return {
        "truncated": text[: len(text) // 2],
        "garbage": "\x00\x01 not json at all",
        "empty": "",
        "tampered": text.replace('"gpt-5"', '"gpt-6"'),
        "wrong-format": json.dumps(wrong_format, indent=2, sort_keys=True) + "\n",
    }


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "tampered", "wrong-format"])
def test_keep_last_good(rproj: RuntimeProject, kind: str, caplog: pytest.LogCaptureFixture) -> None:
    r = rproj.load()
    assert r["llm.api_key"].reveal() == API_KEY
    rproj.write_project(model="gpt-5")
    good = rproj.compile_text()
    bad = _broken_variants(good)[kind]
    rproj.lockfile.write_text(bad)
    with caplog.at_level(logging.WARNING, logger="kagura_ops.runtime"):
        assert r.reload() is False
        assert r.reload() is False  # still bad: no second warning
    assert r["llm.model"] == "gpt-4o" and r["llm.api_key"].reveal() == API_KEY
    expected = {
        "truncated": FormatError,
        "garbage": FormatError,
        "empty": FormatError,
        "tampered": IntegrityError,
        "wrong-format": FormatError,
    }[kind]
    assert isinstance(r.last_error, expected)
    warnings = [rec for rec in caplog.records if rec.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "keeping the last good" in warnings[0].getMessage()
    assert API_KEY not in caplog.text and "gpt-6" not in caplog.text
    # A good file brings it back.
    rproj.lockfile.write_text(good)
    assert r.reload() is True
    assert r.last_error is None and r["llm.model"] == "gpt-5"


def test_undecryptable_reload_keeps_last_good(rproj: RuntimeProject, tmp_path: Path) -> None:
    """Secrets this process could read must still decrypt after a reload."""
    from kagura_ops.keys.age import AgeKey
    from kagura_ops.sops.files import EncryptionSettings
    from kagura_ops.sops.selection import Selection
    from kagura_ops.testing import make_identity

    r = rproj.load()
    assert r["llm.api_key"].reveal() == API_KEY
    stranger = make_identity(tmp_path, "stranger.txt")
    rproj.settings = EncryptionSettings([[AgeKey(stranger.public)]], Selection.default())
    rproj.write_secrets("sk-unreadable", "pw")
    rproj.recompile()
    assert r.reload() is False
    assert isinstance(r.last_error, NoIdentityError)
    assert r["llm.api_key"].reveal() == API_KEY


def test_wrong_environment_is_refused(rproj: RuntimeProject) -> None:
    with pytest.raises(ConfigError, match="environment 'default', not 'prod'"):
        load_resolved(rproj.lockfile, env="prod", environ=rproj.environ)


def test_missing_lockfile_names_the_fix(rproj: RuntimeProject) -> None:
    os.remove(rproj.lockfile)
    with pytest.raises(ConfigError, match="kagura-ops compile"):
        rproj.load()


def test_paths_with_dots_indices_and_misses(rproj: RuntimeProject) -> None:
    r = rproj.load(overrides={'app["x.y"]': 1})
    assert r['app["x.y"]'] == 1 and r.app["x.y"] == 1
    assert r.get("llm.fallback_chain[2]") is None and r.get("llm.fallback_chain[x]") is None
    assert r.get("llm.model.deeper") is None and "llm.model" in r and "llm.nope" not in r
    assert r.llm.fallback_chain[-1] == "claude-3-haiku"
    assert sorted(r.llm) == sorted(r.as_dict()["llm"])
    assert r.snapshot().is_secret("llm.api_key") and not r.snapshot().is_secret("llm.model")
