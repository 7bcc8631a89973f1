"""Never lose, never hang (issue #15), follow-ups: a forgotten dependency fails its waiting
dependent (its lookup ran on the writer thread and waited for itself).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import Gates

import nbjobs

pytestmark = pytest.mark.timeout(240)


def add(a: int, b: int) -> int:
    return a + b


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gate files; every gate opens at teardown, so nothing is left blocked."""
    g = Gates(tmp_path / "gates")
    try:
        yield g
    finally:
        g.open_all()


@pytest.fixture
def workers(store: nbjobs.Store, gates: Gates) -> Iterator[Callable[..., nbjobs.WorkerInfo]]:
    """`workers(**start_worker_options)`: a new worker of `store`, stopped at teardown
    (its gates opened first)."""
    started: list[nbjobs.WorkerInfo] = []

    def start(**options: Any) -> nbjobs.WorkerInfo:
        info = store.start_worker(idle_timeout=120, new=True, **options)
        started.append(info)
        return info

    try:
        yield start
    finally:
        gates.open_all()
        store.stop_worker(wait=True, timeout=30, grace=0)
        for w in started:
            if pid_alive(w.pid):
                os.kill(w.pid, signal.SIGKILL)


# --------------------------------------------------------------------------- forgotten deps
@pytest.mark.parametrize(
    ("deps_on", "dependent_on"),
    [
        ("thread", "thread"),
        ("thread", "process"),
        ("worker", "thread"),
        ("thread", "worker"),
        ("worker", "worker"),
    ],
)
def test_a_dependency_forgotten_while_its_dependent_waits_fails_the_dependent(
    store: nbjobs.Store,
    gates: Gates,
    workers: Callable[..., nbjobs.WorkerInfo],
    wait_for: Callable[..., Any],
    deps_on: str,
    dependent_on: str,
) -> None:
    """The dependent waits for two jobs; the one that is done is forgotten, then the other
    ends: the dependent fails with DependencyFailed naming the one that is gone (it stayed
    pending for ever: the lookup ran on the writer thread and raised WouldDeadlock)."""
    if "worker" in (deps_on, dependent_on):
        workers(workers=2)
    done = store.submit(pow, 2, 3, executor=deps_on)
    assert done.result(timeout=60) == 8
    busy = gates.start(lambda *args: store.submit(*args, executor=deps_on), "busy", 5, wait_for)
    dependent = store.submit(add, done, busy, executor=dependent_on)
    assert store.forget(done.id)
    gates.open("busy")
    assert busy.result(timeout=60) == 5
    with pytest.raises(nbjobs.DependencyFailed, match=f"{done.id}, which is no longer in the"):
        dependent.result(timeout=60)
    assert dependent.status == "failed"
