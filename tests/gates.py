"""Gate files for tests: a task blocks until its gate file exists, in any process.

A file (not a `threading.Event`) so the same task works in a thread, a child process
or another kernel. Every blocked task also has a deadline of its own, so a test that
fails never leaves work hanging.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

GATE_DEADLINE = 60.0


class Gates:
    """Named gates in one folder; `open_all` releases every task (use it at teardown)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def task(self, name: str) -> tuple[str, str, str]:
        """The (started marker, gate, release-all) paths to pass to `blocked`."""
        return str(self.root / f"{name}.started"), str(self.root / f"{name}.open"), self.all

    @property
    def all(self) -> str:
        return str(self.root / "ALL.open")

    def started(self, name: str) -> bool:
        return (self.root / f"{name}.started").exists()

    def open(self, name: str) -> None:
        (self.root / f"{name}.open").touch()

    def open_all(self) -> None:
        Path(self.all).touch()

    def start(
        self, submit: Callable[..., Any], name: str, value: Any, wait_for: Callable[..., Any]
    ) -> Any:
        """`submit(blocked, ...)` and wait until the task is really running; returns the handle."""
        handle = submit(blocked, *self.task(name), value)
        wait_for(lambda: self.started(name), timeout=60)
        return handle


def poll(
    condition: Callable[[], Any], deadline_s: float = GATE_DEADLINE, every: float = 0.005
) -> Any:
    """Call `condition` every `every` s until it returns something truthy (returned), or
    `deadline_s` s pass (its last, falsy, value is returned). Needs no pytest: jobs in
    threads, child processes and workers call it too."""
    deadline = time.monotonic() + deadline_s
    while not (value := condition()) and time.monotonic() <= deadline:
        time.sleep(every)
    return value


def wait_for_file(
    *paths: str | Path, deadline_s: float = GATE_DEADLINE, every: float = 0.005
) -> bool:
    """Wait until one of `paths` exists: True, or False once `deadline_s` s have passed."""
    return bool(poll(lambda: any(os.path.exists(p) for p in paths), deadline_s, every))


def blocked(started: str, gate: str, release_all: str, value: Any) -> Any:
    """Mark the task started, wait for its gate (or the release-all file), return `value`."""
    Path(started).touch()
    if not wait_for_file(gate, release_all):
        raise TimeoutError(f"gate {gate} never opened")
    return value


def pid_alive(pid: int) -> bool:
    """The process lives (a zombie, dead but not yet reaped, does not count)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False
