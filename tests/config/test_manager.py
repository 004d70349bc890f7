"""``ConfigManager``: dev mode over the layers, lockfile mode, scopes, async and sync."""

from __future__ import annotations

import asyncio

import pytest
from runtime_project import API_KEY, RuntimeProject

from kagura_ops import ConfigManager, InputError, Secret


def _manager(rproj: RuntimeProject, **kwargs: object) -> ConfigManager:
    return ConfigManager(rproj.root, environ=rproj.keyed_environ(), **kwargs)  # type: ignore[arg-type]


def test_dev_mode_reads_the_layers_directly(rproj: RuntimeProject) -> None:
    rproj.lockfile.unlink()  # dev mode never needs a lockfile
    cm = _manager(rproj)
    assert cm.get_sync("llm.model") == "gpt-4o"
    assert cm.get_sync("llm.nope", "d") == "d"
    secret = cm.get_sync("llm.api_key")
    assert isinstance(secret, Secret) and secret.reveal() == API_KEY
    assert "llm.api_key" in cm.list_sync() and cm.list_sync("llm.fallback_chain") == [
        "llm.fallback_chain[0]",
        "llm.fallback_chain[1]",
    ]
    # An edit of a layer file by someone else shows after reload().
    rproj.write_project(model="edited")
    assert cm.get_sync("llm.model") == "gpt-4o"
    cm.reload_sync()
    assert cm.get_sync("llm.model") == "edited"


@pytest.mark.parametrize("scope", ["user", "project", "prod", "global"])
def test_file_scopes_write_the_layer_file_and_are_visible_at_once(
    rproj: RuntimeProject, scope: str
) -> None:
    (rproj.root / "envs" / "prod.yaml").write_text("# prod overlay\n{}\n")
    (rproj.root / "kagura.yaml").write_text(
        "# keep me\n" + (rproj.root / "kagura.yaml").read_text()
    )
    cm = ConfigManager(rproj.root, env="prod", environ=rproj.keyed_environ())
    assert cm.get_sync("app.region") is None
    cm.set_sync("app.region", "eu-9100", scope=scope)
    assert cm.get_sync("app.region") == "eu-9100"
    files = {
        "user": rproj.home / ".kagura" / "config.yaml",
        "project": rproj.root / "kagura.yaml",
        "prod": rproj.root / "envs" / "prod.yaml",
        "global": rproj.root.parent / "no-global.yaml",
    }
    assert "region: eu-9100" in files[scope].read_text()
    assert "# keep me" in (rproj.root / "kagura.yaml").read_text()
    cm.unset_sync("app.region", scope=scope)
    assert cm.get_sync("app.region") is None


def test_runtime_scope_is_memory_only_and_wins(rproj: RuntimeProject) -> None:
    cm = ConfigManager(rproj.root, environ=rproj.keyed_environ(KAGURA__LLM__MODEL="env"))
    assert cm.get_sync("llm.model") == "env"
    before = (rproj.root / "kagura.yaml").read_text()
    cm.set_sync("llm.model", "runtime-model", scope="runtime")
    assert cm.get_sync("llm.model") == "runtime-model"
    assert cm.resolved().provenance("llm.model")["layer"] == "runtime"
    assert (rproj.root / "kagura.yaml").read_text() == before
    cm.unset_sync("llm.model", scope="runtime")
    assert cm.get_sync("llm.model") == "env"


def test_secrets_are_refused_in_plain_layers(rproj: RuntimeProject) -> None:
    cm = _manager(rproj)
    with pytest.raises(InputError, match="encrypted file"):
        cm.set_sync("llm.api_key", "sk-plain", scope="project")
    assert "sk-plain" not in (rproj.root / "kagura.yaml").read_text()


def test_lockfile_mode_recompiles_on_set(rproj: RuntimeProject) -> None:
    cm = _manager(rproj, lockfile=rproj.lockfile)
    assert cm.get_sync("llm.model") == "gpt-4o"
    cm.set_sync("llm.model", "via-lockfile", scope="project")
    assert cm.get_sync("llm.model") == "via-lockfile"
    assert '"via-lockfile"' in rproj.lockfile.read_text()


def test_async_api(rproj: RuntimeProject) -> None:
    async def main() -> None:
        cm = _manager(rproj)
        assert await cm.get("llm.model") == "gpt-4o"
        await cm.set("llm.model", "async-set", scope="runtime")
        assert await cm.get("llm.model") == "async-set"
        assert (await cm.get("llm.api_key")).reveal() == API_KEY
        assert "llm.model" in await cm.list()
        await cm.set("app.port", 1234, scope="project")
        assert await cm.get("app.port") == 1234
        await cm.reload()
        assert await cm.get("app.port") == 1234
        await cm.unset("llm.model", scope="runtime")
        assert await cm.get("llm.model") == "gpt-4o"

    asyncio.run(main())
