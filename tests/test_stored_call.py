"""Where a job's call is stored: in its row when small (a keyed submit is then a single
INSERT), in a blob when large; and stores made before the row held calls still work."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import nbjobs
import nbjobs.store.connections
from nbjobs import codec
from nbjobs.store.job_table import ROW_CALL_LIMIT


def echo(x: Any) -> Any:
    return x


def fail(x: Any) -> Any:
    raise ValueError(f"no {len(x)}")


def _where(store: nbjobs.Store, job: nbjobs.Job) -> tuple[bool, bool]:
    """(call in the row, call in a blob)."""
    store.flush()
    (in_row,) = store.storage._sql(
        "SELECT call IS NOT NULL FROM nbjobs_jobs WHERE id = ?", (job.id,)
    ).fetchone()
    return bool(in_row), store.storage.blob(f"p:{job.id}") is not None


def _stored_args(store: nbjobs.Store, job: nbjobs.Job) -> tuple[Any, ...]:
    payload = store.storage.call(job.id)
    assert payload is not None
    fn_blob = store.storage.blob(f"f:{job.record().fn_digest}")
    assert fn_blob is not None
    _fn, args, _kwargs = codec.load_payload(payload, fn_blob)
    return tuple(args)


BIG = b"x" * (ROW_CALL_LIMIT * 4)


@pytest.mark.parametrize("key", [None, "k"])
@pytest.mark.parametrize("tags", [(), ("t",)])
def test_a_small_call_lives_in_the_row_and_a_large_one_in_a_blob(
    store: nbjobs.Store, key: str | None, tags: tuple[str, ...]
) -> None:
    store.submit(echo, 0, key="warm-up").result(timeout=30)  # the function is stored
    small = store.submit(echo, 1, key=key, tags=list(tags))
    big = store.submit(echo, BIG, key=None if key is None else key + "-big", tags=list(tags))
    assert small.result(timeout=30) == 1
    assert big.result(timeout=30) == BIG
    assert _where(store, small) == (True, False)
    assert _where(store, big) == (False, True)
    assert _stored_args(store, small) == (1,)
    assert _stored_args(store, big) == (BIG,)


def test_resubmitting_a_key_replaces_its_call_wherever_it_was(store: nbjobs.Store) -> None:
    first = store.submit(fail, "ab", key="k")
    with pytest.raises(ValueError):
        first.result(timeout=30)
    big = store.submit(fail, BIG, key="k")  # a failed key runs again, with these arguments
    assert big.id == first.id
    with pytest.raises(ValueError, match=f"no {len(BIG)}"):
        big.result(timeout=30)
    assert _where(store, big) == (False, True)
    small = store.submit(fail, "abc", key="k")
    with pytest.raises(ValueError, match="no 3"):
        small.result(timeout=30)
    assert _where(store, small) == (True, False)
    assert _stored_args(store, small) == ("abc",)


def test_forgetting_a_job_removes_its_call(store: nbjobs.Store) -> None:
    store.submit(echo, 0, key="warm-up").result(timeout=30)
    jobs = [store.submit(echo, 1, key="small"), store.submit(echo, BIG, key="big")]
    for job in jobs:
        job.result(timeout=30)
        store.forget(job.id)
    store.flush()
    for job in jobs:
        assert store.storage.call(job.id) is None


OLD_KERNEL = textwrap.dedent(
    """
    import os, sys, time
    import nbjobs
    store = nbjobs.Store(sys.argv[1])
    def slow(x):
        time.sleep(float(os.environ.get("NBJOBS_TEST_SLEEP", "60")))
        return x * 2
    store.submit(slow, 0, key="warm-up")
    store.submit(slow, 21, key="precious")
    os._exit(0)
    """
)


def _downgrade(db: Path) -> None:
    """Make the store look like one written before calls lived in rows."""
    con = sqlite3.connect(db)
    with con:
        con.execute(
            "INSERT INTO nbjobs_blobs (key, data) "
            "SELECT 'p:' || id, call FROM nbjobs_jobs WHERE call IS NOT NULL"
        )
        con.execute("ALTER TABLE nbjobs_jobs DROP COLUMN call")
        con.execute("PRAGMA user_version = 0")  # older versions left it at SQLite's 0
    con.close()


def test_a_store_from_before_calls_lived_in_rows_opens_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store"
    script = tmp_path / "kernel.py"
    script.write_text(OLD_KERNEL)
    subprocess.run([sys.executable, str(script), str(path)], check=True, timeout=120)
    _downgrade(path / "cache.db")
    monkeypatch.setenv("NBJOBS_TEST_SLEEP", "0")
    with nbjobs.Store(path) as store:
        assert store.get("precious").status == "interrupted"
        resumed = {j.key: j for j in store.resume()}
        assert resumed["precious"].result(timeout=60) == 42
        # New jobs in the upgraded store keep their calls in their rows.
        again = store.submit(echo, 5, key="new")
        assert again.result(timeout=30) == 5
        assert _where(store, again) == (True, False)


def _wal_restarts(wal: Path) -> int:
    """The WAL header's checkpoint sequence number: SQLite adds one each time it starts
    the WAL over from its first frame (https://www.sqlite.org/fileformat.html#walformat)."""
    with wal.open("rb") as f:
        return int.from_bytes(f.read(16)[12:16], "big")


def test_the_wal_is_rewritten_from_its_start_while_keyed_submits_and_jobs_write(
    store: nbjobs.Store,
) -> None:
    """Keyed submits write on the caller's connection, outcomes on the writer's: the WAL
    must still be checkpointed whole now and then, so SQLite starts it over instead of
    appending to it for as long as the store is busy.

    Its file size is not the measure: the file is as long as the most frames ever written
    between two checkpoints, and the writer checkpoints after its batches, so that depends
    on how long the writer thread goes without a batch while claims write (8-9 MB here,
    13-28 MB with 3 processes spinning on the 2 cores). What the store guarantees is that
    the WAL starts over at each checkpoint: it does not grow with the number of jobs."""
    store.submit(echo, 0, key="warm-up").result(timeout=30)
    wal = store.storage.path / "cache.db-wal"
    first = _wal_restarts(wal)
    sizes = []
    for i in range(4000):
        store.submit(echo, i, key=f"k{i}")
        if i % 500 == 499:
            sizes.append(wal.stat().st_size)
    store.flush()
    # 4,000 jobs write about 30,000 pages (126 MB) to the WAL; never started over, it
    # would hold them all. The writer checkpoints at 1,000 pages after a batch.
    assert _wal_restarts(wal) - first >= 4, sizes
    assert max(sizes) < 64_000_000, sizes


def _hold_write_lock(
    store: nbjobs.Store, seconds: float
) -> tuple[threading.Thread, threading.Event, threading.Event]:
    """Another connection (as another process would) holds the write lock for `seconds`,
    or until the second event is set; the first is set just before it lets go."""
    locked, letting_go, release = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        con = sqlite3.connect(store.storage.path / "cache.db", isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        locked.set()
        release.wait(seconds)  # the other process's long transaction
        letting_go.set()
        con.execute("COMMIT")
        con.close()

    thread = threading.Thread(target=hold)
    thread.start()
    assert locked.wait(10)
    return thread, letting_go, release


def test_a_keyed_submit_waits_for_a_write_lock_held_elsewhere(store: nbjobs.Store) -> None:
    store.submit(echo, 0, key="warm-up").result(timeout=30)
    store.flush()
    holder, letting_go, _ = _hold_write_lock(store, 0.5)
    job = store.submit(echo, 7, key="patient")  # retries until the lock is free
    assert letting_go.is_set()  # it could only commit once the holder let go
    holder.join()
    assert job.result(timeout=30) == 7
    assert store.get("patient").id == job.id


def test_a_keyed_submit_gives_up_on_a_lock_held_too_long_and_stores_nothing(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.submit(echo, 0, key="warm-up").result(timeout=30)
    store.flush()
    monkeypatch.setattr(nbjobs.store.connections, "_CLAIM_TIMEOUT_S", 0.2)
    holder, _, release = _hold_write_lock(store, 30.0)
    with pytest.raises(nbjobs.StoreError, match="stayed locked"):
        store.submit(echo, 7, key="impatient")
    release.set()
    holder.join()
    with pytest.raises(nbjobs.JobNotFound):
        store.get("impatient")


def test_without_a_readable_wal_index_the_writer_still_checkpoints(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where cache.db-shm cannot be read, a checkpoint every few batches keeps the WAL
    from growing without bound."""
    real_open = os.open

    def no_shm(path: Any, *args: Any, **kwargs: Any) -> int:
        if str(path).endswith("-shm"):
            raise PermissionError(13, "not here", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(nbjobs.store.connections.os, "open", no_shm)
    wal = store.storage.path / "cache.db-wal"
    sizes = []
    for _ in range(80):
        jobs = [store.submit(echo, j) for j in range(100)]  # several batches each
        for job in jobs:
            job.result(timeout=30)
        sizes.append(wal.stat().st_size)
    assert store.storage.db._blind > 0  # it did run blind
    # 8,000 jobs grow a WAL never checkpointed to ~20 MB; checkpointed every 400 rows
    # written, it stays ~1 MB (every 32 batches alone let it reach 10-13 MB).
    assert max(sizes) < 5_000_000, sizes


def test_a_store_at_this_schema_opens_without_writing_its_schema_again(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nbjobs.store import schema

    version = store.storage.cache._sql("PRAGMA user_version").fetchone()[0]
    assert version == schema.VERSION
    ran: list[str] = []
    real = schema._statements
    monkeypatch.setattr(schema, "_statements", lambda text: ran.append(text) or real(text))
    with nbjobs.Store(store.path) as again:
        assert sum(again.stats().values()) == 0
    assert ran == []  # nothing to create or migrate: no write transaction at open
