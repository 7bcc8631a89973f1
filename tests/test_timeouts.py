"""Time limits and cancel (journey 9): hard `timeout=` for thread and process jobs, the
abandoned thread and its late result, `soft_timeout=`, `JobTimeout` in `retry_on`, and
`cancel()` in every state a job can be in.

Limits run on a `FakeClock`: a test moves the clock past the limit instead of waiting,
which also shows that the limit fires at the limit, not when the job's own work ends.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from gates import wait_for_file

import nbjobs
from nbjobs.clock import FakeClock

pytestmark = pytest.mark.timeout(120)

LIMIT = 10.0


def mark_started(path: Path) -> None:
    """Write our pid and thread id to `path` atomically (tests read it as soon as it exists)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid()} {threading.get_ident()}")
    tmp.rename(path)


def hold(folder: str, name: str, seconds: float = 60.0) -> str:
    """Write `<name>.started` (with our pid and thread id), block until `<name>.open`
    exists, then write `<name>.ended`. Any process can run it; it never blocks longer than
    `seconds`."""
    base = Path(folder)
    mark_started(base / f"{name}.started")
    wait_for_file(base / f"{name}.open", deadline_s=seconds)
    (base / f"{name}.ended").touch()
    return f"{name} finished late"


def hold_on_first_call(folder: str, counter: str) -> str:
    """Block (like `hold`) on the first call only; later calls return at once."""
    with open(counter, "a") as f:
        f.write("call\n")
    if len(Path(counter).read_text().splitlines()) == 1:
        return hold(folder, "first")
    return "quick"


def busy_until_told(folder: str, name: str, seconds: float = 60.0) -> str:
    """Report progress in a loop (the cooperative points) until stopped or `seconds` pass;
    on SoftTimeout, clean up and return."""
    base = Path(folder)
    mark_started(base / f"{name}.started")
    deadline = time.monotonic() + seconds
    i = 0
    try:
        while time.monotonic() < deadline:
            i += 1
            nbjobs.progress(i, message="working")
            time.sleep(0.005)
    except nbjobs.SoftTimeout:
        (base / f"{name}.cleaned").touch()
        return "cleaned up"
    finally:
        (base / f"{name}.ended").touch()
    return "never told"


def sleeps_until_told(folder: str) -> str:
    try:
        time.sleep(30)
    except nbjobs.SoftTimeout:
        (Path(folder) / "nap.cleaned").touch()
        return "cleaned up"
    return "never told"


def always_fails(counter: str) -> None:
    with open(counter, "a") as f:
        f.write("call\n")
    raise ConnectionError("down")


def double(x: int) -> int:
    return 2 * x


def boom() -> None:
    raise ValueError("boom")


def calls(counter: str) -> int:
    return len(Path(counter).read_text().splitlines()) if os.path.exists(counter) else 0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    marks = tmp_path / "marks"
    marks.mkdir()
    yield marks
    (marks / "first.open").touch()
    for name in ("slow", "stuck", "loop", "spin", "child"):
        (marks / f"{name}.open").touch()


def one_worker_store(path: Path, clock: FakeClock) -> nbjobs.Store:
    return nbjobs.Store(path, workers=1, clock=clock)


def finish(wait_for: Any, job: nbjobs.Job) -> nbjobs.Job:
    """Wait (with a real deadline) until the job is finished and its outcome committed."""
    wait_for(job.done, timeout=60)
    return job.wait(timeout=60)


def started_by(folder: Path, name: str) -> tuple[int, int]:
    """(pid, thread id) that ran `hold(folder, name)`."""
    pid, thread = (folder / f"{name}.started").read_text().split()
    return int(pid), int(thread)


def thread_gone(ident: int) -> bool:
    return all(t.ident != ident for t in threading.enumerate())


