"""The documented examples work as the README says, from a fresh checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kagura_ops.testing import isolated_environ

ROOT = Path(__file__).parents[1]
TEAM = ROOT / "examples" / "team-repo"


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_team_repo_lockfiles_are_committed_and_fresh(tmp_path: Path) -> None:
    env = isolated_environ(tmp_path, CI="true", KAGURA_GLOBAL_CONFIG=str(tmp_path / "none.yaml"))
    result = _run(
        [sys.executable, "-m", "kagura_ops.cli", "compile", "--check", "--all-envs"], TEAM, env
    )
    assert result.returncode == 0, result.stderr


def test_team_repo_secrets_open_with_the_demo_key(tmp_path: Path) -> None:
    env = isolated_environ(tmp_path)
    result = _run(
        [
            sys.executable, "-m", "kagura_ops.cli", "decrypt", "--identity", "DEMO-ONLY-alice.agekey",
            "--extract", '["llm"]["providers"]["anthropic"]["api_key"]', "envs/production.enc.yaml",
        ],
        TEAM,
        env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sk-ant-demo-")


def test_quickstart_runs(tmp_path: Path) -> None:
    """The README's first set-up command (after the install) is this script."""
    env = isolated_environ(tmp_path, CI="true", KAGURA_GLOBAL_CONFIG=str(tmp_path / "none.yaml"))
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    result = _run(["bash", str(ROOT / "examples" / "quickstart.sh")], ROOT, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Public key: age1" in result.stdout
    assert "sk-ant-demo-9876543210" in result.stdout  # the --extract step
    assert "lockfiles are fresh" in result.stdout
    assert "(sensitive)" in result.stdout and "sk-demo-openai" not in result.stdout
