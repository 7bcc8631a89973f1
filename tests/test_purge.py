"""`purge()` removes old finished jobs and everything stored for them, never active ones."""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable

import pytest

import nbjobs
from nbjobs.api import actions
from nbjobs.clock import FakeClock

DAY = 86_400.0
BIG = 300 * 1024  # above the inline limit: the result is a file under blobs/


def boom() -> None:
    raise ValueError("boom")


def blob_files(store: nbjobs.Store) -> list[str]:
    return sorted(p.name for p in (store.path / "blobs").iterdir() if not p.name.startswith("."))


def test_purge_removes_only_jobs_older_than_the_limit(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    old = [fake_store.submit(pow, 2, i, key=f"old-{i}") for i in range(5)]
    for job in old:
        job.wait()
    clock.advance(2 * DAY)
    new = fake_store.submit(pow, 2, 10, key="new")
    new.wait()
    assert fake_store.purge(older_than="1d") == 5
    assert [j.key for j in fake_store.jobs()] == ["new"]
    assert sum(fake_store.stats().values()) == 1
    with pytest.raises(nbjobs.JobNotFound):
        fake_store.get("old-0")
    assert fake_store.purge(older_than=datetime.timedelta(days=1)) == 0
    assert new.result() == 1024


def test_purge_by_status_and_in_batches(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "_PURGE_BATCH", 2)
    ok = [store.submit(pow, 2, i) for i in range(7)]
    bad = [store.submit(boom) for _ in range(3)]
    nbjobs.wait(ok + bad, timeout=60)
    assert store.purge(status="failed") == 3
    assert store.stats()["failed"] == 0
    assert store.stats()["succeeded"] == 7
    assert store.purge(status=["succeeded", "cancelled"]) == 7
    assert store.jobs() == []


def test_purge_removes_results_errors_attempts_and_blob_files(store: nbjobs.Store) -> None:
    big = store.submit(bytes, BIG)
    failed = store.submit(boom, retries=1, backoff=0.01)
    nbjobs.wait([big, failed], timeout=60)
    assert failed.status == "failed"
    assert len(failed.attempt_history()) == 2
    assert any(name.startswith("r-") for name in blob_files(store)), blob_files(store)
    assert store.purge(status=["succeeded", "failed"]) == 2
    assert not any(name.startswith("r-") for name in blob_files(store)), blob_files(store)
    storage = store.storage
    for job in (big, failed):
        for key in (f"p:{job.id}", f"r:{job.id}", f"e:{job.id}", f"l:{job.id}"):
            assert storage.blob(key) is None, key
        assert storage.attempts(job.id) == []


def test_a_running_or_pending_job_is_never_purged(
    store: nbjobs.Store, wait_for: Callable[..., object]
) -> None:
    finished = store.submit(pow, 2, 3)
    finished.wait(timeout=60)
    gate = threading.Event()
    store.configure(workers=1)
    with pytest.warns(UserWarning, match="cannot be resumed"):
        running = store.submit(gate.wait, 60)
    waiting = store.submit(pow, 2, 2)  # queued behind it: one worker
    try:
        wait_for(lambda: running.status == "running")
        every_finished = ["succeeded", "failed", "cancelled", "interrupted"]
        assert store.purge(status=every_finished) == 1
        assert running.status == "running"
        assert waiting.status == "pending"
    finally:
        gate.set()
    assert waiting.result(timeout=60) == 4
    assert running.result(timeout=60) is True


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({}, "older_than"),
        ({"older_than": "soon"}, "older_than"),
        ({"older_than": 0}, "older_than"),
        ({"older_than": -5}, "older_than"),
        ({"older_than": [1]}, "older_than"),
        ({"status": "running"}, "status"),
        ({"status": ["failed", "pending"]}, "status"),
        ({"status": "done"}, "status"),
        ({"older_than": "1d", "status": "retrying"}, "status"),
    ],
)
def test_bad_purge_arguments_are_refused_and_nothing_is_removed(
    store: nbjobs.Store, kwargs: dict[str, object], named: str
) -> None:
    store.submit(boom).wait(timeout=60)
    with pytest.raises(nbjobs.InvalidArgument, match=named):
        store.purge(**kwargs)  # type: ignore[arg-type]
    assert store.stats()["failed"] == 1


def test_module_purge_uses_the_default_store() -> None:
    nbjobs.submit(boom).wait(timeout=60)
    assert nbjobs.purge(status="failed") == 1
    assert nbjobs.stats()["failed"] == 0
