"""Large data at the edges: the functions and shared arguments of jobs that are gone leave
the store with them, and a large argument is stored once, however often it is submitted.

Every test uses a real store folder; the concurrent one runs a second process and a
detached worker, which loads every job's function and arguments from the store."""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gates import poll

import nbjobs
from nbjobs import codec
from nbjobs.calls import call as calls

MB = 1 << 20


def total(data: np.ndarray, scale: float = 1.0) -> float:
    return float(data.sum()) * scale


def scaled(scale: float, data: np.ndarray) -> float:
    return float(data.sum()) * scale


def first(data: np.ndarray, *rest: Any, **more: Any) -> float:
    return float(data[0])


def blob_files(store: nbjobs.Store, prefix: str = "") -> list[str]:
    return sorted(
        p.name
        for p in (store.path / "blobs").iterdir()
        if not p.name.startswith(".") and p.name.startswith(prefix)
    )


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fn_blob(store: nbjobs.Store, job: nbjobs.Job) -> bytes | None:
    return store.storage.blob(f"f:{job.record().fn_digest}")


# --------------------------------------------------------------------------- item 6
def test_purging_every_job_of_a_map_removes_its_shared_argument(store: nbjobs.Store) -> None:
    shared = np.arange(2 * MB // 8, dtype=np.float64)  # 2 MB: a file under blobs/
    jobs = store.map(scaled, [1.0, 2.0, 3.0], data=shared)
    assert [j.result(timeout=60) for j in jobs] == [float(shared.sum()) * s for s in (1, 2, 3)]
    key = f"f:{jobs[0].record().fn_digest}"
    assert store.storage.blob_inline(key) is False  # the partial with the array: a file
    assert blob_files(store, "f-"), blob_files(store)

    assert store.purge(status="succeeded") == 3
    assert store.storage.blob(key) is None
    assert blob_files(store, "f-") == []


def test_forgetting_the_last_job_of_a_function_removes_it_and_no_sooner(
    store: nbjobs.Store,
) -> None:
    shared = np.ones(2 * MB // 8)
    jobs = store.map(scaled, [1.0, 2.0], key="sweep", data=shared)
    nbjobs.wait(jobs, timeout=60)
    key = f"f:{jobs[0].record().fn_digest}"
    assert store.forget("sweep/0")
    assert store.storage.blob(key) is not None  # sweep/1 still needs it
    assert jobs[1].result() == 2 * float(shared.sum())
    assert store.forget("sweep/1")
    assert store.storage.blob(key) is None
    assert blob_files(store) == []


def test_resubmitting_a_key_with_another_function_removes_the_old_one(
    store: nbjobs.Store,
) -> None:
    old = store.map(scaled, [1.0], key="k", data=np.ones(2 * MB // 8))[0]
    old.result(timeout=60)
    old_key = f"f:{old.record().fn_digest}"
    new = store.submit(first, np.zeros(3), key="k/0", force=True)
    assert new.result(timeout=60) == 0.0
    assert store.storage.blob(old_key) is None
    assert blob_files(store) == []


def test_a_store_from_before_keeps_the_functions_its_jobs_use(tmp_path: Path) -> None:
    path = tmp_path / "old"
    with nbjobs.Store(path) as old:
        jobs = old.map(scaled, [1.0, 2.0], data=np.ones(4))
        nbjobs.wait(jobs, timeout=60)
        key = f"f:{jobs[0].record().fn_digest}"
    con = sqlite3.connect(path / "cache.db")  # as nbjobs wrote it before jobs named their function
    con.executescript(
        "DROP TRIGGER nbjobs_fn_ins; DROP TRIGGER nbjobs_fn_upd; DROP TRIGGER nbjobs_fn_del;"
        "DELETE FROM nbjobs_counts WHERE status LIKE 'f:%';"
        "ALTER TABLE nbjobs_jobs DROP COLUMN fn; DROP TABLE nbjobs_values;"
        "PRAGMA user_version = 2;"
    )
    con.close()
    with nbjobs.Store(path) as store:
        assert store.forget(jobs[0].id)
        assert store.storage.blob(key) is not None  # the other job still uses it
        assert store.forget(jobs[1].id)
        assert store.storage.blob(key) is None


def _submit_after_each_purge(path: str, rounds: int, out: Any) -> None:
    """In another process: submit, wait until the other process has purged the job and with
    it the function, submit again (this process still takes the function for stored)."""
    store = nbjobs.Store(path)
    data = np.arange(4.0)
    fn_key = f"f:{codec.dump_function(total)[0]}"
    try:
        for i in range(rounds):
            key = f"round-{i}" if i % 2 else None
            job = store.submit(total, data, float(i), executor="worker", key=key)
            try:
                out.put(("result", i, job.result(timeout=60)))
            except (nbjobs.JobNotFound, nbjobs.PayloadLoadError):
                if store.storage.record_by_id(job.id) is not None:
                    raise  # (a job that lost its payload fails with PayloadLoadError)
                out.put(("result", i, 6.0 * i))  # succeeded, purged before this read it
            gone = poll(lambda: store.storage.blob(fn_key) is None, 30)
            out.put(("gone", i, bool(gone)))
            if not gone:
                break
    except BaseException as exc:
        out.put(("error", -1, repr(exc)))
    finally:
        store.close()
        out.put(("done", -1, None))


def test_a_function_removed_by_another_process_is_stored_again_by_its_next_submit(
    store: nbjobs.Store,
) -> None:
    rounds = 8
    store.start_worker(workers=1, idle_timeout=120)
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_submit_after_each_purge, args=(str(store.path), rounds, out))
    child.start()
    seen: list[tuple[str, int, Any]] = []
    stop = threading.Event()

    def clean() -> None:  # purge and forget in turns, as fast as they come
        turn = 0
        while not stop.is_set():
            turn += 1
            if turn % 2:
                store.purge(status="succeeded")
            else:
                for rec in store.storage.page(("succeeded",), limit=50):
                    store.forget(rec.id)

    cleaner = threading.Thread(target=clean, daemon=True)
    cleaner.start()
    try:
        while not seen or seen[-1][0] != "done":
            seen.append(out.get(timeout=120))
    finally:
        stop.set()
        cleaner.join(60)
        child.join(60)
        store.stop_worker(wait=True, timeout=30, grace=0)
    errors = [s for s in seen if s[0] == "error"]
    assert not errors, errors
    results = [value for kind, _, value in seen if kind == "result"]
    assert results == [6.0 * i for i in range(rounds)]  # every job ran with its payload
    assert all(value for kind, _, value in seen if kind == "gone"), seen
    assert store.stats()["failed"] == 0


# --------------------------------------------------------------------------- item 7
def test_the_same_large_argument_is_stored_once(store: nbjobs.Store) -> None:
    data = np.random.default_rng(0).random(4 * MB // 8)  # 4 MB
    store.submit(total, np.ones(3), key="warm-up").result(timeout=60)
    before = folder_bytes(store.path)
    jobs = [store.submit(total, data, float(i), key=f"k{i}") for i in range(4)]
    jobs += [store.submit(total, data, 9.0) for _ in range(2)]
    assert [j.result(timeout=60) for j in jobs[:4]] == [float(data.sum()) * i for i in range(4)]
    store.flush()
    grown = folder_bytes(store.path) - before
    assert data.nbytes < grown < 2 * data.nbytes, grown  # one copy, not six
    assert len(blob_files(store, "v-")) == 1
    for job in (jobs[1], jobs[5]):  # the stored call reads back whole
        assert job.rerun_here() == job.result()


def test_a_large_argument_leaves_with_its_last_job(store: nbjobs.Store) -> None:
    data = np.ones(2 * MB // 8)
    jobs = [store.submit(first, data, i, key=f"k{i}") for i in range(2)]
    nbjobs.wait(jobs, timeout=60)
    assert blob_files(store, "v-")
    assert store.forget("k0")
    assert blob_files(store, "v-")
    assert store.purge(status="succeeded") == 1
    assert blob_files(store) == []


def test_a_detached_worker_loads_a_large_argument_from_the_store(store: nbjobs.Store) -> None:
    data = np.arange(2 * MB // 8, dtype=np.float64)
    store.start_worker(workers=1, idle_timeout=120)
    try:
        job = store.submit(total, data, 2.0, executor="worker")
        assert job.result(timeout=120) == 2 * float(data.sum())
    finally:
        store.stop_worker(wait=True, timeout=30, grace=0)


def test_a_huge_argument_warns_once_per_call_site(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calls, "LARGE_ARGUMENT_WARNING", MB)
    data = np.ones(2 * MB // 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # nbjobs itself warns once per call site
        for i in range(3):
            store.submit(first, data, i)  # one call site
        store.submit(first, np.ones(3), 0)  # small: no warning
        store.submit(first, np.ones(3), extra=data)  # another call site
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2, messages
    assert all(w.filename == __file__ for w in caught)
    assert "argument 0 (ndarray)" in messages[0] and "keyword argument 'extra'" in messages[1]
    for text in messages:
        assert "MB" in text and "map(" in text and "functools.partial" in text, text
    store.flush()
