"""Waiting on jobs: `nbjobs.wait`, `nbjobs.as_completed`, `await job`, `add_done_callback`.

They follow `concurrent.futures.wait` / `as_completed` and work the same for jobs run by
this process and for jobs run by another process on the same store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import Gates, blocked

import nbjobs

pytestmark = pytest.mark.timeout(180)


class Boom(Exception):
    pass


def square(x: int) -> int:
    return x * x


def boom(message: str) -> None:
    raise Boom(message)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    g = Gates(tmp_path / "gates")
    yield g
    g.open_all()


def start_blocked(gates: Gates, name: str, wait_for: Any, value: Any = None) -> nbjobs.Job:
    job: nbjobs.Job = gates.start(nbjobs.submit, name, name if value is None else value, wait_for)
    return job


# ------------------------------------------------------------------------ wait
def test_wait_all_completed_returns_done_and_not_done() -> None:
    jobs = [nbjobs.submit(square, i) for i in range(4)]
    result = nbjobs.wait(jobs, timeout=60)
    done, not_done = result
    assert (result.done, result.not_done) == (done, not_done)
    assert done == set(jobs)
    assert not_done == set()
    assert sorted(j.result(timeout=0) for j in done) == [0, 1, 4, 9]


def test_wait_first_completed(gates: Gates, wait_for: Any) -> None:
    slow = start_blocked(gates, "slow", wait_for)
    fast = nbjobs.submit(square, 3)
    done, not_done = nbjobs.wait([slow, fast], timeout=60, return_when=nbjobs.FIRST_COMPLETED)
    assert (done, not_done) == ({fast}, {slow})
    gates.open("slow")
    done, not_done = nbjobs.wait([slow, fast], timeout=60, return_when=nbjobs.ALL_COMPLETED)
    assert (done, not_done) == ({slow, fast}, set())


def test_wait_first_exception_returns_at_the_first_failure(gates: Gates, wait_for: Any) -> None:
    slow = start_blocked(gates, "slow", wait_for)
    ok = nbjobs.submit(square, 2)
    ok.wait(timeout=60)
    bad = nbjobs.submit(boom, "first failure")
    done, not_done = nbjobs.wait([slow, ok, bad], timeout=60, return_when=nbjobs.FIRST_EXCEPTION)
    assert (done, not_done) == ({ok, bad}, {slow})


def test_wait_first_exception_without_a_failure_waits_like_all_completed(
    gates: Gates, wait_for: Any
) -> None:
    slow = start_blocked(gates, "slow", wait_for)
    ok = nbjobs.submit(square, 2)
    ok.wait(timeout=60)
    started = time.monotonic()
    done, not_done = nbjobs.wait([slow, ok], timeout=0.3, return_when=nbjobs.FIRST_EXCEPTION)
    assert time.monotonic() - started >= 0.3
    assert (done, not_done) == ({ok}, {slow})


def test_wait_with_a_timeout_returns_instead_of_raising(gates: Gates, wait_for: Any) -> None:
    slow = start_blocked(gates, "slow", wait_for)
    started = time.monotonic()
    done, not_done = nbjobs.wait([slow], timeout=0.3)
    assert time.monotonic() - started >= 0.3
    assert (done, not_done) == (set(), {slow})
    assert nbjobs.wait([slow], timeout=0) == (set(), {slow})
    assert nbjobs.wait([], timeout=0) == (set(), set())


def test_wait_counts_failed_and_cancelled_jobs_as_done(gates: Gates, wait_for: Any) -> None:
    nbjobs.configure(workers=1)
    slow = start_blocked(gates, "slow", wait_for)
    queued = nbjobs.submit(square, 5)
    assert queued.cancel()
    bad = nbjobs.submit(boom, "bad")
    gates.open("slow")
    done, not_done = nbjobs.wait([slow, queued, bad], timeout=60)
    assert (done, not_done) == ({slow, queued, bad}, set())
    assert {j.status for j in done} == {"succeeded", "cancelled", "failed"}


def test_wait_accepts_a_generator_and_duplicates() -> None:
    job = nbjobs.submit(square, 4)
    done, not_done = nbjobs.wait(j for j in [job, job])
    assert (done, not_done) == ({job}, set())


def test_wait_rejects_an_unknown_return_when() -> None:
    job = nbjobs.submit(square, 4)
    with pytest.raises(ValueError, match="return_when"):
        nbjobs.wait([job], return_when="WHENEVER")


@pytest.mark.parametrize("fn", [nbjobs.wait, nbjobs.as_completed])
def test_wait_and_as_completed_refuse_what_is_not_jobs_at_the_call(fn: Any) -> None:
    job = nbjobs.submit(square, 4)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"jobs must be .* not Job; .*job.wait"):
        fn(job)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"not str '.*'.*nbjobs.get"):
        fn([job, job.id])
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"jobs must be .* not NoneType"):
        fn(None)


# ------------------------------------------------------------------------ as_completed
def test_as_completed_yields_in_completion_order(gates: Gates, wait_for: Any) -> None:
    a = start_blocked(gates, "a", wait_for)
    b = start_blocked(gates, "b", wait_for)
    c = nbjobs.submit(square, 3)
    order = nbjobs.as_completed([a, b, c], timeout=60)
    assert next(order) == c
    gates.open("b")
    assert next(order) == b
    gates.open("a")
    assert next(order) == a
    with pytest.raises(StopIteration):
        next(order)


def test_as_completed_yields_finished_jobs_then_raises_wait_timeout(
    gates: Gates, wait_for: Any
) -> None:
    assert issubclass(nbjobs.WaitTimeout, TimeoutError)
    slow = start_blocked(gates, "slow", wait_for)
    fast = nbjobs.submit(square, 2)
    fast.wait(timeout=60)
    started = time.monotonic()
    order = nbjobs.as_completed([slow, fast], timeout=0.3)
    assert next(order) == fast
    with pytest.raises(nbjobs.WaitTimeout):
        next(order)
    assert time.monotonic() - started >= 0.3
    with pytest.raises(TimeoutError):
        next(nbjobs.as_completed([slow], timeout=0))


def test_as_completed_yields_each_job_once() -> None:
    jobs = [nbjobs.submit(square, i) for i in range(3)]
    seen = list(nbjobs.as_completed(iter(jobs + jobs), timeout=60))
    assert sorted(j.id for j in seen) == sorted(j.id for j in jobs)
    assert list(nbjobs.as_completed([], timeout=0)) == []


# ------------------------------------------------------------------------ await
def test_await_a_job_returns_its_result() -> None:
    async def main() -> list[int]:
        first = await nbjobs.submit(square, 6)
        done = nbjobs.submit(square, 7)
        done.wait(timeout=60)
        already = await done
        many = await asyncio.gather(*(nbjobs.submit(square, i) for i in range(3)))
        return [first, already, *many]

    assert asyncio.run(asyncio.wait_for(main(), timeout=60)) == [36, 49, 0, 1, 4]


def test_await_a_failed_job_raises_its_exception() -> None:
    async def main() -> None:
        await nbjobs.submit(boom, "awaited failure")

    with pytest.raises(Boom, match="awaited failure"):
        asyncio.run(asyncio.wait_for(main(), timeout=60))


def test_await_does_not_block_the_event_loop(gates: Gates) -> None:
    """The job is released by a task on the same loop: if `await job` blocked, it never ends."""
    job = nbjobs.submit(blocked, *gates.task("j"), "freed")
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            if ticks == 5:
                gates.open("j")
            await asyncio.sleep(0.01)

    async def main() -> Any:
        tick = asyncio.create_task(ticker())
        try:
            return await job
        finally:
            tick.cancel()

    assert asyncio.run(main()) == "freed"
    assert ticks >= 5


# ------------------------------------------------------------------------ add_done_callback
def test_add_done_callback_is_called_once_with_the_job(gates: Gates, wait_for: Any) -> None:
    slow = start_blocked(gates, "slow", wait_for, value="v")
    calls: list[nbjobs.Job] = []
    slow.add_done_callback(calls.append)
    assert calls == []
    gates.open("slow")
    assert slow.result(timeout=60) == "v"
    wait_for(lambda: calls, timeout=30)
    assert nbjobs.wait([nbjobs.submit(square, 1)], timeout=60).done  # a later sync point
    assert [j.id for j in calls] == [slow.id]
    assert calls[0].status == "succeeded"


def test_add_done_callback_on_a_finished_job_runs_at_once_here() -> None:
    job = nbjobs.submit(square, 2)
    job.wait(timeout=60)
    calls: list[tuple[threading.Thread, nbjobs.Job]] = []
    job.add_done_callback(lambda j: calls.append((threading.current_thread(), j)))
    assert calls == [(threading.current_thread(), job)]


def test_callbacks_fire_for_failed_and_cancelled_jobs(gates: Gates, wait_for: Any) -> None:
    nbjobs.configure(workers=1)
    start_blocked(gates, "slow", wait_for)
    queued = nbjobs.submit(square, 5)
    bad = nbjobs.submit(boom, "bad")
    seen: list[str] = []
    for job in (queued, bad):
        job.add_done_callback(lambda j: seen.append(j.status))
    assert queued.cancel()
    gates.open("slow")
    wait_for(lambda: len(seen) == 2, timeout=60)
    assert sorted(seen) == ["cancelled", "failed"]


def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture, wait_for: Any
) -> None:
    def bad_callback(job: nbjobs.Job) -> None:
        raise RuntimeError("callback broke")

    calls: list[nbjobs.Job] = []
    job = nbjobs.submit(square, 3)
    with caplog.at_level(logging.ERROR, logger="nbjobs"):
        job.add_done_callback(bad_callback)
        job.add_done_callback(calls.append)
        assert job.result(timeout=60) == 9
        wait_for(lambda: calls, timeout=30)
    assert "callback broke" in caplog.text


def test_add_done_callback_rejects_what_is_not_callable() -> None:
    job = nbjobs.submit(square, 3)
    with pytest.raises(TypeError, match="callable"):
        job.add_done_callback("print")  # type: ignore[arg-type]


# ------------------------------------------------------------------------ another process
OTHER_PROCESS = textwrap.dedent(
    """
    import os, sys, time
    import nbjobs

    def gated(gate):
        deadline = time.monotonic() + 60
        while not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise TimeoutError("gate never opened")
            time.sleep(0.005)
        return "from the other process", os.getpid()

    job = nbjobs.submit(gated, sys.argv[1], key="elsewhere")
    print(job.result(timeout=120)[0], flush=True)
    """
)


def _running_elsewhere() -> nbjobs.Job | None:
    try:
        job = nbjobs.get("elsewhere")
    except nbjobs.JobNotFound:
        return None
    return job if job.status == "running" else None


def test_a_job_finished_by_another_process_wakes_callbacks_waiters_and_await(
    tmp_path: Path, wait_for: Any
) -> None:
    script = tmp_path / "other.py"
    script.write_text(OTHER_PROCESS)
    gate = tmp_path / "gate"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(gate)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        job = wait_for(_running_elsewhere, timeout=60)
        calls: list[nbjobs.Job] = []
        job.add_done_callback(calls.append)
        assert nbjobs.wait([job], timeout=0.1) == (set(), {job})

        async def main() -> Any:
            waiting = asyncio.create_task(_await(job))
            await asyncio.sleep(0)
            assert not waiting.done()
            gate.touch()
            return await asyncio.wait_for(waiting, timeout=60)

        value, pid = asyncio.run(main())
        assert value == "from the other process"
        assert pid == proc.pid != os.getpid()
        wait_for(lambda: calls, timeout=30)
        assert [j.id for j in calls] == [job.id]
        assert nbjobs.wait([job], timeout=60) == ({job}, set())
        assert list(nbjobs.as_completed([job], timeout=60)) == [job]
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert out.strip() == "from the other process"
    finally:
        gate.touch()
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


async def _await(job: nbjobs.Job) -> Any:
    return await job


def test_a_waiter_stopped_by_ctrl_c_while_holding_the_done_event_blocks_no_one() -> None:
    """Ctrl-C between a waiter's acquire and release of a job's done event left it taken:
    every later `result()` of that job waited forever."""
    from nbjobs.running.local_job import OneShot

    done = OneShot()
    blocked = threading.Thread(target=done.wait, daemon=True)
    blocked.start()
    done.set()
    # What a KeyboardInterrupt in the first waiter leaves: the event set, its lock taken.
    done._lock.acquire(timeout=10)
    assert done.is_set()
    assert done.wait() and done.wait(timeout=0)
    blocked.join(timeout=30)
    assert not blocked.is_alive()
