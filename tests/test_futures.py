"""`nbjobs.Executor` behaves like the standard library's `concurrent.futures.Executor`.

Every test takes an executor factory and runs against `ThreadPoolExecutor` (the reference)
and `nbjobs.Executor` with threads and with processes, so any difference shows up as a
failure of exactly one parametrization. Tasks that must stay blocked wait for a gate file
(so the same task works in a child process), with a deadline of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import os
import time
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import pytest
from gates import Gates, blocked

import nbjobs

pytestmark = pytest.mark.timeout(180)


class Boom(Exception):
    """A user exception that must come back through `Future.result()` as itself."""


def square(x: int) -> int:
    return x * x


def slow_square(x: int, delay: float) -> int:
    time.sleep(delay)
    return x * x


def boom(message: str) -> None:
    raise Boom(message)


def mark(path: str) -> str:
    with open(path, "a") as f:
        f.write("ran\n")
    return "marked"


def interval(seconds: float) -> tuple[int, float, float]:
    start = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), start, time.monotonic()


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


# ------------------------------------------------------------------------ the factories
def stdlib_threads(max_workers: int | None = None) -> cf.Executor:
    return cf.ThreadPoolExecutor(max_workers)


def nbjobs_threads(max_workers: int | None = None) -> cf.Executor:
    return nbjobs.Executor(max_workers, executor="thread")


def nbjobs_processes(max_workers: int | None = None) -> cf.Executor:
    return nbjobs.Executor(max_workers, executor="process")


FACTORIES = [
    pytest.param(stdlib_threads, id="ThreadPoolExecutor"),
    pytest.param(nbjobs_threads, id="nbjobs-thread"),
    pytest.param(nbjobs_processes, id="nbjobs-process"),
]
NBJOBS_FACTORIES = FACTORIES[1:]

Make = Callable[..., cf.Executor]


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    g = Gates(tmp_path / "gates")
    yield g
    g.open_all()


def _made(request: pytest.FixtureRequest, gates: Gates) -> Iterator[Make]:
    made: list[cf.Executor] = []

    def make(max_workers: int | None = None) -> cf.Executor:
        executor: cf.Executor = request.param(max_workers)
        made.append(executor)
        return executor

    yield make
    gates.open_all()
    for executor in made:
        executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(params=FACTORIES)
def make(request: pytest.FixtureRequest, gates: Gates) -> Iterator[Make]:
    """`make(max_workers)`: an executor of the parametrized kind, shut down after the test."""
    yield from _made(request, gates)


@pytest.fixture(params=NBJOBS_FACTORIES)
def make_nbjobs(request: pytest.FixtureRequest, gates: Gates) -> Iterator[Make]:
    yield from _made(request, gates)


def start_blocked(
    executor: cf.Executor, gates: Gates, name: str, value: Any, wait_for: Any
) -> cf.Future[Any]:
    """Submit a task that blocks on its gate and wait until it is really running."""
    future: cf.Future[Any] = gates.start(executor.submit, name, value, wait_for)
    return future


# ------------------------------------------------------------------------ the basics
def test_it_is_an_executor_and_submit_returns_a_real_future(make: Make) -> None:
    executor = make(2)
    assert isinstance(executor, cf.Executor)
    future = executor.submit(square, 7)
    assert type(future) is cf.Future
    assert future.result(timeout=60) == 49
    assert future.done()
    assert not future.cancelled()
    assert future.exception(timeout=0) is None


def test_an_exception_comes_back_through_the_future(make: Make) -> None:
    executor = make(2)
    future = executor.submit(boom, "no luck 42")
    with pytest.raises(Boom, match="no luck 42"):
        future.result(timeout=60)
    exc = future.exception(timeout=0)
    assert isinstance(exc, Boom)
    assert exc.args == ("no luck 42",)
    assert future.done()
    assert not future.cancelled()


def test_keyword_arguments_go_to_the_function(make: Make) -> None:
    executor = make(2)
    assert executor.submit(slow_square, 5, delay=0.0).result(timeout=60) == 25


def echo_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def test_every_keyword_goes_to_the_function(make: Make) -> None:
    """Names that are options of `nbjobs.submit` are just arguments for `Executor.submit`."""
    executor = make(2)
    sent = {"key": "k", "name": "n", "timeout": 5, "retries": 2, "executor": "x", "kwargs": {}}
    assert executor.submit(echo_kwargs, **sent).result(timeout=60) == sent


def test_map_keeps_the_order_of_its_inputs(make: Make) -> None:
    executor = make(3)
    # Later inputs finish first, so completion order is not input order.
    delays = [0.3, 0.2, 0.1, 0.0, 0.0, 0.0]
    assert list(executor.map(slow_square, range(6), delays, timeout=60)) == [
        x * x for x in range(6)
    ]
    assert list(executor.map(pow, range(5), repeat(3))) == [x**3 for x in range(5)]
    assert list(executor.map(square, [])) == []


def test_map_with_a_timeout_raises_timeout_error(make: Make, gates: Gates) -> None:
    executor = make(2)
    started_marker, gate, release_all = gates.task("slow")
    started = time.monotonic()
    results = executor.map(blocked, [started_marker], [gate], [release_all], ["late"], timeout=0.3)
    with pytest.raises(TimeoutError):
        next(results)
    assert time.monotonic() - started >= 0.3


def test_map_raises_the_first_exception_when_iterated(make: Make) -> None:
    executor = make(2)
    results = executor.map(boom, ["first", "second"])
    with pytest.raises(Boom, match="first"):
        list(results)


def test_add_done_callback_is_called_once_with_the_future(make: Make, wait_for: Any) -> None:
    executor = make(2)
    calls: list[cf.Future[Any]] = []
    future = executor.submit(square, 4)
    future.add_done_callback(calls.append)
    assert future.result(timeout=60) == 16
    wait_for(lambda: calls, timeout=30)
    late: list[cf.Future[Any]] = []
    future.add_done_callback(late.append)  # already done: called at once, here
    assert late == [future]
    assert calls == [future]


# ------------------------------------------------------------------------ waiting
def test_wait_first_completed_then_all_completed(make: Make, gates: Gates, wait_for: Any) -> None:
    executor = make(2)
    slow = start_blocked(executor, gates, "slow", "slow", wait_for)
    fast = executor.submit(square, 3)
    done, not_done = cf.wait([slow, fast], timeout=60, return_when=cf.FIRST_COMPLETED)
    assert done == {fast}
    assert not_done == {slow}

    done, not_done = cf.wait([slow, fast], timeout=0.2)
    assert (done, not_done) == ({fast}, {slow})

    gates.open("slow")
    done, not_done = cf.wait([slow, fast], timeout=60, return_when=cf.ALL_COMPLETED)
    assert (done, not_done) == ({slow, fast}, set())
    assert slow.result(timeout=0) == "slow"


def test_wait_first_exception(make: Make, gates: Gates, wait_for: Any) -> None:
    executor = make(2)
    slow = start_blocked(executor, gates, "slow", "slow", wait_for)
    bad = executor.submit(boom, "bad")
    done, not_done = cf.wait([slow, bad], timeout=60, return_when=cf.FIRST_EXCEPTION)
    assert (done, not_done) == ({bad}, {slow})


def test_as_completed_yields_in_completion_order(make: Make, gates: Gates, wait_for: Any) -> None:
    executor = make(3)
    a = start_blocked(executor, gates, "a", "a", wait_for)
    b = start_blocked(executor, gates, "b", "b", wait_for)
    c = executor.submit(square, 2)
    order = cf.as_completed([a, b, c], timeout=60)
    assert next(order) is c
    gates.open("b")
    assert next(order) is b
    gates.open("a")
    assert next(order) is a
    with pytest.raises(StopIteration):
        next(order)


def test_as_completed_with_a_timeout_raises_timeout_error(
    make: Make, gates: Gates, wait_for: Any
) -> None:
    executor = make(2)
    slow = start_blocked(executor, gates, "slow", "slow", wait_for)
    fast = executor.submit(square, 2)
    assert fast.result(timeout=60) == 4
    order = cf.as_completed([slow, fast], timeout=0.3)
    assert next(order) is fast
    with pytest.raises(TimeoutError):
        next(order)


def test_asyncio_wrap_future_awaits_results_and_errors(make: Make) -> None:
    executor = make(2)

    async def main() -> tuple[list[int], BaseException | None]:
        values = await asyncio.gather(
            *(asyncio.wrap_future(executor.submit(square, i)) for i in range(4))
        )
        try:
            await asyncio.wrap_future(executor.submit(boom, "async"))
        except Boom as exc:
            return values, exc
        return values, None

    values, error = asyncio.run(asyncio.wait_for(main(), timeout=60))
    assert values == [0, 1, 4, 9]
    assert isinstance(error, Boom)


# ------------------------------------------------------------------------ cancel
def test_cancel_a_pending_future(make: Make, gates: Gates, tmp_path: Path, wait_for: Any) -> None:
    executor = make(1)
    log = tmp_path / "ran.log"
    first = start_blocked(executor, gates, "first", "first", wait_for)
    second = executor.submit(mark, str(log))
    assert first.running()
    assert not second.running()
    assert not second.done()

    assert second.cancel() is True
    assert second.cancelled()
    assert second.done()
    with pytest.raises(cf.CancelledError):
        second.result(timeout=10)

    assert first.cancel() is False  # running: cannot be cancelled
    assert not first.cancelled()
    gates.open("first")
    assert first.result(timeout=60) == "first"
    # The standard library counts a cancelled future as done for wait() once its worker
    # has skipped it ("cancelled and notified"), so wait after the first task is through.
    done, not_done = cf.wait([first, second], timeout=30)
    assert (done, not_done) == ({first, second}, set())
    assert executor.submit(mark, str(log)).result(timeout=60) == "marked"
    assert lines(log) == 1, "the cancelled call ran"


# ------------------------------------------------------------------------ shutdown
def test_shutdown_wait_true_waits_for_running_and_queued_work(make: Make) -> None:
    executor = make(1)
    futures = [executor.submit(slow_square, i, 0.3) for i in range(3)]
    executor.shutdown(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == [0, 1, 4]


def test_shutdown_cancel_futures_cancels_what_has_not_started(
    make: Make, gates: Gates, tmp_path: Path, wait_for: Any
) -> None:
    executor = make(1)
    log = tmp_path / "ran.log"
    first = start_blocked(executor, gates, "first", "first", wait_for)
    rest = [executor.submit(mark, str(log)) for _ in range(3)]
    executor.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in rest)
    gates.open("first")
    assert first.result(timeout=60) == "first"
    # (ThreadPoolExecutor never "notifies" futures cancelled by shutdown, so
    # concurrent.futures.wait would not count them: check them one by one.)
    for future in rest:
        assert future.done()
        with pytest.raises(cf.CancelledError):
            future.result(timeout=10)
    assert lines(log) == 0


def test_shutdown_without_wait_returns_while_work_is_running(
    make: Make, gates: Gates, wait_for: Any
) -> None:
    executor = make(1)
    first = start_blocked(executor, gates, "first", "first", wait_for)
    executor.shutdown(wait=False)
    assert not first.done(), "shutdown(wait=False) waited for the running task"
    gates.open("first")
    assert first.result(timeout=60) == "first"


def test_submit_after_shutdown_raises_runtime_error(make: Make) -> None:
    executor = make(2)
    assert executor.submit(square, 2).result(timeout=60) == 4
    executor.shutdown(wait=True)
    with pytest.raises(RuntimeError):
        executor.submit(square, 3)
    executor.shutdown(wait=True)  # a second shutdown is harmless


def test_the_context_manager_returns_the_executor_and_waits(make: Make) -> None:
    outer = make(2)
    with outer as executor:
        assert executor is outer
        futures = [executor.submit(slow_square, i, 0.2) for i in range(3)]
    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == [0, 1, 4]
    with pytest.raises(RuntimeError):
        executor.submit(square, 1)


# ------------------------------------------------------------------------ max_workers
def test_max_workers_bounds_concurrency(make: Make, gates: Gates, wait_for: Any) -> None:
    executor = make(2)
    # Two tasks can run at once...
    a = start_blocked(executor, gates, "a", "a", wait_for)
    b = start_blocked(executor, gates, "b", "b", wait_for)
    gates.open("a")
    gates.open("b")
    assert (a.result(timeout=60), b.result(timeout=60)) == ("a", "b")
    # ...and never more than two.
    spans = list(executor.map(interval, [0.15] * 8, timeout=120))
    events = sorted([(start, 1) for _, start, _ in spans] + [(end, -1) for _, _, end in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    assert peak <= 2
    assert len({pid for pid, _, _ in spans}) <= 2


@pytest.mark.parametrize("bad", [0, -1])
def test_max_workers_must_be_positive(make: Make, bad: int) -> None:
    with pytest.raises(ValueError):
        make(bad)


def test_default_max_workers_runs_work(make: Make) -> None:
    executor = make()
    assert sorted(executor.map(square, range(10))) == [x * x for x in range(10)]


# ------------------------------------------------------------------------ nbjobs only
def test_executor_calls_are_jobs_in_the_store(make_nbjobs: Make) -> None:
    with make_nbjobs(2) as executor:
        assert list(executor.map(square, range(5))) == [0, 1, 4, 9, 16]
        with pytest.raises(Boom):
            executor.submit(boom, "recorded").result(timeout=60)
    jobs = nbjobs.jobs()
    assert len(jobs) == 6
    assert sorted(j.status for j in jobs) == ["failed"] + ["succeeded"] * 5
    assert sorted(j.result(timeout=10) for j in jobs if j.status == "succeeded") == [
        0,
        1,
        4,
        9,
        16,
    ]
    assert {j.name for j in jobs} == {"square", "boom"}
    assert nbjobs.stats()["succeeded"] == 5


def test_a_cancelled_future_cancels_its_job(make_nbjobs: Make, gates: Gates, wait_for: Any) -> None:
    executor = make_nbjobs(1)
    first = start_blocked(executor, gates, "first", "first", wait_for)
    second = executor.submit(square, 9)
    assert second.cancel()
    # Stricter than ThreadPoolExecutor: the cancelled job is finished at once, so wait()
    # counts it as done even while the only worker is still busy.
    done, not_done = cf.wait([second], timeout=30)
    assert (done, not_done) == ({second}, set())
    assert not first.done()
    gates.open("first")
    assert first.result(timeout=60) == "first"
    executor.shutdown(wait=True)
    statuses = sorted(j.status for j in nbjobs.jobs())
    assert statuses == ["cancelled", "succeeded"]
