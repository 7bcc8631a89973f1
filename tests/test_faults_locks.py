"""Never lose, never hang (issue #15): no nbjobs lock or shared thread waits on user code.

A retry policy's predicates and the unpickling of a job's exception are user code: a slow
one must stall only the job it decides about, never another job's start, retry, cancel or
lease (a worker whose heartbeat stalls loses its jobs to other workers, which run them
twice). A policy that raises fails its job, loudly. The pools survive time limits that
race with the ends of their jobs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import tenacity
from gates import GATE_DEADLINE, pid_alive, wait_for_file

import nbjobs

pytestmark = pytest.mark.timeout(240)


# --------------------------------------------------------------------------- user code
def touch_and_wait(folder: str, name: str) -> None:
    """Mark `name` started (with this process's pid) and wait for its gate (longer than
    a test waits for what must happen meanwhile)."""
    Path(folder, f"{name}.started").write_text(str(os.getpid()))
    gate, every_gate = Path(folder, f"{name}.open"), Path(folder, "ALL.open")
    if not wait_for_file(gate, every_gate, deadline_s=2 * GATE_DEADLINE):
        raise TimeoutError(f"gate {name} never opened")


def slow_predicate(folder: str, exc: BaseException) -> bool:
    """A retry_on predicate that blocks (each call) until the test opens its gate."""
    touch_and_wait(folder, "predicate")
    return True


def broken_predicate(exc: BaseException) -> bool:
    return 1 / 0 > 0


class BrokenStop(tenacity.stop.stop_base):
    """A stop strategy with a bug."""

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return {}["attempts"]  # type: ignore[no-any-return]


def _rebuild(folder: str, worker_pid: int, message: str) -> SlowToLoad:
    if os.getpid() == worker_pid:  # not in the child that raised it: in the worker
        touch_and_wait(folder, "unpickle")
    return SlowToLoad(folder, worker_pid, message)


class SlowToLoad(Exception):
    """An exception whose unpickling blocks in the worker process until a gate opens."""

    def __init__(self, folder: str, worker_pid: int, message: str) -> None:
        super().__init__(message)
        self.folder, self.worker_pid, self.message = folder, worker_pid, message

    def __reduce__(self) -> tuple[Any, ...]:
        return _rebuild, (self.folder, self.worker_pid, self.message)


def raise_slow_to_load(folder: str, worker_pid: int) -> None:
    raise SlowToLoad(folder, worker_pid, "cannot go on")


def always_fails(message: str) -> None:
    raise ValueError(message)


def fails_once(counter: str) -> int:
    with open(counter, "a") as f:
        f.write("x")
    n = len(Path(counter).read_text())
    if n == 1:
        raise ConnectionError("first attempt failed")
    return n


def marks_runs(folder: str, name: str) -> str:
    """Record this run (attempt and pid), then wait for the gate `name`."""
    Path(folder, f"run-{name}-{os.getpid()}-{time.monotonic_ns()}").touch()
    touch_and_wait(folder, name)
    Path(folder, f"{name}.returned").touch()
    return name


def runs_of(folder: Path, name: str) -> list[str]:
    return sorted(p.name for p in folder.glob(f"run-{name}-*"))


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Path]:
    """A folder of gate files; every gate opens at teardown, so nothing is left blocked."""
    folder = tmp_path / "gates"
    folder.mkdir()
    try:
        yield folder
    finally:
        (folder / "ALL.open").touch()


def in_thread(fn: Callable[[], Any]) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


# --------------------------------------------------------------------------- a broken policy
POLICIES = {
    "retry_on": ({"retries": 3, "retry_on": tenacity.retry_if_exception(broken_predicate)},
                 "broken_predicate", "ZeroDivisionError", "1 / 0"),
    "retries": ({"retries": BrokenStop()}, "BrokenStop", "KeyError", '{}["attempts"]'),
}  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "executor"), [("retry_on", "thread"), ("retries", "thread"), ("retry_on", "process")]
)
def test_a_retry_policy_that_raises_fails_the_job_and_says_so(
    store: nbjobs.Store, kind: str, executor: str
) -> None:
    options, names, raised, line = POLICIES[kind]
    job = store.submit(always_fails, "the job's own error", executor=executor, backoff=0, **options)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.attempts == 1  # not retried
    error = job.error
    assert error is not None
    assert error["type"] == "nbjobs.errors.RetryPolicyFailed"
    message = error["message"]
    assert "retry policy" in message and names in message and raised in message
    assert "ValueError: the job's own error" in message  # the job's error is still told
    exc = job.exception(timeout=0)
    assert isinstance(exc, nbjobs.RetryPolicyFailed)
    assert isinstance(exc, nbjobs.JobError)
    for text in (job.traceback(), job.attempt_history()[0]["error"]["traceback"]):
        assert text is not None
        assert line in text and raised in text  # the policy's traceback
        assert "raise ValueError(message)" in text  # and the job's own
    [attempt] = job.attempt_history()
    assert attempt["error"]["type"] == "nbjobs.errors.RetryPolicyFailed"


def test_a_policy_that_gives_up_still_fails_the_job_with_its_own_error(
    store: nbjobs.Store,
) -> None:
    job = store.submit(
        always_fails,
        "plain",
        retries=3,
        retry_on=tenacity.retry_if_exception(lambda e: False),
        backoff=0,
    )
    with pytest.raises(ValueError, match="plain"):
        job.result(timeout=60)
    assert job.attempts == 1


# --------------------------------------------------------------------------- kernel side
def test_a_slow_predicate_of_a_timed_out_job_holds_up_no_other_job(
    store: nbjobs.Store, gates: Path, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    """Its time limit ends the attempt on the store's alarm thread: the predicate must not
    run there (other jobs' retries and time limits wait on it), nor under the job's lock
    (a cancel of it would wait on it)."""
    slow = store.submit(
        marks_runs,
        str(gates),
        "slow",
        timeout=0.2,
        retries=1,
        retry_on=tenacity.retry_if_exception(functools.partial(slow_predicate, str(gates))),
        backoff=0,
    )
    wait_for(lambda: (gates / "predicate.started").exists(), timeout=60)
    # Another job's retry is armed on the alarm thread: it runs while the predicate waits.
    other = store.submit(fails_once, str(tmp_path / "counter"), retries=1, backoff=0)
    wait_for(lambda: other.status == "succeeded", timeout=GATE_DEADLINE)
    assert other.attempts == 2
    # Its call returns now, late: the time limit ended the attempt, so that success is
    # dropped (the writer handled it once a job submitted after it is done).
    (gates / "slow.open").touch()
    wait_for((gates / "slow.returned").exists, timeout=60)
    assert store.submit(pow, 2, 3).result(timeout=60) == 8
    assert slow.status == "running"  # its end is being decided
    # A cancel of the job being decided about does not wait for its predicate either.
    canceller = in_thread(slow.cancel)
    canceller.join(timeout=30)
    assert not canceller.is_alive(), "cancel() waited for the job's retry predicate"
    (gates / "predicate.open").touch()
    slow.wait(timeout=60)
    assert slow.status in ("cancelled", "failed")  # no new attempt after the cancel
    assert slow.attempts == 1
    assert len(runs_of(gates, "slow")) == 1


def test_a_slow_predicate_in_a_job_thread_leaves_the_other_threads_alone(
    store: nbjobs.Store, gates: Path, wait_for: Callable[..., Any]
) -> None:
    failing = store.submit(
        always_fails,
        "asks the predicate",
        retries=1,
        retry_on=tenacity.retry_if_exception(functools.partial(slow_predicate, str(gates))),
        backoff=0,
    )
    wait_for(lambda: (gates / "predicate.started").exists(), timeout=60)
    assert store.submit(pow, 2, 10).result(timeout=60) == 1024
    stopped = in_thread(failing.cancel)
    stopped.join(timeout=30)
    assert not stopped.is_alive(), "cancel() waited for the job's retry predicate"
    (gates / "ALL.open").touch()
    failing.wait(timeout=60)
    assert failing.status in ("cancelled", "failed")
    assert failing.attempts == 1


# --------------------------------------------------------------------------- a worker
LEASE = 2.0


@pytest.mark.parametrize("user_code", ["predicate", "unpickle"])
def test_a_worker_blocked_in_user_code_keeps_renewing_the_leases_of_its_jobs(
    store: nbjobs.Store,
    gates: Path,
    workers: Callable[..., nbjobs.WorkerInfo],
    wait_for: Callable[..., Any],
    user_code: str,
) -> None:
    """While one job's retry predicate (or the unpickling of its exception) blocks in the
    worker, the worker heartbeats, renews its other jobs' leases (no other worker takes them
    over: none runs twice) and stops a job cancelled from here."""
    first = workers(workers=3, lease=LEASE)
    long = store.submit(marks_runs, str(gates), "long", executor="worker")
    doomed = store.submit(marks_runs, str(gates), "doomed", executor="worker")
    wait_for(lambda: runs_of(gates, "long") and runs_of(gates, "doomed"), timeout=60)
    policy = {"retries": 1, "backoff": 0}
    if user_code == "predicate":
        retry_on = tenacity.retry_if_exception(functools.partial(slow_predicate, str(gates)))
        deciding = store.submit(
            always_fails, "ask the policy", executor="worker", retry_on=retry_on, **policy
        )
    else:
        deciding = store.submit(
            raise_slow_to_load, str(gates), first.pid, executor="worker", **policy
        )
    started = gates / f"{user_code}.started"
    wait_for(started.exists, timeout=60)
    assert int(started.read_text()) == first.pid  # blocked in the worker itself
    workers(workers=2, lease=LEASE)  # would take over the jobs whose lease expires

    blocked_at = time.time()

    def beating() -> bool:
        me = [w for w in store.workers() if w.id == first.id and w.alive]
        return bool(me) and me[0].heartbeat_at > blocked_at + 2 * LEASE

    wait_for(beating, timeout=GATE_DEADLINE)
    child = int((gates / "doomed.started").read_text())
    assert doomed.cancel()
    wait_for(lambda: not pid_alive(child), timeout=60)  # stopped at the worker's next beat

    (gates / "long.open").touch()
    assert long.result(timeout=60) == "long"
    (gates / f"{user_code}.open").touch()
    deciding.wait(timeout=60)
    assert deciding.status == "failed"
    assert deciding.attempts == 2
    assert doomed.status == "cancelled"
    assert len(runs_of(gates, "long")) == 1  # never taken over
    assert len(runs_of(gates, "doomed")) == 1


# --------------------------------------------------------------------------- the pool
def sleeps(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@pytest.fixture
def thread_deaths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The exceptions that ended threads during the test."""
    died: list[str] = []

    def hook(args: Any) -> None:
        died.append(f"{args.thread.name}: {args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    return died


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads as often as the interpreter can: races show up in a short run."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_time_limits_racing_with_job_ends_kill_no_pool_thread(
    tmp_path: Path, thread_deaths: list[str], busy_switching: None
) -> None:
    """A time limit abandons the thread of its job (`Pool.abandon`) just as that thread
    ends the job: the thread must leave the pool quietly, and every job must finish."""
    with contextlib.closing(nbjobs.Store(tmp_path / "race", workers=8)) as store:
        jobs = [store.submit(sleeps, 0.01 + 0.0002 * (i % 50), timeout=0.02) for i in range(400)]
        for job in jobs:
            job.wait(timeout=120)
        assert {job.status for job in jobs} <= {"succeeded", "failed"}
        assert store.submit(pow, 3, 3).result(timeout=60) == 27  # the pool still serves
    assert thread_deaths == []


