"""The writer thread: work deferred to it (`Writer.later`), and what job threads leave to it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

import nbjobs
from nbjobs.clock import FakeClock
from nbjobs.store.writer import Call


def _hold(store: nbjobs.Store) -> threading.Event:
    """Block the writer thread until the returned event is set."""
    gate = threading.Event()
    store.storage.writer.put(Call(lambda sql: gate.wait(30)))
    return gate


def test_writes_queued_by_deferred_work_take_its_place_in_the_batch(store: nbjobs.Store) -> None:
    writer = store.storage.writer
    seen: list[Any] = []
    gate = _hold(store)
    # Queued in this order: the deferred work, then a read. The deferred work's write must
    # come before the read (a flush queued after deferred work covers what it wrote).
    writer.later(lambda: writer.put(Call(lambda sql: store.storage.put_blob(sql, "x:1", b"v"))))
    writer.put(
        Call(lambda sql: store.storage.blob("x:1")),  # (this thread's connection: sql's)
        lambda result, err: seen.append(err or result),
    )
    gate.set()
    store.flush()
    assert seen == [b"v"]


def test_a_failing_deferred_function_does_not_stop_the_writer(store: nbjobs.Store) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    store.storage.writer.later(broken)
    assert store.submit(abs, -3).result(timeout=30) == 3


@pytest.mark.filterwarnings("ignore:job .Event.set. runs in this kernel")
def test_a_job_thread_takes_its_next_job_before_the_writer_records_the_last(
    tmp_path: Path,
) -> None:
    """A success is recorded by the writer thread, with the time the job ended: the job
    thread goes on to its next job even while the writer is busy."""
    clock = FakeClock()
    store = nbjobs.Store(tmp_path / "store", workers=1, clock=clock)
    try:
        store.submit(abs, 0).result(timeout=30)  # the pool thread exists
        ended_at = clock.now()
        second_started = threading.Event()
        gate = _hold(store)
        first = store.submit(abs, -1)
        second = store.submit(second_started.set)  # (not resumable: a warning)
        # One thread: the second job can only start once the first one's call returned,
        # and nothing of either can be written while the writer is held.
        assert second_started.wait(30)
        clock.advance(100)
        gate.set()
        assert first.result(timeout=30) == 1
        assert second.result(timeout=30) is None
        assert first.finished_at == ended_at  # when it ended, not when it was written
        assert store.get(first.id).status == "succeeded"
    finally:
        store.close()


def _returned_while_writer_held(store: nbjobs.Store, **options: Any) -> tuple[Any, threading.Event]:
    """Hold the writer, then run one job to its successful return (on a one-thread store).
    Returns the job and the gate that releases the writer."""
    gate = _hold(store)
    job = store.submit(abs, -5, **options)
    next_started = threading.Event()
    store.submit(next_started.set)  # starts only once the first job's call has returned
    assert next_started.wait(30)
    return job, gate


@pytest.mark.filterwarnings("ignore:job .Event.set. runs in this kernel")
def test_a_job_that_returned_in_time_is_not_failed_by_its_time_limit_while_being_recorded(
    tmp_path: Path, wait_for: Any
) -> None:
    clock = FakeClock()
    store = nbjobs.Store(tmp_path / "store", workers=1, clock=clock)
    try:
        store.submit(abs, 0).result(timeout=30)
        job, gate = _returned_while_writer_held(store, timeout=10.0)
        assert not job.cancel()  # it has returned: nothing left to cancel
        alarms = store._jobs.runner.alarms
        fired = threading.Event()
        alarms.at(clock.now() + 10.0, fired.set)  # after the job's own time limit alarm
        clock.advance(11.0)
        assert fired.wait(30)
        gate.set()
        assert job.result(timeout=30) == 5
        assert store.get(job.id).status == "succeeded"
    finally:
        store.close()


@pytest.mark.filterwarnings("ignore:job .Event.set. runs in this kernel")
def test_closing_the_store_records_successes_still_queued_without_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = nbjobs.Store(tmp_path / "store", workers=1)
    store.submit(abs, 0).result(timeout=30)
    job, gate = _returned_while_writer_held(store)
    flushing = threading.Event()
    real_flush = store.storage.writer.flush

    def flush() -> None:
        flushing.set()
        real_flush()

    store.storage.writer.flush = flush  # type: ignore[method-assign]
    closer = threading.Thread(target=store.close)
    closer.start()
    assert flushing.wait(30)  # close() has looked at every job and waits for the writer
    gate.set()
    closer.join(30)
    assert not closer.is_alive()
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == []
    with nbjobs.Store(tmp_path / "store") as again:
        assert again.get(job.id).status == "succeeded"
        assert again.get(job.id).result(timeout=30) == 5
