"""@nbjobs.task: a function with default job options, called, submitted and mapped."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import nbjobs

pytestmark = pytest.mark.timeout(120)


def flaky(counter: str, failures: int) -> str:
    """Fails `failures` times (counted in a file), then succeeds."""
    path = Path(counter)
    seen = int(path.read_text()) if path.exists() else 0
    path.write_text(str(seen + 1))
    if seen < failures:
        raise ConnectionError(f"attempt {seen + 1} failed")
    return "ok"


@nbjobs.task
def square(x: int) -> int:
    """Square a number."""
    return x * x


@nbjobs.task(retries=2, backoff=0, timeout=600, name="fit", tags="model")
def fit(counter: str, failures: int) -> str:
    return flaky(counter, failures)


@nbjobs.task
async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


def test_a_bare_task_is_still_the_function() -> None:
    assert isinstance(square, nbjobs.Task)
    assert square(7) == 49
    assert square.__name__ == "square" and square.__doc__ == "Square a number."
    assert square.__wrapped__(3) == 9  # type: ignore[attr-defined]
    assert repr(square) == "nbjobs.Task(square)"


def test_a_bare_task_submits_and_maps_to_the_default_store() -> None:
    job = square.submit(6)
    assert job.result(timeout=30) == 36
    assert job.name == "square"
    jobs = square.map([1, 2, 3])
    assert [j.result(timeout=30) for j in jobs] == [1, 4, 9]
    assert nbjobs.get(job.id).id == job.id


def test_the_task_options_are_the_defaults_of_each_job(tmp_path: Path) -> None:
    assert repr(fit) == (
        "nbjobs.Task(fit, name='fit', tags='model', retries=2, backoff=0, timeout=600)"
    )
    job = fit.submit(str(tmp_path / "n"), 2)
    assert job.result(timeout=30) == "ok"
    assert job.attempts == 3
    rec = job.record()
    assert (rec.name, rec.tags, rec.timeout) == ("fit", ("model",), 600.0)


def test_options_given_per_call_override_the_task(tmp_path: Path) -> None:
    job = fit.submit(str(tmp_path / "n"), 2, retries=0, name="fit-once", timeout=30)
    with pytest.raises(ConnectionError):
        job.result(timeout=30)
    rec = job.record()
    assert (rec.name, rec.timeout, rec.attempts) == ("fit-once", 30.0, 1)
    jobs = fit.map([str(tmp_path / "a"), str(tmp_path / "b")], [0, 1], tags=["sweep"])
    assert [j.result(timeout=30) for j in jobs] == ["ok", "ok"]
    assert [j.record().tags for j in jobs] == [("sweep",), ("sweep",)]
    assert [j.attempts for j in jobs] == [1, 2]  # the task's retries still apply


def test_a_task_maps_with_shared_keyword_arguments(store: nbjobs.Store) -> None:
    @nbjobs.task(store=store, key=nbjobs.auto)
    def scale(x: int, factor: int) -> int:
        return x * factor

    jobs = scale.map([1, 2, 3], factor=10)
    assert [j.result(timeout=30) for j in jobs] == [10, 20, 30]
    again = scale.map([1, 2, 3], factor=10)
    assert [j.id for j in again] == [j.id for j in jobs]
    assert scale.submit(4, factor=10).key == scale.submit(4, factor=10).key
    assert scale.submit(4, factor=10).key != scale.submit(4, factor=11).key


def test_a_key_function_receives_the_call_arguments(store: nbjobs.Store) -> None:
    @nbjobs.task(store=store, key=lambda x, factor=1: f"scale-{x}-{factor}")
    def scale(x: int, factor: int = 1) -> int:
        return x * factor

    assert scale.submit(3, factor=2).key == "scale-3-2"
    assert [j.key for j in scale.map([1, 2])] == ["scale-1-1", "scale-2-1"]
    assert scale.submit(5, key="explicit").key == "explicit"
    assert [j.key for j in scale.map([1, 2], key="p")] == ["p/0", "p/1"]


def test_a_task_bound_to_a_store_submits_there(store: nbjobs.Store) -> None:
    bound = nbjobs.task(store=store)(square.fn)
    job = bound.submit(5)
    assert job.result(timeout=30) == 25
    assert store.get(job.id).id == job.id
    with pytest.raises(nbjobs.JobNotFound):
        nbjobs.get(job.id)
    assert bound.store is store
    assert "store=nbjobs.Store(" in repr(bound)


def test_an_unbound_task_follows_the_default_store_at_call_time(tmp_path: Path) -> None:
    nbjobs.configure(store=tmp_path / "elsewhere")
    job = square.submit(2)
    assert job.result(timeout=30) == 4
    assert square.store.path == tmp_path / "elsewhere"
    assert nbjobs.default_store().get(job.id).id == job.id


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"timeout": -1}, "timeout"),
        ({"soft_timeout": 5, "timeout": 5}, "soft_timeout"),
        ({"executor": "cluster"}, "executor"),
        ({"retries": "often"}, "retries"),
        ({"tags": 3}, "tags"),
        ({"name": ""}, "name"),
        ({"force": 1}, "force"),
        ({"key": "fixed"}, "key"),
        ({"key": 12}, "key"),
        ({"store": "/tmp/jobs"}, "store"),
    ],
)
def test_bad_options_raise_at_decoration(options: dict[str, Any], named: str) -> None:
    with pytest.raises(nbjobs.InvalidArgument) as info:
        nbjobs.task(**options)(square.fn)
    assert named in str(info.value)


def test_an_unknown_option_and_a_non_function_are_refused() -> None:
    with pytest.raises(TypeError, match="retry"):
        nbjobs.task(retry=3)  # type: ignore[call-overload]
    with pytest.raises(nbjobs.InvalidArgumentType, match="decorates a function"):
        nbjobs.task()(42)  # type: ignore[arg-type]


def test_async_tasks_run_on_their_own_loop() -> None:
    assert asyncio.run(async_add(1, 2)) == 3
    assert async_add.submit(1, 2).result(timeout=30) == 3
    jobs = async_add.map([1, 2], [10, 20])
    assert [j.result(timeout=30) for j in jobs] == [11, 22]


def test_a_pickled_task_still_calls_and_submits(store: nbjobs.Store) -> None:
    @nbjobs.task(store=store, timeout=60)
    def cube(x: int) -> int:
        return x**3

    copy = cloudpickle.loads(cloudpickle.dumps(cube))
    assert copy(2) == 8
    assert copy.defaults == {"timeout": 60}
    assert copy.store is store  # the store open in this process, found by its path
    assert copy.submit(3).result(timeout=30) == 27


def test_a_task_inside_another_process_job(store: nbjobs.Store) -> None:
    cube = nbjobs.task(store=store)(lambda x: x**3)

    def total(n: int) -> int:
        return sum(cube(i) for i in range(n))

    assert store.submit(total, 4, executor="process").result(timeout=60) == 36


def test_a_pickled_task_submits_from_another_process(store: nbjobs.Store) -> None:
    @nbjobs.task(store=store, tags="remote")
    def cube(x: int) -> int:
        return x**3

    script = textwrap.dedent(
        """
        import sys, cloudpickle
        task = cloudpickle.loads(sys.stdin.buffer.read())
        job = task.submit(4)
        print(job.id, job.result(timeout=60))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        input=cloudpickle.dumps(cube),
        capture_output=True,
        check=True,
        timeout=90,
        env={**__import__("os").environ, "PYTHONPATH": str(Path(nbjobs.__file__).parents[1])},
    )
    job_id, result = out.stdout.decode().split()
    assert result == "64"
    assert store.get(job_id).record().tags == ("remote",)