class _AbandonedWhileLeaving(dict[str, threading.Thread]):
    """The pool's map of busy threads, with a gate in the window of the race: when the
    thread of the watched job looks itself up there as it leaves the job, the job's thread
    is abandoned (what a time limit does) before the lookup returns."""

    def __init__(self, pool: Any) -> None:
        super().__init__()
        self.pool = pool
        self.watched: str | None = None  # the first job put here
        self.abandoned = threading.Event()

    def __setitem__(self, key: str, thread: threading.Thread) -> None:
        self.watched = self.watched or key
        super().__setitem__(key, thread)

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key, default)
        if key == self.watched and not self.abandoned.is_set():
            self.abandoned.set()
            helper = in_thread(lambda: self.pool.abandon(key))
            if not self.pool._lock.locked():  # (held by the caller: it would wait for us)
                helper.join(timeout=30)
        return found


def test_a_thread_abandoned_as_it_leaves_its_job_leaves_the_pool_quietly(
    store: nbjobs.Store, gates: Path, thread_deaths: list[str], wait_for: Callable[..., Any]
) -> None:
    pool = store._jobs.backends["thread"]
    busy = pool._busy = _AbandonedWhileLeaving(pool)
    job = store.submit(marks_runs, str(gates), "watched")
    wait_for(lambda: runs_of(gates, "watched"), timeout=60)
    (gates / "watched.open").touch()
    assert job.result(timeout=60) == "watched"
    wait_for(busy.abandoned.is_set, timeout=60)
    assert busy.watched == job.id
    squares = [store.submit(pow, n, 2) for n in range(8)]
    assert [job.result(timeout=60) for job in squares] == [n * n for n in range(8)]
    assert thread_deaths == []
