"""`job.rerun_here()`: the stored call again, in this thread, outside the store (for %debug)."""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

import nbjobs

CALLS: list[tuple[float, float]] = []


def divide(a: float, b: float) -> float:
    CALLS.append((a, b))
    return a / b


async def add_later(a: int, b: int) -> int:
    return a + b


def test_a_failed_job_raises_its_own_exception_here_from_the_users_frame(
    tmp_path: Path,
) -> None:
    with nbjobs.Store(tmp_path / "s") as first:
        first.submit(divide, 1, 0, key="div").wait(timeout=60)
    CALLS.clear()
    with nbjobs.Store(tmp_path / "s") as store:  # a new kernel: everything read from disk
        job = store.get("div")
        before = (job.to_dict(), store.stats())
        with pytest.raises(ZeroDivisionError) as info:
            job.rerun_here()
        frames = [frame.name for frame in traceback.extract_tb(info.tb)]
        assert frames[-1] == "divide", frames  # %debug lands in the user's function
        assert CALLS == [(1, 0)]
        assert threading.current_thread() is threading.main_thread()
        assert (job.to_dict(), store.stats()) == before  # no state change, no new job


def test_a_finished_job_returns_its_value_again(store: nbjobs.Store) -> None:
    job = store.submit(divide, 6, 3)
    assert job.result(timeout=60) == 2
    CALLS.clear()
    assert job.rerun_here() == 2
    assert CALLS == [(6, 3)]
    assert sum(store.stats().values()) == 1


def test_an_async_job_is_run_to_completion(store: nbjobs.Store) -> None:
    job = store.submit(add_later, 2, 3)
    assert job.result(timeout=60) == 5
    assert job.rerun_here() == 5


def test_a_job_whose_call_was_not_stored_says_why(store: nbjobs.Store) -> None:
    lock = threading.Lock()
    with pytest.warns(UserWarning, match="cannot be resumed"):
        job = store.submit(lambda: lock.locked())
    job.wait(timeout=60)
    with pytest.raises(nbjobs.PayloadLoadError, match=r"cannot be re-run: .*cannot be pickled"):
        job.rerun_here()


def test_an_unfinished_job_is_refused(store: nbjobs.Store, wait_for: Callable[..., object]) -> None:
    gate = threading.Event()
    with pytest.warns(UserWarning):
        job = store.submit(gate.wait, 60)
    try:
        wait_for(lambda: job.status == "running")
        with pytest.raises(nbjobs.InvalidArgument, match="running"):
            job.rerun_here()
    finally:
        gate.set()
    assert job.result(timeout=60) is True
