"""Progress and `current_job()` (issue 7): progress written by a running job is seen from
another process, writes are throttled with the last value always kept, and a job knows who
it is (id, key, name, attempt). Outside a job, all of it does nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import nbjobs

pytestmark = pytest.mark.timeout(120)

STEPS = 100_000

OBSERVER = """\
import json, sys, time
import nbjobs

store = nbjobs.Store(sys.argv[1])
deadline = time.monotonic() + 60
while True:
    p = store.get(sys.argv[2]).progress
    if p is not None and p.current >= 5 and p.rate:
        break
    if time.monotonic() > deadline:
        sys.exit("no progress seen from this process")
    time.sleep(0.01)
print(json.dumps({"pid": __import__("os").getpid(), "current": p.current, "total": p.total,
                  "fraction": p.fraction, "message": p.message, "rate": p.rate, "eta": p.eta}))
store.close()
"""


def counts_up(gate: str, total: int = 1000) -> int:
    """Report steps 1, 2, ... of `total` until the gate file exists (or the steps run out)."""
    for i in range(1, total + 1):
        nbjobs.progress(i, total, message=f"step {i}")
        if os.path.exists(gate):
            return i
        time.sleep(0.02)
    return total


def paced_track(seconds: float) -> float:
    """`STEPS` steps of `nbjobs.track`, spread evenly over `seconds` of wall time."""
    start = time.perf_counter()
    for i in nbjobs.track(range(STEPS), description="crunching"):
        while time.perf_counter() - start < seconds * i / STEPS:
            pass
    return time.perf_counter() - start


def who_am_i(folder: str, fail_first: int) -> tuple[Any, ...]:
    """Record `current_job()` for this attempt; fail the first `fail_first` attempts."""
    me = nbjobs.current_job()
    assert me is not None
    path = Path(folder) / f"attempt-{me.attempt}.json"
    path.write_text(json.dumps(me._asdict()))
    if me.attempt <= fail_first:
        raise ConnectionError(f"attempt {me.attempt} failed")
    return tuple(me)


def tracks(items: list[int]) -> int:
    return sum(nbjobs.track(items, description="adding"))


# ---------------------------------------------------------------------- seen from another process
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_progress_is_seen_from_another_process_while_the_job_runs(
    store: nbjobs.Store, tmp_path: Path, executor: str
) -> None:
    gate = tmp_path / "gate"
    job = store.submit(counts_up, str(gate), executor=executor)
    try:
        seen = subprocess.run(
            [sys.executable, "-c", OBSERVER, str(store.path), job.id],
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    finally:
        gate.touch()
    assert seen.returncode == 0, seen.stderr
    p = json.loads(seen.stdout.strip().splitlines()[-1])
    assert p["pid"] != os.getpid()
    assert 5 <= p["current"] < 1000
    assert p["total"] == 1000
    assert p["fraction"] == pytest.approx(p["current"] / 1000)
    assert p["message"] == f"step {int(p['current'])}"
    assert p["rate"] > 0
    assert p["eta"] == pytest.approx((1000 - p["current"]) / p["rate"])

    last = job.result(timeout=60)
    final = job.progress
    assert final is not None
    assert final.current == last
    assert final.message == f"step {last}"


# ---------------------------------------------------------------------- throttled writes
def test_a_tight_track_loop_writes_only_a_few_progress_updates_per_second(
    store: nbjobs.Store,
) -> None:
    seconds = 2.0
    job = store.submit(paced_track, seconds)
    seen: set[float] = set()
    stop = threading.Event()

    def observe() -> None:
        # The committed records, as any other process sees them.
        while not stop.is_set():
            for rec in store.records(limit=5):
                if rec.id == job.id and rec.progress and rec.status == "running":
                    seen.add(rec.progress["current"])
            stop.wait(0.002)

    observer = threading.Thread(target=observe, daemon=True)
    observer.start()
    try:
        elapsed = job.result(timeout=60)
    finally:
        stop.set()
        observer.join(timeout=10)
    assert elapsed >= 0.99 * seconds
    # Unthrottled, ~1000 polls would see hundreds of different values.
    assert 2 <= len(seen) <= 4 * elapsed + 3, sorted(seen)
    final = job.progress
    assert final is not None
    assert (final.current, final.total, final.message) == (STEPS, STEPS, "crunching")
    assert final.fraction == 1.0
    assert final.eta == 0.0


def test_track_takes_its_total_from_len_and_always_keeps_the_last_value(
    store: nbjobs.Store,
) -> None:
    job = store.submit(tracks, [1, 2, 3, 4, 5])
    assert job.result(timeout=60) == 15
    p = job.progress
    assert p is not None
    assert (p.current, p.total, p.message, p.fraction) == (5, 5, "adding", 1.0)


def reports_numpy_numbers(steps: int) -> int:
    import numpy as np

    for i in np.arange(1, steps + 1):  # NumPy integers, as a loop over an array gives
        nbjobs.progress(i, np.int64(steps), message=f"step {i}")
    nbjobs.progress(np.float32(steps), np.float64("inf"))  # an endless total: unknown
    return steps


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_numpy_numbers_are_reported_as_plain_numbers(store: nbjobs.Store, executor: str) -> None:
    job = store.submit(reports_numpy_numbers, 3, executor=executor)
    assert job.result(timeout=60) == 3
    p = job.progress
    assert p is not None
    assert (p.current, p.total) == (3, None)
    assert type(p.current) is float
    json.dumps(job.to_dict(), allow_nan=False)
    with nbjobs.Store(store.path) as other:  # the record reads back, not as corrupt
        assert other.get(job.id).progress == p


def gives_up_on_progress(value: float) -> str:
    try:
        nbjobs.progress(value, 10)
    except nbjobs.InvalidArgument as exc:
        return str(exc)
    return "accepted"


def test_a_progress_that_is_not_a_number_is_refused_in_the_job(store: nbjobs.Store) -> None:
    said = store.submit(gives_up_on_progress, float("nan")).result(timeout=60)
    assert said.startswith("current must be a finite number"), said


# ---------------------------------------------------------------------- current_job()
def test_current_job_gives_id_key_name_and_the_attempt_number(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    job = store.submit(
        who_am_i, str(tmp_path), 2, key="charge-42", name="charge", retries=2, backoff=0
    )
    assert job.result(timeout=60) == (job.id, "charge-42", "charge", 3)
    seen = [json.loads((tmp_path / f"attempt-{n}.json").read_text()) for n in (1, 2, 3)]
    assert seen == [
        {"id": job.id, "key": "charge-42", "name": "charge", "attempt": n} for n in (1, 2, 3)
    ]


def test_current_job_in_a_process_job(store: nbjobs.Store, tmp_path: Path) -> None:
    job = store.submit(who_am_i, str(tmp_path), 0, executor="process")
    assert job.result(timeout=60) == (job.id, None, "who_am_i", 1)


def test_outside_a_job_reporting_does_nothing(store: nbjobs.Store) -> None:
    before = store.stats()
    assert nbjobs.current_job() is None
    assert nbjobs.progress(1, 10, message="not in a job") is None
    assert nbjobs.progress(3) is None
    assert list(nbjobs.track(range(3))) == [0, 1, 2]
    assert list(nbjobs.track(x for x in "ab")) == ["a", "b"]
    assert store.stats() == before
    assert store.records() == []
    assert nbjobs.stats() == dict.fromkeys(nbjobs.STATES, 0)
