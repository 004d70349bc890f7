"""``watch=True``: reload on every way a file gets replaced, atomic swaps, asyncio, processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from runtime_project import API_KEY, RuntimeProject

from kagura_ops.runtime.watcher import Watcher

MODES = ["watchfiles", "polling"]


def _wait(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KAGURA_WATCH_POLLING", "1" if request.param == "polling" else "0")
    return str(request.param)


def _rewrite(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:  # in place, same inode
        fh.write(text)


def _rename_into_place(path: Path, text: str) -> None:
    tmp = path.with_name(".kagura.lock.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _delete_then_recreate(path: Path, text: str) -> None:
    path.unlink()
    time.sleep(0.15)
    path.write_text(text)


@pytest.mark.parametrize("replace", [_rewrite, _rename_into_place, _delete_then_recreate])
def test_reload_on_change(
    rproj: RuntimeProject, mode: str, replace: Callable[[Path, str], None]
) -> None:
    changes: list[frozenset[str]] = []
    with rproj.load(watch=True) as r:
        assert r._watcher.mode == mode
        assert r["llm.api_key"].reveal() == API_KEY
        r.on_change(lambda old, new, changed: changes.append(changed))
        rproj.write_project(model="gpt-5")
        replace(rproj.lockfile, rproj.compile_text())
        assert _wait(lambda: r["llm.model"] == "gpt-5"), r.last_error
        assert r.last_error is None and r["llm.api_key"].reveal() == API_KEY
        assert _wait(lambda: bool(changes)) and "llm.model" in changes[-1]
        assert "llm.api_key" not in changes[-1]  # same ciphertext: not a change
    assert r._watcher is None  # closed by the context manager


def test_broken_file_then_recovery_while_watching(rproj: RuntimeProject) -> None:
    with rproj.load(watch=True) as r:
        good_model = r["llm.model"]
        rproj.lockfile.write_text('{"format": 1, "trunc')
        assert _wait(lambda: r.last_error is not None)
        assert r["llm.model"] == good_model
        rproj.write_project(model="recovered")
        rproj.recompile()
        assert _wait(lambda: r["llm.model"] == "recovered")
        assert r.last_error is None


def test_thousand_reloads_four_readers_no_torn_reads(rproj: RuntimeProject) -> None:
    """Each version sets three keys to the same marker: a mix of two versions would show."""
    texts = []
    for version in ("A", "B"):
        rproj.write_project(model=f"model-{version}")
        project_file = rproj.root / "kagura.yaml"
        project_file.write_text(
            project_file.read_text()
            .replace("name: demo", f"name: demo-{version}")
            .replace("  port: 8080\n", f"  port: 8080\n  one: {version}\n  two: {version}\n")
        )
        texts.append(rproj.compile_text())
    rproj.lockfile.write_text(texts[0])
    r = rproj.load()
    errors: list[str] = []
    reads = [0] * 4
    stop = threading.Event()

    def reader(slot: int) -> None:
        while not stop.is_set():
            snap = r.snapshot()
            seen = {snap["app.one"], snap["app.two"], snap["llm.model"][-1]}
            if reads[slot] % 4 == 0:  # the whole tree from one read, now and then
                tree = r.as_dict()
                seen_tree = {tree["app"]["one"], tree["app"]["two"], tree["project"]["name"][-1]}
            else:
                seen_tree = seen
            one = r["app.one"]
            if len(seen) != 1 or len(seen_tree) != 1 or one not in ("A", "B"):
                errors.append(f"torn: {seen} {seen_tree} {one}")
            if snap["llm.api_key"].reveal() != API_KEY:
                errors.append("secret changed")
            reads[slot] += 1
            time.sleep(0)  # let the writer in between two reads

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(4)]
    # Four busy readers would hold the GIL for 5 ms slices; switch more often so the
    # writer's file I/O does not dominate the run time (correctness is the same).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    for t in threads:
        t.start()
    swaps = 0
    try:
        for cycle in range(1000):
            rproj.lockfile.write_text(texts[(cycle + 1) % 2])
            swaps += r.reload()
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(interval)
    assert swaps == 1000 and r.last_error is None
    assert errors == []
    assert all(n > 100 for n in reads), reads


def test_asyncio_callbacks_and_no_blocking(rproj: RuntimeProject) -> None:
    async def main() -> tuple[float, str, Any]:
        from kagura_ops import ConfigManager

        r = await asyncio.to_thread(rproj.load, watch=True)
        changed = asyncio.Event()
        seen: dict[str, Any] = {}

        async def on_change(old: Any, new: Any, paths: frozenset[str]) -> None:
            seen["loop"] = asyncio.get_running_loop()
            seen["model"] = new["llm.model"]
            changed.set()

        r.on_change(on_change)
        gaps: list[float] = []

        async def ticker() -> None:
            last = time.perf_counter()
            while not changed.is_set():
                await asyncio.sleep(0.001)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        rproj.write_project(model="async-model")
        await asyncio.to_thread(rproj.recompile)
        await asyncio.wait_for(changed.wait(), 10)
        await tick
        assert seen["loop"] is asyncio.get_running_loop()
        assert r["llm.model"] == "async-model"
        # The async ConfigManager API, on the same project.
        cm = ConfigManager(rproj.root, environ=rproj.keyed_environ())
        assert await cm.get("llm.model") == "async-model"
        secret = await cm.get("llm.api_key")
        r.close()
        return max(gaps), seen["model"], secret

    longest_gap, model, secret = asyncio.run(main())
    assert model == "async-model" and secret.reveal() == API_KEY
    assert longest_gap < 0.5  # the loop kept running while the watcher reloaded


_CHILD = """
import sys, time
from kagura_ops import load_resolved
r = load_resolved(sys.argv[1], watch=True)
print("ready", r["llm.model"], flush=True)
deadline = time.monotonic() + 20
while r["llm.model"] != "multi" and time.monotonic() < deadline:
    time.sleep(0.01)
print("saw", r["llm.model"], flush=True)
"""


def test_several_processes_watch_one_file(rproj: RuntimeProject) -> None:
    env = {**rproj.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(rproj.lockfile)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(3)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().startswith("ready gpt-4o")
        rproj.write_project(model="multi")
        rproj.recompile()
        for child in children:
            out, _ = child.communicate(timeout=30)
            assert out.strip() == "saw multi"
    finally:
        for child in children:
            child.kill() if child.poll() is None else None


def test_watcher_falls_back_to_polling(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_watchfiles(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "watchfiles":
            raise ImportError("no watchfiles here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_watchfiles)
    target = tmp_path / "kagura.lock"
    target.write_text("1")
    events: list[int] = []
    watcher = Watcher(target, lambda: events.append(1), polling=False)
    watcher.start()
    try:
        assert _wait(lambda: watcher.mode == "polling", 5)
        time.sleep(0.1)
        target.write_text("22")
        assert _wait(lambda: bool(events), 5)
    finally:
        watcher.stop()


def test_changed_paths_report_secret_changes_without_values(rproj: RuntimeProject) -> None:
    r = rproj.load()
    got: list[frozenset[str]] = []
    r.on_change(lambda old, new, paths: got.append(paths))
    rproj.write_secrets("sk-rotated", "pw-rotated")
    rproj.recompile()
    assert r.reload() is True
    assert {"llm.api_key", "app.db_password", "app.db_url"} <= got[-1]
    assert "llm.model" not in got[-1]
    assert json.dumps(sorted(got[-1]))  # names only
