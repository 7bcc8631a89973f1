"""Flaky work (journey 5): retries driven by tenacity policies on a fake clock, bad retry
options refused before anything is written, dead letters and manual retry, and a job
waiting for its next attempt across the death of its kernel.

No test here waits for a real backoff: the stores run on a `FakeClock` and the tests move
it; the alarm thread notices within a tick.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest
import tenacity
from gates import poll

import nbjobs
from nbjobs.clock import FakeClock

pytestmark = pytest.mark.timeout(120)

BACKOFF = 600.0


def flaky(counter: str, failures: int, error: type[BaseException] = ConnectionError) -> str:
    """Fail the first `failures` calls (counted in a file, so any process can run it)."""
    with open(counter, "a") as f:
        f.write("call\n")
    n = calls(counter)
    if n <= failures:
        raise error(f"attempt {n} failed")
    return f"ok after {n}"


def calls(counter: str | Path) -> int:
    return len(Path(counter).read_text().splitlines()) if os.path.exists(counter) else 0


def message_then(counter: str, messages: list[str]) -> str:
    """Raise RuntimeError with the next message of `messages` (by call number)."""
    with open(counter, "a") as f:
        f.write("call\n")
    raise RuntimeError(messages[min(calls(counter), len(messages)) - 1])


def double(x: int) -> int:
    return 2 * x


@pytest.fixture
def counter(tmp_path: Path) -> str:
    return str(tmp_path / "calls.txt")


def status_on_disk(store: nbjobs.Store, job: nbjobs.Job) -> nbjobs.JobRecord | None:
    """The job's record as committed to the store (not this process's pending writes)."""
    for rec in store.records(limit=1000):
        if rec.id == job.id:
            return rec
    return None


def until_status(
    wait_for: Any, store: nbjobs.Store, job: nbjobs.Job, *wanted: str, attempts: int | None = None
) -> Any:
    """Wait until the committed record is in one of `wanted` (after `attempts` attempts, if
    given); return that record."""

    def reached() -> nbjobs.JobRecord | None:
        rec = status_on_disk(store, job)
        if rec is None or rec.status not in wanted:
            return None
        return rec if attempts is None or rec.attempts == attempts else None

    return wait_for(reached, timeout=60)


def finish(wait_for: Any, job: nbjobs.Job) -> nbjobs.Job:
    """Wait (with a real deadline) until the job is finished and its outcome committed."""
    wait_for(job.done, timeout=60)
    return job.wait(timeout=60)


# ---------------------------------------------------------------------- retrying on a fake clock
def test_a_flaky_job_succeeds_on_its_third_attempt_without_waiting_for_real_backoff(
    fake_store: nbjobs.Store, clock: FakeClock, counter: str, wait_for: Any
) -> None:
    t0 = clock.now()
    job = fake_store.submit(
        flaky, counter, 2, retries=3, backoff=tenacity.wait_fixed(BACKOFF), key="flaky"
    )

    rec = until_status(wait_for, fake_store, job, "retrying", attempts=1)
    assert rec.retry_at == clock.now() + BACKOFF
    assert rec.error is not None and rec.error.type == "ConnectionError"
    assert calls(counter) == 1

    clock.advance(BACKOFF)
    rec = until_status(wait_for, fake_store, job, "retrying", attempts=2)
    assert rec.retry_at == clock.now() + BACKOFF

    clock.advance(BACKOFF)
    finish(wait_for, job)
    assert job.result(timeout=0) == "ok after 3"
    assert job.status == "succeeded"
    assert job.attempts == 3
    assert calls(counter) == 3

    history = job.attempt_history()
    assert [a["number"] for a in history] == [1, 2, 3]
    assert [a["started_at"] for a in history] == [t0, t0 + BACKOFF, t0 + 2 * BACKOFF]
    assert [a["finished_at"] for a in history] == [t0, t0 + BACKOFF, t0 + 2 * BACKOFF]
    for n, attempt in enumerate(history[:2], 1):
        assert attempt["ok"] is False
        error = attempt["error"]
        assert error["type"] == "ConnectionError"
        assert error["message"] == f"attempt {n} failed"
        assert "ConnectionError" in error["traceback"]
        assert f"attempt {n} failed" in error["traceback"]
        assert "in flaky" in error["traceback"]
    assert history[2]["ok"] is True
    assert history[2]["error"] is None


def test_the_default_backoff_is_exponential_with_jitter_and_capped(
    fake_store: nbjobs.Store, clock: FakeClock, counter: str, wait_for: Any
) -> None:
    job = fake_store.submit(flaky, counter, 100, retries=5)
    delays = []
    for attempt in range(1, 5):
        rec = until_status(wait_for, fake_store, job, "retrying", attempts=attempt)
        delay = rec.retry_at - clock.now()
        # wait_random_exponential(multiplier=1): uniform in [0, 2 ** (attempt - 1)]
        assert 0 <= delay <= 2 ** (attempt - 1)
        delays.append(delay)
        clock.advance(delay)
    assert len(delays) == 4


def test_an_error_not_in_retry_on_fails_at_once(
    fake_store: nbjobs.Store, counter: str, wait_for: Any
) -> None:
    job = fake_store.submit(flaky, counter, 5, ValueError, retries=3, retry_on=ConnectionError)
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 1
    assert calls(counter) == 1
    with pytest.raises(ValueError, match="attempt 1 failed"):
        job.result(timeout=0)
    assert [a["error"]["type"] for a in job.attempt_history()] == ["ValueError"]


def test_no_retries_unless_asked(fake_store: nbjobs.Store, counter: str, wait_for: Any) -> None:
    job = fake_store.submit(flaky, counter, 1)
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 1
    assert calls(counter) == 1
    assert job.record().retry_at is None


def test_a_tenacity_stop_strategy_is_accepted_as_retries(
    fake_store: nbjobs.Store, counter: str, wait_for: Any
) -> None:
    job = fake_store.submit(flaky, counter, 100, retries=tenacity.stop_after_attempt(2), backoff=0)
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 2
    assert calls(counter) == 2
    with pytest.raises(ConnectionError, match="attempt 2 failed"):
        job.result(timeout=0)


def test_a_tenacity_retry_predicate_is_accepted_as_retry_on(
    fake_store: nbjobs.Store, counter: str, wait_for: Any
) -> None:
    job = fake_store.submit(
        message_then,
        counter,
        ["transient glitch", "transient again", "permanent breakage", "never reached"],
        retries=10,
        retry_on=tenacity.retry_if_exception_message(match="transient.*"),
        backoff=0,
    )
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 3
    with pytest.raises(RuntimeError, match="permanent breakage"):
        job.result(timeout=0)
    assert [a["error"]["message"] for a in job.attempt_history()] == [
        "transient glitch",
        "transient again",
        "permanent breakage",
    ]


def test_an_nbjobs_retry_policy(
    fake_store: nbjobs.Store, clock: FakeClock, counter: str, tmp_path: Path, wait_for: Any
) -> None:
    policy = nbjobs.Retry(2, on=ConnectionError, delay=5, backoff="fixed")
    job = fake_store.submit(flaky, counter, 100, retries=policy)
    for attempt in (1, 2):
        rec = until_status(wait_for, fake_store, job, "retrying", attempts=attempt)
        assert rec.retry_at == clock.now() + 5
        clock.advance(5)
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 3  # Retry(2): two retries after the first attempt

    other = str(tmp_path / "other.txt")
    permanent = fake_store.submit(flaky, other, 100, KeyError, retries=policy)
    finish(wait_for, permanent)
    assert permanent.status == "failed"
    assert permanent.attempts == 1


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": "3"}, "retries"),
        ({"retries": 2.5}, "retries"),
        ({"retries": 2, "retry_on": 42}, "retry_on"),
        ({"retry_on": 42}, "retry_on"),
        ({"retries": 2, "retry_on": (ConnectionError, "oops")}, "retry_on"),
        ({"retries": 2, "backoff": "fast"}, "backoff"),
        ({"retries": 2, "backoff": -1}, "backoff"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": -1}, "timeout"),
        ({"timeout": "ten"}, "timeout"),
        ({"soft_timeout": 0}, "soft_timeout"),
        ({"timeout": 5, "soft_timeout": 5}, "soft_timeout"),
        ({"timeout": 5, "soft_timeout": 10}, "soft_timeout"),
    ],
)
def test_bad_retry_and_time_limit_options_are_refused_and_write_nothing(
    fake_store: nbjobs.Store, options: dict[str, Any], argument: str
) -> None:
    before = fake_store.stats()
    with pytest.raises(nbjobs.InvalidArgument, match=argument):
        fake_store.submit(double, 1, key="never", **options)
    with pytest.raises(nbjobs.InvalidArgument, match=argument):
        fake_store.submit(double, 1, **options)
    assert fake_store.stats() == before
    assert fake_store.records() == []
    with pytest.raises(nbjobs.JobNotFound):
        fake_store.get("never")


# ---------------------------------------------------------------------- dead letters and retry()
def test_an_exhausted_job_is_a_dead_letter_and_retry_runs_it_again(
    fake_store: nbjobs.Store, counter: str, wait_for: Any
) -> None:
    job = fake_store.submit(flaky, counter, 2, retries=1, backoff=0, key="fetch")
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 2
    assert [j.id for j in fake_store.dead_letters()] == [job.id]
    with pytest.raises(ConnectionError, match="attempt 2 failed"):
        job.result(timeout=0)

    again = job.retry()
    assert again.id == job.id
    wait_for(lambda: job.status == "succeeded", timeout=60)
    assert job.result(timeout=0) == "ok after 3"
    assert fake_store.dead_letters() == []

    rec = job.record()
    assert rec.attempts == 3
    assert rec.runs == 2
    assert [(h["run"], h["status"], h["attempts"]) for h in rec.history] == [(1, "failed", 2)]
    assert rec.history[0]["error"]["type"] == "ConnectionError"
    history = job.attempt_history()
    assert [(a["number"], a["run"], a["ok"]) for a in history] == [
        (1, 1, False),
        (2, 1, False),
        (3, 2, True),
    ]

    with pytest.raises(nbjobs.InvalidArgument, match="succeeded"):
        job.retry()
    with pytest.raises(nbjobs.InvalidArgument, match="succeeded"):
        fake_store.retry("fetch")
    assert job.attempts == 3


def test_module_retry_by_key_gives_a_fresh_set_of_attempts(counter: str, wait_for: Any) -> None:
    job = nbjobs.submit(flaky, counter, 100, retries=1, backoff=0, key="always-down")
    finish(wait_for, job)
    assert job.status == "failed"
    assert job.attempts == 2
    assert [j.key for j in nbjobs.dead_letters()] == ["always-down"]

    nbjobs.retry("always-down")
    wait_for(lambda: job.done() and job.attempts == 4, timeout=60)
    assert job.status == "failed"
    assert calls(counter) == 4
    assert [a["number"] for a in job.attempt_history()] == [1, 2, 3, 4]
    assert [a["error"]["message"] for a in job.attempt_history()] == [
        f"attempt {n} failed" for n in (1, 2, 3, 4)
    ]
    assert [h["attempts"] for h in job.record().history] == [2]
    assert [j.key for j in nbjobs.dead_letters()] == ["always-down"]


def test_a_job_waiting_for_its_retry_does_not_hold_the_only_worker(
    tmp_path: Path, clock: FakeClock, counter: str, wait_for: Any
) -> None:
    with nbjobs.Store(tmp_path / "one-worker", workers=1, clock=clock) as store:
        waiting = store.submit(flaky, counter, 100, retries=1, backoff=BACKOFF)
        until_status(wait_for, store, waiting, "retrying")
        others = [store.submit(double, i) for i in range(5)]
        wait_for(lambda: all(j.done() for j in others), timeout=60)
        assert [j.result(timeout=0) for j in others] == [0, 2, 4, 6, 8]
        assert waiting.status == "retrying"
        assert calls(counter) == 1

        clock.advance(BACKOFF)
        finish(wait_for, waiting)
        assert waiting.status == "failed"
        assert waiting.attempts == 2


# ---------------------------------------------------------- a kernel that dies while a job waits
def kernel_that_dies_while_retrying(path: str, counter: str) -> None:
    """Child process: a keyed flaky job fails once and waits an hour; then the kernel dies."""
    store = nbjobs.Store(path)
    store.submit(flaky, counter, 100, retries=1, backoff=3600, key="waiting")

    def retrying() -> list[Any]:
        return [r for r in store.records(status="retrying") if r.key == "waiting"]

    if not poll(retrying, every=0.01):
        os._exit(3)
    os._exit(0)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["resume", "resubmit"])
def test_a_job_waiting_in_retrying_when_its_kernel_dies_keeps_its_remaining_attempts(
    tmp_path: Path, counter: str, wait_for: Any, how: str
) -> None:
    """Run again by `resume()` or by re-running the notebook (the same submit, its key)."""
    path = tmp_path / "store"
    proc = multiprocessing.get_context("spawn").Process(
        target=kernel_that_dies_while_retrying, args=(str(path), counter)
    )
    proc.start()
    proc.join(timeout=90)
    assert proc.exitcode == 0
    assert calls(counter) == 1

    clock = FakeClock(time.time())
    store = nbjobs.Store(path, clock=clock)
    try:
        job = store.get("waiting")
        rec = until_status(wait_for, store, job, "interrupted")
        assert rec.attempts == 1
        assert rec.run_attempts == 1
        assert rec.retry_at is not None
        assert rec.retry_at == pytest.approx(rec.finished_at + 3600, abs=1)
        with pytest.raises(nbjobs.JobInterrupted):
            job.result(timeout=0)

        if how == "resume":
            assert [j.id for j in store.resume()] == [job.id]
        else:
            again = store.submit(flaky, counter, 100, retries=1, backoff=3600, key="waiting")
            assert again.id == job.id
        assert job.record().retry_at == rec.retry_at
        assert calls(counter) == 1  # it still waits for its persisted retry_at

        clock.advance(rec.retry_at - clock.now())
        wait_for(lambda: calls(counter) == 2, timeout=60)
        final = until_status(wait_for, store, job, "failed", "retrying")
        # retries=1 and one failure already used: exactly one more attempt, not a fresh set
        assert final.status == "failed"
        assert final.attempts == 2
        assert [a["number"] for a in job.attempt_history()] == [1, 2]
        assert calls(counter) == 2
    finally:
        store.close()


def test_numpy_numbers_are_accepted_as_retries_backoff_and_time_limits(
    store: nbjobs.Store, counter: str
) -> None:
    """Options read from an array or a DataFrame row are NumPy numbers, not int/float."""
    import numpy as np

    job = store.submit(
        flaky,
        counter,
        2,
        retries=np.int64(2),
        backoff=np.float32(0),
        timeout=np.int64(60),
        soft_timeout=np.float64(30),
    )
    assert job.result(timeout=60) == "ok after 3"
    assert calls(counter) == 3
    rec = job.record()
    assert (rec.timeout, rec.soft_timeout) == (60.0, 30.0)
    assert type(rec.timeout) is float
    assert nbjobs.Retry(np.int64(1), delay=np.float64(0.5)).times == 1
