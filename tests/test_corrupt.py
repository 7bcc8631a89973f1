"""A corrupt record is listed as such, never crashes a listing, and can be removed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbjobs

# Read from nbjobs/store.py: diskcache's database file and the table of job records.
DATABASE = "cache.db"
RECORDS = "nbjobs_jobs"


def corrupt_record(store_path: Path, key: str) -> None:
    db = sqlite3.connect(store_path / DATABASE)
    try:
        cur = db.execute(f"UPDATE {RECORDS} SET data = ? WHERE key = ?", ("{not json", key))
        assert cur.rowcount == 1, f"the record layout moved: update {__file__}"
        db.commit()
    finally:
        db.close()


@pytest.fixture
def damaged(tmp_path: Path) -> Iterator[nbjobs.Store]:
    path = tmp_path / "store"
    s = nbjobs.Store(path)
    s.submit(pow, 2, 3, key="good").result(timeout=60)
    s.submit(pow, 2, 4, key="bad").result(timeout=60)
    s.close()
    corrupt_record(path, "bad")
    s = nbjobs.Store(path)
    yield s
    s.close()


def test_a_corrupt_record_is_listed_and_reading_the_listing_does_not_crash(
    damaged: nbjobs.Store,
) -> None:
    assert sum(damaged.stats().values()) == 2
    listed = damaged.jobs()
    assert len(listed) == 2
    shown = []
    for job in listed:  # what a panel or `nbjobs ls` does with each row
        shown.append((job.id, job.status, job.error, json.dumps(job.to_dict())))
    assert any("corrupt" in text.lower() for *_, text in shown), shown
    assert damaged.get("good").result(timeout=60) == 8


def test_getting_a_corrupt_record_says_it_is_corrupt(damaged: nbjobs.Store) -> None:
    try:
        job = damaged.get("bad")
    except nbjobs.NbjobsError as exc:
        assert not isinstance(exc, nbjobs.JobNotFound), f"the job exists but is corrupt: {exc}"
        assert "corrupt" in str(exc).lower()
    else:
        assert "corrupt" in json.dumps(job.to_dict()).lower()


def test_a_corrupt_record_can_be_forgotten_and_its_key_reused(damaged: nbjobs.Store) -> None:
    assert damaged.forget("bad") is True
    assert sum(damaged.stats().values()) == 1
    assert [j.key for j in damaged.jobs()] == ["good"]
    assert damaged.submit(pow, 2, 4, key="bad").result(timeout=60) == 16
