"""A kernel that dies mid-job: its jobs become `interrupted`, never re-run until asked."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
from gates import wait_for_file

import nbjobs


def run_when_gate_opens(log: str, gate: str) -> str:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"start\n")
    finally:
        os.close(fd)
    if not wait_for_file(gate):
        raise TimeoutError("the gate never opened")
    return "through"


def doomed_kernel(path: str, log: str, gate: str) -> None:
    """Child process: start a keyed thread job, then wait to be killed."""
    store = nbjobs.Store(path)
    store.submit(run_when_gate_opens, log, gate, key="doomed")
    time.sleep(120)


def doomed_kernel_with_a_queue(path: str, log: str, gate: str) -> None:
    """Child process: one worker busy with a blocked job, a second job queued behind it."""
    store = nbjobs.Store(path, workers=1)
    store.submit(run_when_gate_opens, log, gate, key="busy")
    store.submit(run_when_gate_opens, log, gate, key="queued")
    time.sleep(120)


def starts(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("how", ["resume", "resubmit"])
def test_jobs_of_a_killed_kernel_are_interrupted_until_asked(
    tmp_path: Path, wait_for: Any, how: str
) -> None:
    path = tmp_path / "store"
    log = tmp_path / "runs.log"
    gate = tmp_path / "gate"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=doomed_kernel, args=(str(path), str(log), str(gate)))
    proc.start()
    try:
        wait_for(lambda: starts(log) == 1, timeout=60)
    finally:
        proc.kill()
        proc.join(timeout=30)
    assert proc.exitcode is not None

    store = nbjobs.Store(path)
    try:
        job = wait_for(lambda: _interrupted(store), timeout=30)
        with pytest.raises(nbjobs.JobInterrupted):
            job.result(timeout=10)
        assert store.stats()["interrupted"] == 1
        assert starts(log) == 1, "an interrupted job was re-run without being asked"

        gate.touch()
        if how == "resume":
            resumed = store.resume()
            assert [j.id for j in resumed] == [job.id]
        else:
            assert store.submit(run_when_gate_opens, str(log), str(gate), key="doomed").id == job.id
        assert store.get("doomed").result(timeout=60) == "through"
        assert starts(log) == 2
        stats = store.stats()
        assert stats["succeeded"] == 1
        assert stats["interrupted"] == 0
    finally:
        store.close()


def _interrupted(store: nbjobs.Store) -> nbjobs.Job | None:
    job = store.get("doomed")
    return job if job.status == "interrupted" else None


@pytest.mark.slow
def test_pending_jobs_of_a_killed_kernel_are_interrupted(tmp_path: Path, wait_for: Any) -> None:
    path = tmp_path / "store"
    log = tmp_path / "runs.log"
    gate = tmp_path / "gate"
    ctx = multiprocessing.get_context("spawn")
    proc = ctx.Process(target=doomed_kernel_with_a_queue, args=(str(path), str(log), str(gate)))
    proc.start()
    try:
        wait_for(lambda: starts(log) == 1, timeout=60)
        observer = wait_for(lambda: _store_when_created(path), timeout=60)
        try:
            wait_for(lambda: _statuses(observer) == {"busy": "running", "queued": "pending"})
        finally:
            observer.close()
    finally:
        proc.kill()
        proc.join(timeout=30)

    store = nbjobs.Store(path)  # must not fail on the dead kernel's queued job
    try:
        wait_for(lambda: _statuses(store) == {"busy": "interrupted", "queued": "interrupted"})
        assert starts(log) == 1
        gate.touch()
        assert sorted(j.key for j in store.resume()) == ["busy", "queued"]
        assert store.get("queued").result(timeout=60) == "through"
        assert store.get("busy").result(timeout=60) == "through"
        assert starts(log) == 3
    finally:
        store.close()


def _store_when_created(path: Path) -> nbjobs.Store | None:
    return nbjobs.Store(path) if (path / "nbjobs-format.json").exists() else None


def _statuses(store: nbjobs.Store) -> dict[str | None, str]:
    return {j.key: j.status for j in store.jobs(limit=10)}
