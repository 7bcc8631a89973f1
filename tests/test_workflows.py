"""Workflows: a job passed as an argument is a dependency; chain, group and chord."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import Gates

import nbjobs
from nbjobs.calls.refs import JobRef

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    g = Gates(tmp_path / "gates")
    yield g
    g.open_all()


def add(a: int, b: int) -> int:
    return a + b


def total(values: list[int]) -> int:
    return sum(values)


def fails(message: str) -> None:
    raise ValueError(message)


def count_call(path: str, value: Any) -> Any:
    with open(path, "a") as f:
        f.write("x")
    return value


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_job_given_as_argument_waits_for_it_and_receives_its_result(
    store: nbjobs.Store, gates: Gates, wait_for: Callable[..., Any], executor: str
) -> None:
    first = gates.start(store.submit, "first", 40, wait_for)
    second = store.submit(add, first, 2, executor=executor)
    assert second.status == "pending"
    assert second.record().deps == (first.id,)
    gates.open("first")
    assert second.result(timeout=60) == 42


def test_jobs_inside_lists_and_dicts_are_dependencies_too(store: nbjobs.Store) -> None:
    a, b = store.submit(pow, 2, 3), store.submit(pow, 3, 2)
    job = store.submit(lambda xs, d: (xs, d), [a, (b, 1)], {"k": a, "n": 5})
    assert job.result(timeout=60) == ([8, (9, 1)], {"k": 8, "n": 5})
    assert job.record().deps == (a.id, b.id)


def test_a_finished_dependency_lets_the_job_run_at_once(store: nbjobs.Store) -> None:
    done = store.submit(pow, 2, 5)
    assert done.result(timeout=60) == 32
    assert store.submit(add, done, 1).result(timeout=60) == 33


def test_a_failed_dependency_fails_the_dependents_without_running_them(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    bad = store.submit(fails, "no data")
    child = store.submit(count_call, str(calls), bad)
    grandchild = store.submit(count_call, str(calls), child)
    with pytest.raises(nbjobs.DependencyFailed, match=f"depends on job {bad.id}.*no data"):
        child.result(timeout=60)
    with pytest.raises(nbjobs.DependencyFailed, match="did not run either"):
        grandchild.result(timeout=60)
    assert not calls.exists(), "a dependent ran although its dependency failed"
    assert isinstance(child.exception(), nbjobs.JobError)
    assert store.stats()["failed"] == 3


def test_a_cancelled_dependency_fails_its_dependent(
    store: nbjobs.Store, gates: Gates, wait_for: Callable[..., Any]
) -> None:
    running = gates.start(store.submit, "busy", 1, wait_for)
    dep = store.submit(add, running, 1)  # pending: it waits for the running one
    dependent = store.submit(add, dep, 1)
    assert dep.cancel()
    with pytest.raises(nbjobs.DependencyFailed, match="cancelled"):
        dependent.result(timeout=60)
    gates.open("busy")
    assert running.result(timeout=60) == 1
    store.flush()
    assert dep.status == "cancelled"


def test_cancelling_a_waiting_dependent_keeps_it_from_running(
    store: nbjobs.Store, gates: Gates, wait_for: Callable[..., Any], tmp_path: Path
) -> None:
    calls = tmp_path / "calls"
    first = gates.start(store.submit, "first", 1, wait_for)
    waiting = store.submit(count_call, str(calls), first)
    assert waiting.cancel()
    gates.open("first")
    assert first.result(timeout=60) == 1
    with pytest.raises(nbjobs.JobCancelled):
        waiting.result(timeout=60)
    store.flush()
    assert waiting.status == "cancelled"
    assert not calls.exists()


def test_a_failed_dependent_runs_when_retried_after_its_dependency_succeeds(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    flag = tmp_path / "ok"
    dep = store.submit(_fails_until, str(flag))
    dependent = store.submit(add, dep, 1)
    with pytest.raises(nbjobs.DependencyFailed):
        dependent.result(timeout=60)
    flag.touch()
    assert store.retry(dep.id).result(timeout=60) == 10
    assert store.retry(dependent.id).result(timeout=60) == 11


def _fails_until(flag: str) -> int:
    if not Path(flag).exists():
        raise RuntimeError("not yet")
    return 10


def test_a_job_of_another_store_is_refused_and_nothing_is_written(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    other = nbjobs.Store(tmp_path / "other")
    try:
        foreign = other.submit(pow, 2, 2)
        with pytest.raises(nbjobs.InvalidArgument, match="another store"):
            store.submit(add, foreign, 1)
        assert sum(store.stats().values()) == 0
    finally:
        other.close()


def test_a_waiting_dependent_is_interrupted_with_its_kernel_and_resumes(
    tmp_path: Path, gates: Gates, wait_for: Callable[..., Any]
) -> None:
    path = tmp_path / "s"
    s = nbjobs.Store(path)
    first = gates.start(s.submit, "first", 20, wait_for)
    dependent = s.submit(add, first, 1)
    dep_id, dependent_id = first.id, dependent.id
    s.close()  # the kernel goes away: both are interrupted, nothing runs by surprise
    gates.open("first")
    s = nbjobs.Store(path)
    try:
        assert {s.get(dep_id).status, s.get(dependent_id).status} == {"interrupted"}
        resumed = {job.id for job in s.resume()}
        assert resumed == {dep_id, dependent_id}
        assert s.get(dependent_id).result(timeout=60) == 21
    finally:
        s.close()


def test_a_keyed_dependent_is_found_again_with_the_same_dependency(store: nbjobs.Store) -> None:
    dep = store.submit(pow, 2, 4, key="dep")
    job = store.submit(add, dep, 1, key=nbjobs.auto)
    assert job.result(timeout=60) == 17
    again = store.submit(add, store.get("dep"), 1, key=nbjobs.auto)
    assert again.id == job.id


def test_a_map_can_share_a_job_among_its_items(store: nbjobs.Store) -> None:
    base = store.submit(pow, 10, 2)
    jobs = store.map(add, [1, 2, 3], b=base, executor="process")
    assert [j.result(timeout=60) for j in jobs] == [101, 102, 103]
    assert all(j.record().deps == (base.id,) for j in jobs)


def test_a_job_pickles_as_a_reference() -> None:
    job = nbjobs.submit(pow, 2, 2)
    assert pickle.loads(pickle.dumps(job)) == JobRef(job.id)


# ---------------------------------------------------------------- chain, group, chord
def load(n: int) -> list[int]:
    return list(range(n))


def double(values: list[int]) -> list[int]:
    return [2 * v for v in values]


@nbjobs.task(retries=1)
def halve(value: int) -> float:
    return value / 2


def test_chain_passes_each_result_to_the_next_step() -> None:
    last = nbjobs.chain(functools.partial(load, 5), double, total, halve)
    assert last.result(timeout=60) == 10.0
    assert last.name == "halve"


def test_a_chain_stops_at_the_failing_step(tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    last = nbjobs.chain(
        functools.partial(fails, "broken"), functools.partial(count_call, str(calls))
    )
    with pytest.raises(nbjobs.DependencyFailed, match="broken"):
        last.result(timeout=60)
    assert not calls.exists()


def test_group_starts_every_call_and_chord_sums_them() -> None:
    jobs = nbjobs.group(functools.partial(pow, 2, i) for i in range(5))
    assert [j.result(timeout=60) for j in jobs] == [1, 2, 4, 8, 16]
    both = nbjobs.group(functools.partial(pow, 3, 2), jobs[0])
    assert both[1] is jobs[0]
    summed = nbjobs.chord([functools.partial(pow, 3, i) for i in range(4)], total)
    assert summed.result(timeout=60) == 40


def test_a_chord_fails_when_one_of_its_header_fails() -> None:
    summed = nbjobs.chord([functools.partial(pow, 2, 2), functools.partial(fails, "x")], total)
    with pytest.raises(nbjobs.DependencyFailed):
        summed.result(timeout=60)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: nbjobs.chain(), nbjobs.InvalidArgument, "at least one step"),
        (lambda: nbjobs.chain(1), nbjobs.InvalidArgumentType, "chain step 0 must be"),
        (lambda: nbjobs.chain(load, "x"), nbjobs.InvalidArgumentType, "chain step 1 must be"),
        (lambda: nbjobs.chain(load, key="k"), nbjobs.InvalidArgument, "key must be None"),
        (lambda: nbjobs.group([load, 3]), nbjobs.InvalidArgumentType, "group item 1 must be"),
        (lambda: nbjobs.chord([load], 5), nbjobs.InvalidArgumentType, "body must be"),
    ],
)
def test_bad_shapes_are_refused_before_anything_is_submitted(
    call: Callable[[], Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        call()
    assert sum(nbjobs.stats().values()) == 0
