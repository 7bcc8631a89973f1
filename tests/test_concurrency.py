"""Threads and processes sharing one store: no lost or duplicated jobs, indexes agree."""

from __future__ import annotations

import collections
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import nbjobs

SUBMITTERS = 6  # 4 threads of this process and 2 other processes
UNIQUE = 480  # split between the submitters, half of them keyed
SHARED = 20  # keys every submitter submits at the same time; they succeed, as a failed
# key would rightly run again when the next submitter resubmits it
TOTAL = UNIQUE + SHARED


def outcome(log: str, label: str, i: int) -> int:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{label}\n".encode())
    finally:
        os.close(fd)
    if i % 4 == 0:
        raise ValueError(f"job {label} fails on purpose")
    return i


def submit_share(store: nbjobs.Store, log: str, which: int) -> list[str]:
    """Submit this submitter's share, wait for it; returns the job ids."""
    jobs = []
    for i in range(which, UNIQUE, SUBMITTERS):
        label = f"u{i}"
        key = label if i % 2 == 0 else None
        jobs.append(store.submit(outcome, log, label, i, key=key))
    for j in range(SHARED):
        label = f"s{j}"
        jobs.append(store.submit(outcome, log, label, 4 * j + 1, key=label))
    for job in jobs:
        job.wait(timeout=120)
    return [job.id for job in jobs]


def process_submitter(
    path: str, log: str, which: int, barrier: Any, out: multiprocessing.Queue
) -> None:
    try:
        store = nbjobs.Store(path)
        barrier.wait(timeout=120)
        ids = submit_share(store, log, which)
        store.close()
        out.put(ids)
    except BaseException as exc:
        out.put(repr(exc))


def expected_outcomes() -> dict[str, str]:
    labels = {f"u{i}": i for i in range(UNIQUE)} | {f"s{j}": 4 * j + 1 for j in range(SHARED)}
    return {label: "failed" if i % 4 == 0 else "succeeded" for label, i in labels.items()}


@pytest.mark.slow
def test_index_and_records_agree_after_concurrent_work(store: nbjobs.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    log = str(tmp_path / "runs.log")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(SUBMITTERS)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=process_submitter, args=(path, log, which, barrier, out))
        for which in (4, 5)
    ]
    for p in procs:
        p.start()

    thread_ids: dict[int, list[str]] = {}
    thread_errors: list[BaseException] = []

    def thread_submitter(which: int) -> None:
        try:
            barrier.wait(timeout=120)
            thread_ids[which] = submit_share(store, log, which)
        except BaseException as exc:
            thread_errors.append(exc)

    threads = [threading.Thread(target=thread_submitter, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    try:
        proc_results = [out.get(timeout=240) for _ in procs]
    finally:
        for t in threads:
            t.join(timeout=240)
        for p in procs:
            p.join(timeout=60)
    assert not thread_errors, thread_errors
    assert all(isinstance(r, list) for r in proc_results), proc_results
    assert [p.exitcode for p in procs] == [0, 0]

    # Every job ran exactly once.
    runs = collections.Counter(Path(log).read_text().splitlines())
    assert sum(runs.values()) == TOTAL
    assert set(runs) == set(expected_outcomes())
    assert max(runs.values()) == 1

    submitted_ids = {i for ids in [*thread_ids.values(), *proc_results] for i in ids}
    assert len(submitted_ids) == TOTAL

    for s in (store, nbjobs.Store(path)):
        stats = s.stats()
        listed = s.jobs(limit=10**6)
        assert sum(stats[st] for st in nbjobs.STATES) == len(listed) == TOTAL
        assert {j.id for j in listed} == submitted_ids
        assert len({j.id for j in listed}) == TOTAL
        for st in nbjobs.STATES:
            assert stats[st] == len(s.jobs(status=st, limit=10**6)), st
        want = collections.Counter(expected_outcomes().values())
        assert stats["failed"] == want["failed"]
        assert stats["succeeded"] == want["succeeded"]
        assert stats["pending"] == stats["running"] == stats["retrying"] == 0
        by_status = collections.Counter(j.status for j in listed)
        assert by_status == {k: v for k, v in stats.items() if v}
        for job in listed[:: max(1, TOTAL // 50)]:
            assert s.get(job.id).status == job.status
        if s is not store:
            s.close()

    assert store.get("s1").result(timeout=60) == 5
    with pytest.raises(ValueError, match="job u0 fails on purpose"):
        store.get("u0").result(timeout=60)
