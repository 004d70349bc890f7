"""Real git repositories in temp dirs, with a kagura project and an age identity."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from gitrepo import Repo

from kagura_ops.testing import Identity, isolated_environ

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "app": {
            "type": "object",
            "properties": {
                "port": {"type": "integer"},
                "tags": {"type": "array"},
            },
        },
        "db": {
            "type": "object",
            "properties": {"password": {"type": "string", "x-secret": True}},
        },
        "api": {"type": "object"},
        "extra": {"type": "object"},
    },
}


@pytest.fixture
def git_env(tmp_path: Path, identity: Identity) -> Iterator[dict[str, str]]:
    home = tmp_path / "home"
    (home / ".kagura").mkdir(parents=True)
    (tmp_path / "tmp").mkdir()
    env = isolated_environ(
        home,
        TMPDIR=str(tmp_path / "tmp"),
        SOPS_AGE_KEY_FILE=str(identity.path),
        GIT_AUTHOR_NAME="Test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="Test",
        GIT_COMMITTER_EMAIL="test@example.com",
        GIT_CONFIG_NOSYSTEM="1",
        KAGURA_GLOBAL_CONFIG=str(tmp_path / "no-global.yaml"),
    )
    env.pop("CI", None)
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    yield env


@pytest.fixture
def repo(
    tmp_path: Path, identity: Identity, git_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Repo:
    root = tmp_path / "repo"
    root.mkdir()
    for key in list(os.environ):
        if key not in git_env:
            monkeypatch.delenv(key)
    for key, value in git_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(root)
    r = Repo(root, identity, git_env)
    r.git("init", "-q", "-b", "main")
    r.write("schemas/app.json", json.dumps(SCHEMA))
    r.write("kagura.yaml", "app:\n  name: demo\n  port: 8080\n  tags: [a, b]\n")
    r.write("envs/prod.yaml", "app:\n  port: 443\n")
    r.write(
        ".sops.yaml",
        f"creation_rules:\n  - path_regex: \\.enc\\.yaml$\n    age: {identity.public}\n",
    )
    return r
