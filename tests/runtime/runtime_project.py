"""A real project for runtime (and ConfigManager) tests: layers, an encrypted secrets file, a compiled lockfile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kagura_ops.atomicfile import atomic_write
from kagura_ops.compiler.build import compile_env
from kagura_ops.compiler.project import Project
from kagura_ops.keys.age import AgeKey
from kagura_ops.sops.files import EncryptionSettings, encrypt_text
from kagura_ops.sops.selection import Selection
from kagura_ops.testing import Identity, isolated_environ, make_identity

API_KEY = "sk-RUNTIME-PLAINTEXT-7f3a9c"
DB_PASSWORD = "pw-RUNTIME-PLAINTEXT-55e1"

APP_SCHEMA = {
    "type": "object",
    "properties": {
        "app": {
            "type": "object",
            "properties": {"token": {"x-env": "APP_SERVICE_TOKEN"}},
        }
    },
}


class RuntimeProject:
    """A project in ``tmp_path`` with its lockfile compiled; ``recompile`` rewrites it."""

    def __init__(self, tmp_path: Path, identity: Identity) -> None:
        self.root = tmp_path / "proj"
        (self.root / "envs").mkdir(parents=True)
        (self.root / "schemas").mkdir()
        (self.root / "schemas" / "app.json").write_text(json.dumps(APP_SCHEMA))
        self.identity = identity
        self.home = tmp_path / "home"
        self.home.mkdir()
        self.environ = isolated_environ(
            self.home, KAGURA_GLOBAL_CONFIG=str(tmp_path / "no-global.yaml")
        )
        for name in [n for n in self.environ if n.startswith("KAGURA_")]:
            if name != "KAGURA_GLOBAL_CONFIG":
                del self.environ[name]
        self.environ.pop("CI", None)
        self.settings = EncryptionSettings([[AgeKey(identity.public)]], Selection.default())
        self.write_project(model="gpt-4o")
        self.write_secrets(API_KEY, DB_PASSWORD)
        self.lockfile = self.root / "kagura.lock"
        self.recompile()

    def write_project(self, model: str, extra: str = "") -> None:
        (self.root / "kagura.yaml").write_text(
            "project:\n  name: demo\n"
            f"llm:\n  model: {model}\n  fallback_chain: [gpt-4o-mini, claude-3-haiku]\n"
            "app:\n  port: 8080\n  debug: false\n"
            "  db_url: \"postgres://app:{{ secret('app.db_password') }}@db/app\"\n" + extra
        )

    def write_secrets(self, api_key: str, db_password: str) -> None:
        text = (
            f"llm:\n  api_key: {api_key}\n  providers:\n    openai:\n      api_key: {api_key}-oa\n"
            f"app:\n  db_password: {db_password}\n  token: tok-{db_password}\n"
        )
        (self.root / "secrets.enc.yaml").write_text(encrypt_text(text, "yaml", self.settings))

    def compile_text(self) -> str:
        return compile_env(Project(self.root), "default", environ=self.environ).text

    def recompile(self) -> str:
        text = self.compile_text()
        atomic_write(self.lockfile, text)
        return text

    def keyed_environ(self, **extra: str) -> dict[str, str]:
        return {**self.environ, "SOPS_AGE_KEY_FILE": str(self.identity.path), **extra}

    def load(self, **kwargs: Any) -> Any:
        from kagura_ops import load_resolved

        kwargs.setdefault("environ", self.keyed_environ())
        return load_resolved(self.lockfile, **kwargs)


@pytest.fixture
def rproj(tmp_path: Path) -> RuntimeProject:
    return RuntimeProject(tmp_path, make_identity(tmp_path, "key.txt"))
