"""Shared fixtures: real diskcache stores in temporary folders, never the repository's."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from disk_helpers import Disk
from gates import pid_alive, poll

import nbjobs
from nbjobs.clock import FakeClock


def wait_until(condition: Callable[[], Any], timeout: float = 30.0, interval: float = 0.01) -> Any:
    """Poll `condition` until it returns something truthy; fail the test after `timeout` s."""
    value = poll(condition, timeout, interval)
    if not value:
        pytest.fail(f"condition not met within {timeout} s: {condition}")
    return value


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """`wait_for(condition, timeout=30)`: poll with a deadline instead of sleeping."""
    return wait_until


@pytest.fixture(autouse=True)
def default_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point the default store of module-level functions at a fresh folder for every test."""
    path = tmp_path / "default-store"
    monkeypatch.setenv("NBJOBS_STORE", str(path))
    nbjobs.configure(store=str(path))
    yield path
    nbjobs.default_store().close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[nbjobs.Store]:
    """An explicit store on its own temporary folder, closed after the test."""
    s = nbjobs.Store(tmp_path / "store")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def clock() -> FakeClock:
    """A clock that moves only when the test says `clock.advance(seconds)`."""
    return FakeClock()


@pytest.fixture
def fake_store(tmp_path: Path, clock: FakeClock) -> Iterator[nbjobs.Store]:
    """A store on its own temporary folder whose time is `clock`."""
    s = nbjobs.Store(tmp_path / "fake-store", clock=clock)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Disk]:
    """A 20 MB tmpfs (see tests/disk_helpers.py), unmounted after the test; the test is
    skipped where it cannot be mounted (not root, or mounts not allowed)."""
    root = tmp_path / "tmpfs"
    root.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "a full disk is tested on a 20 MB tmpfs, which needs root and a mount that is "
            f"allowed here: {mounted.stderr.strip() or mounted.returncode}"
        )
    d = Disk(root)
    try:
        yield d
    finally:
        for s in d.stores:
            if d.filler.exists():
                d.unfill()  # a store closes with its queued writes committed
            s.close()
        subprocess.run(["umount", "-l", str(root)], check=False)


@pytest.fixture
def workers(store: nbjobs.Store, tmp_path: Path) -> Iterator[Callable[..., nbjobs.WorkerInfo]]:
    """`workers(**start_worker_options)`: a new worker of `store`, stopped at teardown (the
    gates under `tmp_path / "gates"` opened first, so no job is left blocked)."""
    started: list[nbjobs.WorkerInfo] = []

    def start(**options: Any) -> nbjobs.WorkerInfo:
        info = store.start_worker(idle_timeout=120, new=True, **options)
        started.append(info)
        return info

    try:
        yield start
    finally:
        if (tmp_path / "gates").is_dir():
            (tmp_path / "gates" / "ALL.open").touch()
        store.stop_worker(wait=True, timeout=30, grace=0)
        for w in started:
            if pid_alive(w.pid):
                os.kill(w.pid, signal.SIGKILL)
