"""A full disk: a store on a real 20 MB tmpfs, filled to the brim by a filler file.

Nothing is lost or replayed, nothing hangs: a call that needs space raises `StoreFull` (naming
the store and the free space), a job whose outcome cannot be written fails with that cause, no
temporary file is left behind, and the store works again as soon as space is freed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from disk_helpers import Disk, MiB
from gates import Gates

import nbjobs
from nbjobs.calls import call as calls


@pytest.fixture
def logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The 'nbjobs' logger's warnings and errors."""
    caplog.set_level(logging.WARNING, logger="nbjobs")
    return caplog


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def _names_store_and_free_space(exc: BaseException, store: nbjobs.Store) -> None:
    text = str(exc)
    assert str(store.path) in text, text
    assert "free" in text and "bytes" in text, text


def _unowned(store: nbjobs.Store) -> list[nbjobs.JobRecord]:
    """Jobs the store shows pending or running that no live process of ours holds."""
    active = store.records(status=["pending", "running", "retrying"], limit=10_000)
    return [r for r in active if r.owner != store.owner or r.id not in store._jobs.active]


def test_a_checkpoint_that_meets_a_full_disk_does_not_undo_its_commit(
    disk: Disk, logged: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "LARGE_CALL", 64 * MiB)  # these calls stay in the database
    store = disk.store()
    # A 4.5 MB call leaves a 4.5 MB WAL behind it, copied to the database: the next writes
    # reuse its room, so they commit on a full disk; copying them to the database then needs
    # room the disk does not have (the checkpoint after the COMMIT fails, not the COMMIT).
    assert store.submit(len, b"w" * (4 * MiB + MiB // 2)).result(timeout=60) == 4.5 * MiB
    store.flush()
    disk.fill()
    job = store.submit(len, b"c" * (4 * MiB))  # over 1,000 WAL pages: a checkpoint follows
    assert job.result(timeout=60) == 4 * MiB
    store.flush()  # committed: never reported as failed
    assert [j.id for j in store.jobs(limit=1)] == [job.id]
    assert _errors(logged) == []  # nothing replayed (no UNIQUE errors)
    assert not [r for r in logged.records if "UNIQUE" in r.getMessage()]
    assert _unowned(store) == []
    disk.unfill()
    assert store.submit(pow, 2, 5, key="after").result(timeout=60) == 32
    assert store.stats()["succeeded"] == 3


def test_every_call_that_needs_room_raises_store_full_and_nothing_is_lost(
    disk: Disk, logged: pytest.LogCaptureFixture
) -> None:
    store = disk.store()
    assert store.submit(pow, 2, 2).result(timeout=60) == 4
    disk.fill()
    with pytest.raises(nbjobs.StoreFull) as keyed:
        store.submit(pow, 2, 3, key="keyed")
    _names_store_and_free_space(keyed.value, store)
    assert isinstance(keyed.value, nbjobs.StoreError)
    # A keyless submit returns before its record is written: it is kept and written later.
    first = store.submit(pow, 2, 4)
    for call in (store.flush, store.stats, store.jobs, lambda: store.submit(pow, 2, 5)):
        with pytest.raises(nbjobs.StoreFull) as info:
            call()
        _names_store_and_free_space(info.value, store)
    # Its end cannot be written: said at once, not a wait that never ends.
    with pytest.raises(nbjobs.StoreFull):
        first.result(timeout=60)
    assert _unowned(store) == []
    assert disk.temporary_files() == []

    disk.unfill()
    store.flush()
    assert first.result(timeout=60) == 16
    assert store.submit(pow, 2, 3, key="keyed").result(timeout=60) == 8
    assert store.submit(pow, 2, 6).result(timeout=60) == 64
    counts = store.stats()
    assert counts["succeeded"] == 4 and counts["pending"] == counts["running"] == 0
    assert [r for r in logged.records if "UNIQUE" in r.getMessage()] == []
    assert _errors(logged) == []
    assert any("space again" in r.getMessage() for r in logged.records)


def test_a_result_that_does_not_fit_fails_its_job_with_the_cause(disk: Disk) -> None:
    store = disk.store()
    assert store.submit(pow, 2, 2).result(timeout=60) == 4
    disk.fill()
    disk.free_up(512 * 1024)  # room for records, not for a 2 MB result
    jobs = [store.submit(bytes, 2 * MiB), store.submit(bytes, 2 * MiB + 1, key="big")]
    for job in jobs:
        error = job.exception(timeout=60)
        assert type(error) is nbjobs.StoreFull, error
        assert "result" in str(error)
        _names_store_and_free_space(error, store)
        assert job.status == "failed"
    assert disk.temporary_files() == []
    assert _unowned(store) == []
    disk.unfill()
    assert len(store.submit(bytes, 2 * MiB).result(timeout=60)) == 2 * MiB


def test_an_outcome_written_once_space_returns_says_why_the_job_failed(
    disk: Disk, tmp_path: Path, logged: pytest.LogCaptureFixture, wait_for: Any
) -> None:
    store = disk.store()
    gates = Gates(tmp_path / "gates")
    job = gates.start(store.submit, "big", b"r" * (2 * MiB), wait_for)
    store.flush()  # its start is on disk
    disk.fill()
    gates.open("big")  # it returns 2 MB that cannot be written, nor can its failure
    with pytest.raises(nbjobs.StoreFull) as info:
        job.result(timeout=60)
    _names_store_and_free_space(info.value, store)
    assert disk.temporary_files() == []
    assert _unowned(store) == []

    disk.unfill()
    store.flush()
    stored = store.records(limit=1)[0]
    assert (stored.id, stored.status) == (job.id, "failed")
    assert stored.error is not None and stored.error.type == "nbjobs.errors.StoreFull"
    assert type(job.exception(timeout=60)) is nbjobs.StoreFull
    assert any("space again" in r.getMessage() for r in logged.records)
    assert store.submit(pow, 3, 3).result(timeout=60) == 27
