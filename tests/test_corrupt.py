"""A corrupt record is listed as such, never crashes a listing, and can be removed."""

from __future__ import annotations

import json
import pickle
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import nbjobs

# Read from nbjobs/store/: diskcache's database file and the table of job records.
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


def _set_data(store_path: Path, key: str, data: bytes | str) -> None:
    db = sqlite3.connect(store_path / DATABASE)
    try:
        assert db.execute(f"UPDATE {RECORDS} SET data = ? WHERE key = ?", (data, key)).rowcount
        db.commit()
    finally:
        db.close()


class _RunsCode:
    """Unpickling this creates a file: what a tampered record could do."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.path), "w"))


def test_a_record_that_names_a_function_is_corrupt_and_runs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "store"
    s = nbjobs.Store(path)
    s.submit(pow, 2, 3, key="k").result(timeout=60)
    s.close()
    touched = tmp_path / "touched"
    _set_data(path, "k", pickle.dumps((1, _RunsCode(touched)), 5))
    s = nbjobs.Store(path)
    try:
        assert "corrupt" in json.dumps(s.get("k").to_dict()).lower()
        assert [j.key for j in s.jobs()] == ["k"]  # still listed
        assert not touched.exists(), "loading a job record ran code"
    finally:
        s.close()


def test_records_written_as_json_by_nbjobs_0_1_still_load(tmp_path: Path) -> None:
    path = tmp_path / "store"
    s = nbjobs.Store(path)
    job = s.submit(pow, 2, 5, key="old")
    assert job.result(timeout=60) == 32
    record = job.to_dict() | {"fn_digest": job.record().fn_digest, "args_digest": None}
    s.close()
    _set_data(path, "old", json.dumps(record))
    s = nbjobs.Store(path)
    try:
        again = s.get("old")
        assert again.status == "succeeded"
        assert again.result(timeout=5) == 32
        assert again.to_dict() == job.to_dict()
    finally:
        s.close()