def pid_gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# ---------------------------------------------------------------------- hard limits, threads
def test_a_thread_job_fails_at_its_time_limit_and_its_slot_is_replaced(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        t0 = clock.now()
        slow = store.submit(hold, str(folder), "slow", timeout=LIMIT)
        wait_for(lambda: (folder / "slow.started").exists(), timeout=60)

        clock.advance(LIMIT)
        finish(wait_for, slow)
        assert slow.status == "failed"
        rec = slow.record()
        assert rec.error is not None and rec.error.type.endswith("JobTimeout")
        assert rec.finished_at == t0 + LIMIT
        with pytest.raises(nbjobs.JobTimeout, match="time limit"):
            slow.result(timeout=0)
        assert isinstance(slow.exception(timeout=0), TimeoutError)
        assert not (folder / "slow.ended").exists(), "the thread is still blocked"

        # workers=1: the abandoned thread's slot went to a new thread.
        after = store.submit(double, 21)
        assert finish(wait_for, after).result(timeout=0) == 42
        assert not (folder / "slow.ended").exists()

        (folder / "slow.open").touch()
        abandoned = started_by(folder, "slow")[1]
        wait_for(lambda: thread_gone(abandoned), timeout=60)
        assert (folder / "slow.ended").exists()
        # The late result of the abandoned thread, returned by now, was dropped.
        assert store.get(after.id).status == "succeeded"
        store.flush()
        assert slow.status == "failed"
        with pytest.raises(nbjobs.JobTimeout):
            slow.result(timeout=0)
        assert [a["error"]["type"] for a in slow.attempt_history()] == ["nbjobs.errors.JobTimeout"]
        assert store.stats()["succeeded"] == 1


def test_job_timeout_can_be_listed_in_retry_on(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    counter = str(tmp_path / "calls.txt")
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(
            hold_on_first_call,
            str(folder),
            counter,
            timeout=LIMIT,
            retries=2,
            retry_on=nbjobs.JobTimeout,
            backoff=0,
        )
        wait_for(lambda: (folder / "first.started").exists(), timeout=60)
        clock.advance(LIMIT)
        assert finish(wait_for, job).result(timeout=0) == "quick"
        assert job.attempts == 2
        first, second = job.attempt_history()
        assert first["error"]["type"] == "nbjobs.errors.JobTimeout"
        assert second["ok"] is True
        (folder / "first.open").touch()
        abandoned = started_by(folder, "first")[1]
        wait_for(lambda: thread_gone(abandoned), timeout=60)
        assert (folder / "first.ended").exists()
        store.flush()
        assert job.result(timeout=0) == "quick"


def test_a_timeout_not_in_retry_on_is_not_retried(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(
            hold, str(folder), "stuck", timeout=LIMIT, retries=3, retry_on=ConnectionError
        )
        wait_for(lambda: (folder / "stuck.started").exists(), timeout=60)
        clock.advance(LIMIT)
        finish(wait_for, job)
        assert job.status == "failed"
        assert job.attempts == 1


# ---------------------------------------------------------------------- hard limits, processes
def test_a_process_job_is_killed_at_its_time_limit(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        slow = store.submit(hold, str(folder), "slow", timeout=LIMIT, executor="process")
        started = wait_for(lambda: (folder / "slow.started").exists(), timeout=60)
        assert started
        pid = started_by(folder, "slow")[0]
        assert pid != os.getpid()

        clock.advance(LIMIT)
        finish(wait_for, slow)
        assert slow.status == "failed"
        with pytest.raises(nbjobs.JobTimeout, match="killed"):
            slow.result(timeout=0)
        wait_for(lambda: pid_gone(pid), timeout=30)
        assert not (folder / "slow.ended").exists()

        after = store.submit(double, 4, executor="process")
        assert finish(wait_for, after).result(timeout=0) == 8


def test_a_process_job_past_its_limit_before_its_process_has_it_is_stopped(
    store: nbjobs.Store, folder: Path, wait_for: Any
) -> None:
    """A limit that passes before the job reaches its child process (here: at once) must
    stop the job, not be lost and let it run to the end. Several jobs, on two children
    that are starting or started, so that the limit lands at each step of the hand-over."""
    store.configure(workers=2)
    jobs = [
        store.submit(hold, str(folder), f"late{i}", 20, executor="process", timeout=1e-6)
        for i in range(6)
    ]
    for job in jobs:
        finish(wait_for, job)
    assert [job.status for job in jobs] == ["failed"] * 6
    assert not list(folder.glob("late*.ended"))


# ---------------------------------------------------------------------- soft limits
def test_a_thread_job_gets_soft_timeout_at_its_next_progress_and_cleans_up(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(busy_until_told, str(folder), "loop", soft_timeout=5, timeout=LIMIT)
        wait_for(lambda: (folder / "loop.started").exists(), timeout=60)
        clock.advance(5)
        assert finish(wait_for, job).result(timeout=0) == "cleaned up"
        assert job.status == "succeeded"
        assert (folder / "loop.cleaned").exists()


def test_a_process_job_gets_soft_timeout_by_signal_and_cleans_up(
    store: nbjobs.Store, folder: Path, wait_for: Any
) -> None:
    """No cooperative point needed: the signal interrupts a plain sleep in the child."""
    job = store.submit(
        sleeps_until_told, str(folder), soft_timeout=0.5, timeout=60, executor="process"
    )
    assert finish(wait_for, job).result(timeout=0) == "cleaned up"
    rec = job.record()
    assert rec.finished_at - rec.started_at < 20
    assert (folder / "nap.cleaned").exists()


# ---------------------------------------------------------------------- cancel in every state
def test_cancel_a_running_thread_job_stops_it_at_its_next_progress(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(busy_until_told, str(folder), "spin")
        wait_for(lambda: (folder / "spin.started").exists(), timeout=60)
        assert job.status == "running"
        with pytest.warns(UserWarning, match="cannot stop the thread"):
            assert job.cancel() is True
        assert job.status == "cancelled"  # at once; the thread stops at its next progress()
        with pytest.raises(nbjobs.JobCancelled):
            job.result(timeout=0)
        wait_for(lambda: (folder / "spin.ended").exists(), timeout=60)
        assert not (folder / "spin.cleaned").exists()
        assert store.stats()["cancelled"] == 1
        assert job.cancel() is False


def test_cancel_a_running_process_job_kills_its_process(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(hold, str(folder), "child", executor="process")
        wait_for(lambda: (folder / "child.started").exists(), timeout=60)
        pid = started_by(folder, "child")[0]
        assert job.cancel() is True
        finish(wait_for, job)
        assert job.status == "cancelled"
        with pytest.raises(nbjobs.JobCancelled):
            job.result(timeout=0)
        wait_for(lambda: pid_gone(pid), timeout=30)
        assert not (folder / "child.ended").exists()
        assert job.attempt_history()[-1]["cancelled"] is True

        after = store.submit(double, 5, executor="process")
        assert finish(wait_for, after).result(timeout=0) == 10


def test_cancel_a_pending_process_job(
    tmp_path: Path, clock: FakeClock, folder: Path, wait_for: Any
) -> None:
    marker = str(tmp_path / "calls.txt")
    with one_worker_store(tmp_path / "store", clock) as store:
        busy = store.submit(hold, str(folder), "child", executor="process")
        wait_for(lambda: (folder / "child.started").exists(), timeout=60)
        queued = store.submit(always_fails, marker, executor="process")
        assert queued.status == "pending"
        assert queued.cancel() is True
        assert queued.status == "cancelled"
        (folder / "child.open").touch()
        assert finish(wait_for, busy).result(timeout=0) == "child finished late"
        after = store.submit(double, 1, executor="process")
        assert finish(wait_for, after).result(timeout=0) == 2
        assert calls(marker) == 0
        assert queued.status == "cancelled"


def test_cancel_a_job_waiting_for_its_retry(
    tmp_path: Path, clock: FakeClock, wait_for: Any
) -> None:
    counter = str(tmp_path / "calls.txt")
    other = str(tmp_path / "other.txt")
    with one_worker_store(tmp_path / "store", clock) as store:
        job = store.submit(always_fails, counter, retries=3, backoff=600)
        wait_for(lambda: job.status == "retrying", timeout=60)
        assert job.cancel() is True
        assert job.status == "cancelled"
        with pytest.raises(nbjobs.JobCancelled):
            job.result(timeout=0)

        # A second job due at the same time, queued after the first on the only worker:
        # once it has run, the cancelled job's alarm has fired and been declined.
        witness = store.submit(always_fails, other, retries=1, backoff=600)
        wait_for(lambda: witness.status == "retrying", timeout=60)
        clock.advance(600)
        finish(wait_for, witness)
        assert witness.attempts == 2
        assert job.status == "cancelled"
        assert job.attempts == 1
        assert calls(counter) == 1


def test_cancel_a_finished_job_changes_nothing(store: nbjobs.Store, wait_for: Any) -> None:
    failed = store.submit(boom)
    finish(wait_for, failed)
    before = failed.record()
    assert failed.cancel() is False
    assert failed.record() == before
    with pytest.raises(ValueError, match="boom"):
        failed.result(timeout=0)
    assert store.stats()["failed"] == 1
    assert store.stats()["cancelled"] == 0


# ------------------------------------------------------------------- done() and result(timeout=0)
@pytest.mark.parametrize("fn", [double, boom])
def test_a_job_that_says_it_is_done_has_its_outcome_ready(store: nbjobs.Store, fn: Any) -> None:
    """`done()` True means `result(timeout=0)` answers, never WaitTimeout."""
    for _ in range(30):
        job = store.submit(fn, 1) if fn is double else store.submit(fn)
        deadline = time.monotonic() + 60
        while not job.done():  # as tight as a user's polling loop can be
            assert time.monotonic() < deadline, "the job never finished"
        with contextlib.suppress(ValueError):
            job.result(timeout=0)
