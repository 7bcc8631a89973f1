"""Never lose, never hang (issue #15), follow-ups: a detached worker's loop (its heartbeat)
runs no user code, so unpickling that blocks loses no lease; a forgotten dependency fails its
waiting dependent (its lookup ran on the writer thread and waited for itself).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tenacity
from gates import GATE_DEADLINE, Gates, wait_for_file

import nbjobs

pytestmark = pytest.mark.timeout(240)


def add(a: int, b: int) -> int:
    return a + b


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    """Gate files; every gate opens at teardown, so nothing is left blocked."""
    g = Gates(tmp_path / "gates")
    try:
        yield g
    finally:
        g.open_all()


# --------------------------------------------------------------------------- the worker's loop
def touch_and_wait(folder: str, name: str) -> None:
    """Mark `name` started (with this process's pid) and wait for its gate (longer than a
    test waits for what must happen meanwhile)."""
    Path(folder, f"{name}.started").write_text(str(os.getpid()))
    gate, every_gate = Path(folder, f"{name}.open"), Path(folder, "ALL.open")
    if not wait_for_file(gate, every_gate, deadline_s=2 * GATE_DEADLINE):
        raise TimeoutError(f"gate {name} never opened")


def _rebuild_stop(folder: str, worker_pid: int) -> SlowStop:
    if os.getpid() == worker_pid:  # in the worker process itself, not where it was pickled
        touch_and_wait(folder, "unpickle")
    return SlowStop(folder, worker_pid)


class SlowStop(tenacity.stop.stop_base):
    """A stop strategy (one retry) whose unpickling blocks in the worker until a gate opens."""

    def __init__(self, folder: str, worker_pid: int) -> None:
        self.folder, self.worker_pid = folder, worker_pid

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return retry_state.attempt_number >= 2

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_stop, (self.folder, self.worker_pid)


def _rebuild_value(folder: str, worker_pid: int, value: int) -> SlowValue:
    if os.getpid() == worker_pid:
        touch_and_wait(folder, "unpickle")
    return SlowValue(folder, worker_pid, value)


class SlowValue:
    """An argument whose unpickling blocks in the worker until a gate opens."""

    def __init__(self, folder: str, worker_pid: int, value: int) -> None:
        self.folder, self.worker_pid, self.value = folder, worker_pid, value

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild_value, (self.folder, self.worker_pid, self.value)


def plus(a: int, b: SlowValue) -> int:
    return a + b.value


def marks_runs(folder: str, name: str) -> str:
    """Record this run (its pid), then wait for the gate `name`."""
    Path(folder, f"run-{name}-{os.getpid()}-{time.monotonic_ns()}").touch()
    touch_and_wait(folder, name)
    return name


def runs_of(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"run-{name}-*"))


LEASE = 2.0


@pytest.mark.parametrize("unpickled", ["retry policy", "argument of a dependent"])
def test_a_worker_unpickling_a_job_that_blocks_keeps_renewing_the_leases_of_its_jobs(
    store: nbjobs.Store,
    gates: Gates,
    workers: Callable[..., nbjobs.WorkerInfo],
    wait_for: Callable[..., Any],
    unpickled: str,
) -> None:
    """While the unpickling of a claimed job's retry policy (or of an argument of a job with
    dependencies, which the worker loads to put their results in place) blocks in the
    worker, the worker heartbeats and renews its other jobs' leases: no other worker takes
    them over, none runs twice. (It ran on the worker's loop, which heartbeats.)"""
    folder = str(gates.root)
    first = workers(workers=3, lease=LEASE)
    long = store.submit(marks_runs, folder, "long", executor="worker")
    wait_for(lambda: runs_of(gates.root, "long"), timeout=60)
    if unpickled == "retry policy":
        slow = store.submit(pow, 2, 5, executor="worker", retries=SlowStop(folder, first.pid))
    else:
        dep = store.submit(pow, 2, 4, executor="worker")
        slow = store.submit(plus, dep, SlowValue(folder, first.pid, 16), executor="worker")
    wait_for(lambda: gates.started("unpickle"), timeout=60)
    assert int((gates.root / "unpickle.started").read_text()) == first.pid
    workers(workers=2, lease=LEASE)  # would take over the jobs whose lease expires
    blocked_at = time.time()

    def beating() -> bool:
        me = [w for w in store.workers() if w.id == first.id and w.alive]
        return bool(me) and me[0].heartbeat_at > blocked_at + 2 * LEASE

    wait_for(beating, timeout=GATE_DEADLINE)
    gates.open("long")
    assert long.result(timeout=60) == "long"
    gates.open("unpickle")
    assert slow.result(timeout=60) == 32
    assert len(runs_of(gates.root, "long")) == 1  # never taken over
    assert long.record().crashes == 0


def _refuse_in(worker_pid: int) -> UnloadableStop:
    if os.getpid() == worker_pid:
        raise ModuleNotFoundError("No module named 'gone_from_the_worker'")
    return UnloadableStop(worker_pid)


class UnloadableStop(tenacity.stop.stop_base):
    """A stop strategy that cannot be unpickled in the worker."""

    def __init__(self, worker_pid: int) -> None:
        self.worker_pid = worker_pid

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return True

    def __reduce__(self) -> tuple[Any, ...]:
        return _refuse_in, (self.worker_pid,)


def test_a_worker_job_whose_retry_policy_cannot_be_loaded_fails_with_payload_load_error(
    store: nbjobs.Store, workers: Callable[..., nbjobs.WorkerInfo]
) -> None:
    info = workers(workers=1)
    job = store.submit(pow, 2, 5, executor="worker", retries=UnloadableStop(info.pid))
    with pytest.raises(nbjobs.PayloadLoadError, match=r"retry policy could not be loaded.*gone_"):
        job.result(timeout=60)
    assert job.attempts == 1
    assert store.submit(pow, 2, 6, executor="worker").result(timeout=60) == 64  # it serves on


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
