"""Following a lockfile on disk: watchfiles on its directory, stat polling as a fallback.

The *directory* is watched, not the file, so every way a file gets replaced is
seen: rewritten in place, renamed into place (editors, ``kagura-ops compile``,
``atomic_write``), deleted and created again. Only events for the lockfile's own
name trigger ``on_event``; the callback decides whether anything really changed
(it compares the bytes), so spurious or duplicate events cost one read.

watchfiles (inotify/FSEvents/kqueue through Rust ``notify``) is used when it is
installed and works; otherwise (not installed, inotify limits reached, a file
system without notifications, or ``KAGURA_WATCH_POLLING=1``) a thread compares
``stat()`` results every :data:`POLL_INTERVAL` seconds. Either way the watcher
also re-checks the file about once a second, so an event missed by the kernel
is caught up. Each watcher is one daemon thread; any number of processes can
watch the same file, since nothing is written or locked.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["POLL_INTERVAL", "Watcher"]

logger = logging.getLogger("kagura_ops.runtime")

POLL_INTERVAL = 0.05
"""Seconds between two ``stat()`` calls in polling mode."""

_SAFETY_NET_MS = 1000


def _signature(path: Path) -> tuple[int, int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns)


class Watcher:
    """Calls ``on_event()`` (on its own thread) whenever ``path`` may have changed."""

    def __init__(self, path: Path, on_event: Callable[[], Any], *, polling: bool | None = None):
        self.path = path
        self.on_event = on_event
        if polling is None:
            polling = os.environ.get("KAGURA_WATCH_POLLING", "") not in ("", "0")
        self.polling = polling
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"kagura-ops-watch:{path.name}", daemon=True
        )

    @property
    def mode(self) -> str:
        """``"watchfiles"`` or ``"polling"``."""
        return "polling" if self.polling else "watchfiles"

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(5)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def _fire(self) -> None:
        try:
            self.on_event()
        except Exception:  # the watcher must survive anything the callback does
            logger.exception("kagura-ops: reloading %s failed", self.path)

    def _run(self) -> None:
        if not self.polling:
            try:
                self._watchfiles()
                return
            except Exception as exc:  # no inotify, limits reached, unsupported file system
                logger.info("kagura-ops: file notifications unavailable (%s); polling", exc)
                self.polling = True
        self._poll()

    def _watchfiles(self) -> None:
        from watchfiles import watch

        # watchfiles logs every batch of changes at INFO; ours is a detail of reloading.
        noisy = logging.getLogger("watchfiles.main")
        if noisy.level == logging.NOTSET:
            noisy.setLevel(logging.WARNING)
        name = self.path.name
        directory = str(self.path.parent)

        def only_ours(_change: Any, changed: str) -> bool:
            return os.path.basename(changed) == name

        self._ready.set()
        last = _signature(self.path)
        for changes in watch(
            directory,
            watch_filter=only_ours,
            debounce=100,
            step=5,
            stop_event=self._stop,
            rust_timeout=_SAFETY_NET_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
            recursive=False,
        ):
            if self._stop.is_set():
                return
            now = _signature(self.path)
            if changes or now != last:
                last = now
                self._fire()

    def _poll(self) -> None:
        self._ready.set()
        last = _signature(self.path)
        ticks = 0
        per_second = max(1, int(1 / POLL_INTERVAL))
        while not self._stop.wait(POLL_INTERVAL):
            ticks += 1
            now = _signature(self.path)
            if now != last or ticks % per_second == 0:
                last = now
                self._fire()
