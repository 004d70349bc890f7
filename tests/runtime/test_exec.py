"""``kagura-ops exec`` (environment, exit code, signals) and ``kagura-ops load``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from runtime_project import API_KEY, DB_PASSWORD, RuntimeProject

SHOW_ENV = "import json, os; print(json.dumps(dict(os.environ)))"


def _cli(rproj: RuntimeProject, *args: str, env: dict[str, str] | None = None, **kw: object):
    return subprocess.run(
        [sys.executable, "-m", "kagura_ops.cli", *args],
        cwd=rproj.root,
        env=env or rproj.keyed_environ(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        **kw,  # type: ignore[arg-type]
    )


def test_exec_passes_values_and_secrets(rproj: RuntimeProject) -> None:
    result = _cli(rproj, "exec", "--", sys.executable, "-c", SHOW_ENV)
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["LLM_MODEL"] == "gpt-4o" and env["APP_PORT"] == "8080"
    assert env["APP_DEBUG"] == "false"
    assert json.loads(env["LLM_FALLBACK_CHAIN"]) == ["gpt-4o-mini", "claude-3-haiku"]
    # x-env names: built-in (OPENAI_API_KEY, KAGURA_LLM_API_KEY) and the project's schema.
    assert env["OPENAI_API_KEY"] == API_KEY + "-oa"
    assert env["KAGURA_LLM_API_KEY"] == API_KEY
    assert env["APP_SERVICE_TOKEN"] == f"tok-{DB_PASSWORD}"
    assert env["APP_DB_URL"] == f"postgres://app:{DB_PASSWORD}@db/app"
    assert "HOME" in env  # the parent environment is kept


def test_exec_only_and_prefix(rproj: RuntimeProject) -> None:
    result = _cli(
        rproj,
        "exec",
        "--only",
        "llm.model,app",
        "--prefix",
        "MY_",
        "--",
        sys.executable,
        "-c",
        SHOW_ENV,
    )
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)
    assert env["MY_LLM_MODEL"] == "gpt-4o" and env["MY_APP_PORT"] == "8080"
    assert env["APP_SERVICE_TOKEN"] == f"tok-{DB_PASSWORD}"  # declared names keep theirs
    assert "MY_LLM_PROVIDER" not in env and "OPENAI_API_KEY" not in env
    unknown = _cli(rproj, "exec", "--only", "llm.nope", "--", "true")
    assert unknown.returncode == 1 and "llm.nope" in unknown.stderr


def test_exec_exit_code_passes_through(rproj: RuntimeProject) -> None:
    result = _cli(rproj, "exec", "--", sys.executable, "-c", "import sys; sys.exit(42)")
    assert result.returncode == 42
    missing = _cli(rproj, "exec", "--", "no-such-command-kagura")
    assert missing.returncode == 1 and "cannot run" in missing.stderr


def test_exec_replaces_the_process_so_signals_reach_the_command(rproj: RuntimeProject) -> None:
    child = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(17))\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(30)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "kagura_ops.cli", "exec", "--", sys.executable, "-c", child],
        cwd=rproj.root,
        env=rproj.keyed_environ(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    pid = int(proc.stdout.readline())
    assert pid == proc.pid  # exec'd: no kagura-ops process in between
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 17
    plain = subprocess.Popen(
        [sys.executable, "-m", "kagura_ops.cli", "exec", "--", "sleep", "30"],
        cwd=rproj.root,
        env=rproj.keyed_environ(),
    )
    time.sleep(0.5)
    plain.send_signal(signal.SIGINT)
    assert plain.wait(timeout=10) == -signal.SIGINT


def test_exec_without_identity_names_the_key(rproj: RuntimeProject) -> None:
    result = _cli(rproj, "exec", "--", "true", env=rproj.environ)
    assert result.returncode == 3
    assert "cannot read secret" in result.stderr and "Traceback" not in result.stderr


def test_load_is_redacted_unless_revealed(rproj: RuntimeProject) -> None:
    shown = _cli(rproj, "load", env=rproj.keyed_environ(KAGURA__LLM__MODEL="env-model"))
    assert shown.returncode == 0, shown.stderr
    tree = json.loads(shown.stdout)
    assert tree["llm"]["model"] == "env-model" and tree["llm"]["api_key"] == "***"
    assert API_KEY not in shown.stdout + shown.stderr
    assert DB_PASSWORD not in shown.stdout
    no_tty = _cli(rproj, "load", "--reveal", stdin=subprocess.DEVNULL)
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert API_KEY not in no_tty.stdout
    revealed = _cli(rproj, "load", "--reveal", "--yes")
    assert json.loads(revealed.stdout)["llm"]["api_key"] == API_KEY
    yaml_out = _cli(rproj, "load", "--format", "yaml", env=rproj.environ)
    assert yaml_out.returncode == 0 and "api_key: '***'" in yaml_out.stdout


def test_load_reveal_asks_at_a_terminal(rproj: RuntimeProject) -> None:
    """On a TTY --reveal asks first; answering no prints nothing secret."""
    import pty

    def run(answer: bytes) -> tuple[int, bytes]:
        pid, fd = pty.fork()
        if pid == 0:  # child: the CLI with the pty as its terminal
            os.chdir(rproj.root)
            os.execve(  # noqa: S606
                sys.executable,
                [sys.executable, "-m", "kagura_ops.cli", "load", "--reveal"],
                rproj.keyed_environ(),
            )
        out = b""
        deadline = time.monotonic() + 30
        answered = False
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            if not answered and b"[y/N]" in out:
                os.write(fd, answer + b"\n")
                answered = True
        _, status = os.waitpid(pid, 0)
        os.close(fd)
        return os.waitstatus_to_exitcode(status), out

    code, out = run(b"n")
    assert code == 130 and API_KEY.encode() not in out and b"Print secrets" in out
    code, out = run(b"y")
    assert code == 0 and API_KEY.encode() in out
