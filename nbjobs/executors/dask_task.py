"""The part of a Dask task that works with the store (no dask import): the `Task` it receives,
its progress and cancel checks, and the compare-and-set write of its attempt's end.

`run_attempt` (nbjobs/executors/dask.py, the only module that imports dask) runs on a Dask
worker and calls these when that worker reaches the store.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from nbjobs import codec, states
from nbjobs.clock import SYSTEM
from nbjobs.errors import JobCancelled, SoftTimeout
from nbjobs.records import JobRecord
from nbjobs.running import reporting
from nbjobs.running.calling import Outcome
from nbjobs.running.endings import attempt_end
from nbjobs.running.retry import judge
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Sql

#: Seconds between two looks of a running task at its record (was it cancelled?).
CHECK_EVERY = 0.25


@dataclass(frozen=True, slots=True)
class Task:
    """What one Dask task receives: where the store is, which attempt, the pickled call."""

    store: str
    identity: tuple[int, int] | None  # `store.folder_identity` of the store, seen here
    owner: str  # the kernel's owner token: host:pid:start
    info: reporting.CurrentJob
    args: bytes
    log_state: dict[str, Any] | None
    soft_timeout: float | None
    topic: str  # the kernel's Dask event topic for the task's progress


def ours(rec: JobRecord | None, task: Task) -> bool:
    """Whether the job is still running this attempt for the kernel that sent it."""
    return (
        rec is not None
        and rec.status == states.RUNNING
        and rec.attempts == task.info.attempt
        and rec.owner == task.owner
    )


def progress_op(storage: Storage, task: Task, progress: dict[str, Any]) -> Any:
    """A write of the running job's progress, if it is still ours."""

    def op(sql: Sql) -> None:
        rec = storage.read_in(sql, task.info.id)
        if ours(rec, task):
            assert rec is not None
            storage.update(sql, rec.evolve(progress=progress), states.RUNNING)

    return op


def stored_log(storage: Storage, job_id: str) -> dict[str, Any] | None:
    """The job's output so far (its earlier attempts), as stored."""
    blob = storage.blob(f"l:{job_id}")
    return None if blob is None else dict(codec.load_plain(blob))


def checkpoint(task: Task, storage: Storage | None) -> Any:
    """The task's cooperative point: its soft time limit, and (reaching the store) a look
    at its record every `CHECK_EVERY` s: cancelled or timed out there, it stops."""
    start = SYSTEM.monotonic()
    soft = None if task.soft_timeout is None else start + task.soft_timeout
    last = [start]

    def check() -> None:
        now = SYSTEM.monotonic()
        if soft is not None and now >= soft:
            raise SoftTimeout(
                f"job {task.info.id} ({task.info.name}) passed its soft time limit of "
                f"{task.soft_timeout} s"
            )
        if storage is None or now - last[0] < CHECK_EVERY:
            return
        last[0] = now
        if not ours(storage.record_by_id(task.info.id), task):
            raise JobCancelled(
                f"job {task.info.id} ({task.info.name}) was cancelled or ended meanwhile "
                "(time limit, interrupted); its Dask task stopped here"
            )

    return check


def write_outcome(storage: Storage, task: Task, outcome: Outcome) -> None:
    """End the attempt in the store, in one transaction, if the job is still ours."""
    now = storage.clock.now()
    delay = None
    if not outcome.ok:
        # The retry policy is user code: asked here, not in the write's transaction (which
        # holds the store's write lock), from the record as it is now. The transaction
        # writes the verdict only if the attempt is still ours, so the record it was
        # given is still the record of this attempt.
        payload = storage.call(task.info.id)
        policy = codec.payload_policy(payload) if payload is not None else None
        rec = storage.record_by_id(task.info.id)
        if not ours(rec, task):
            return
        assert rec is not None
        outcome, delay = judge(rec, outcome, now, policy)

    def write(sql: Sql) -> bool:
        rec = storage.read_in(sql, task.info.id)
        if not ours(rec, task):
            return False
        assert rec is not None
        new, blobs = attempt_end(rec, outcome, now, delay)
        for key, data, file in blobs:
            storage.put_blob(sql, key, data, file)
        return storage.update(sql, new, states.RUNNING)

    if not storage.writer.call(write) and outcome.file is not None:
        with contextlib.suppress(FileNotFoundError):  # the late result is dropped
            (storage.blob_dir / outcome.file).unlink()
