"""Cancelling: a pending job is cancelled at once and never runs; a finished one is left alone."""

from __future__ import annotations

import concurrent.futures
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbjobs

GATE = threading.Event()


def blocker(seconds: float) -> str:
    if not GATE.wait(seconds):
        raise TimeoutError("the test never opened the gate")
    return "unblocked"


def mark(path: str) -> str:
    with open(path, "a") as f:
        f.write("ran\n")
    return "marked"


@pytest.fixture
def one_worker() -> Iterator[threading.Event]:
    nbjobs.configure(workers=1)
    GATE.clear()
    yield GATE
    GATE.set()


def test_cancel_a_pending_job(one_worker: threading.Event, tmp_path: Path, wait_for: Any) -> None:
    marker = tmp_path / "ran.txt"
    first = nbjobs.submit(blocker, 60)
    wait_for(lambda: first.status == "running")
    second = nbjobs.submit(mark, str(marker), key="second")
    assert second.status == "pending"
    assert not second.done()
    with pytest.raises(nbjobs.WaitTimeout):
        second.wait(timeout=0.05)
    same = nbjobs.submit(mark, str(marker), key="second")
    assert same.id == second.id
    assert same.status == "pending"

    assert second.cancel() is True
    assert second.status == "cancelled"
    assert nbjobs.get("second").status == "cancelled"
    assert second.done()
    with pytest.raises(nbjobs.JobCancelled):
        second.result(timeout=60)
    with pytest.raises(concurrent.futures.CancelledError):
        second.result(timeout=0)

    one_worker.set()
    assert first.result(timeout=60) == "unblocked"
    # The freed worker must not pick up the cancelled job: a job queued after it runs,
    # and by then the cancelled one would have run too.
    third = nbjobs.submit(mark, str(marker))
    assert third.result(timeout=60) == "marked"
    assert marker.read_text().splitlines() == ["ran"]
    assert second.status == "cancelled"
    assert second.cancel() is False

    stats = nbjobs.stats()
    assert stats["cancelled"] == 1
    assert stats["succeeded"] == 2
    assert [j.id for j in nbjobs.jobs(status="cancelled")] == [second.id]


def test_cancel_a_finished_job_returns_false(tmp_path: Path) -> None:
    marker = tmp_path / "ran.txt"
    job = nbjobs.submit(mark, str(marker))
    assert job.result(timeout=60) == "marked"
    assert job.cancel() is False
    assert job.status == "succeeded"
    assert job.result(timeout=60) == "marked"
    assert nbjobs.stats()["cancelled"] == 0


def test_a_cancelled_keyed_job_runs_again_when_resubmitted(
    one_worker: threading.Event, tmp_path: Path, wait_for: Any
) -> None:
    marker = tmp_path / "ran.txt"
    first = nbjobs.submit(blocker, 60)
    wait_for(lambda: first.status == "running")
    job = nbjobs.submit(mark, str(marker), key="again")
    assert job.cancel() is True
    one_worker.set()
    first.result(timeout=60)

    rerun = nbjobs.submit(mark, str(marker), key="again")
    assert rerun.id == job.id
    assert rerun.result(timeout=60) == "marked"
    assert marker.read_text().splitlines() == ["ran"]
    assert nbjobs.stats()["cancelled"] == 0


def cancel_in_a_terminal(store: Path, key: str) -> None:
    """`nbjobs cancel KEY`, in a process of its own."""
    cli = subprocess.run(
        [sys.executable, "-m", "nbjobs", "--store", str(store), "cancel", key],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr


def test_a_queued_job_cancelled_from_a_terminal_is_dropped_by_its_kernel(
    one_worker: threading.Event, tmp_path: Path, wait_for: Any, default_store: Path
) -> None:
    """`nbjobs cancel` runs in another process: the kernel's pool must not start the job."""
    marker = tmp_path / "ran.txt"
    first = nbjobs.submit(blocker, 60)
    wait_for(lambda: first.status == "running")
    queued = nbjobs.submit(mark, str(marker), key="queued")
    nbjobs.default_store().flush()
    cancel_in_a_terminal(default_store, "queued")
    wait_for(lambda: queued.done(), timeout=30)  # the kernel saw the cancel: it drops the job
    assert queued.status == "cancelled"
    one_worker.set()
    assert first.result(timeout=60) == "unblocked"
    with pytest.raises(nbjobs.JobCancelled):
        queued.result(timeout=60)
    assert nbjobs.submit(mark, str(marker)).result(timeout=60) == "marked"  # the pool goes on
    assert marker.read_text().splitlines() == ["ran"], "the cancelled job ran"
    assert queued.status == "cancelled"


def sleeps_in_steps(seconds: float) -> str:
    for _ in nbjobs.track(range(int(seconds / 0.02))):
        time.sleep(0.02)
    return "finished"


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_running_job_cancelled_from_a_terminal_is_stopped_by_its_kernel(
    default_store: Path, wait_for: Any, executor: str
) -> None:
    job = nbjobs.submit(sleeps_in_steps, 30, executor=executor, key="long")
    wait_for(lambda: job.status == "running")
    cancel_in_a_terminal(default_store, "long")
    with pytest.raises(nbjobs.JobCancelled):
        job.result(timeout=20)  # long before its 30 s
    assert nbjobs.get("long").status == "cancelled"


def test_cancels_asked_of_a_kernel_that_died_are_cleaned_up(tmp_path: Path) -> None:
    """A kernel killed before it saw a cancel leaves its request behind; the next process
    that opens the store drops it (and the job stays cancelled, not interrupted)."""
    script = (
        "import sys, threading, nbjobs\n"
        "store = nbjobs.Store(sys.argv[1])\n"
        "store.submit(threading.Event().wait, 600, key='held')\n"
        "store.flush(); print('ready', flush=True); threading.Event().wait(600)\n"
    )
    path = tmp_path / "store"
    kernel = subprocess.Popen(
        [sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert kernel.stdout is not None and kernel.stdout.readline().strip() == "ready"
        kernel.send_signal(signal.SIGSTOP)  # it cannot poll for cancels now
        with nbjobs.Store(path) as other:
            assert other.get("held").cancel()
            assert other.storage.cancel_owners() != []
    finally:
        kernel.kill()
        kernel.wait(timeout=30)
    with nbjobs.Store(path) as reopened:
        reopened.flush()
        assert reopened.storage.cancel_owners() == []
        assert reopened.get("held").status == "cancelled"
