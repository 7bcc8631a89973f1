"""Bad input raises at the call, names the argument and what is accepted, and writes nothing."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import nbjobs

GATE = threading.Event()


def add(a: int, b: int = 0) -> int:
    return a + b


def wait_for_gate(seconds: float) -> bool:
    return GATE.wait(seconds)


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    GATE.clear()
    yield GATE
    GATE.set()


def snapshot() -> tuple[dict[str, int], list[tuple[str, str, str | None]]]:
    listed = nbjobs.jobs(limit=10**6)
    return nbjobs.stats(), [(j.id, j.status, j.key) for j in listed]


@pytest.fixture
def finished_job() -> nbjobs.Job:
    job = nbjobs.submit(add, 1, 2, key="existing")
    assert job.result(timeout=60) == 3
    return job


@pytest.mark.parametrize("executor", ["threads", "dask", "", "THREAD"])
def test_unknown_executor(finished_job: nbjobs.Job, executor: str) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument) as info:
        nbjobs.submit(add, 1, executor=executor, key="never-written")
    text = str(info.value)
    assert "executor" in text
    assert repr(executor) in text
    assert "thread" in text  # the accepted value
    assert snapshot() == before
    with pytest.raises(nbjobs.JobNotFound):
        nbjobs.get("never-written")


@pytest.mark.parametrize("executor", [42, b"thread"])
def test_executor_of_the_wrong_type(finished_job: nbjobs.Job, executor: Any) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument, match="executor"):
        nbjobs.submit(add, 1, executor=executor)
    assert snapshot() == before


@pytest.mark.parametrize("key", [42, b"k", 1.5, ("a",), ["fit"]])
def test_key_that_is_not_a_str(finished_job: nbjobs.Job, key: Any) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgumentType) as info:
        nbjobs.submit(add, 1, key=key)
    assert isinstance(info.value, TypeError)
    text = str(info.value)
    assert "key" in text
    assert "str" in text  # what would be accepted
    assert repr(key) in text or type(key).__name__ in text
    assert snapshot() == before


@pytest.mark.parametrize("status", ["done", "SUCCEEDED", "", ["failed", "finished"], 3])
def test_unknown_status_filter(finished_job: nbjobs.Job, status: Any) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument) as info:
        nbjobs.jobs(status=status)
    assert isinstance(info.value, ValueError)
    text = str(info.value)
    assert "status" in text
    for accepted in nbjobs.STATES:
        assert accepted in text
    assert snapshot() == before


BAD_TIMEOUTS = [
    pytest.param(-1, nbjobs.InvalidArgument, id="negative"),
    pytest.param(-0.5, nbjobs.InvalidArgument, id="negative-float"),
    pytest.param(float("nan"), nbjobs.InvalidArgument, id="nan"),
    pytest.param("soon", nbjobs.InvalidArgument, id="str"),
    pytest.param(True, nbjobs.InvalidArgumentType, id="bool"),
    pytest.param([5], nbjobs.InvalidArgumentType, id="list"),
]


def _shown(value: Any) -> str:
    return "nan" if isinstance(value, float) and math.isnan(value) else repr(value)


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS)
def test_bad_timeout_for_result(finished_job: nbjobs.Job, timeout: Any, error: type) -> None:
    before = snapshot()
    record = finished_job.to_dict()
    with pytest.raises(error) as info:
        finished_job.result(timeout=timeout)
    text = str(info.value)
    assert "timeout" in text
    assert _shown(timeout) in text
    assert "None" in text or "number" in text or "second" in text  # what is accepted
    assert snapshot() == before
    assert nbjobs.get("existing").to_dict() == record


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS)
def test_bad_timeout_for_wait(finished_job: nbjobs.Job, timeout: Any, error: type) -> None:
    before = snapshot()
    with pytest.raises(error) as info:
        finished_job.wait(timeout=timeout)
    text = str(info.value)
    assert "timeout" in text
    assert _shown(timeout) in text
    assert snapshot() == before


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS)
def test_bad_timeout_for_exception(finished_job: nbjobs.Job, timeout: Any, error: type) -> None:
    with pytest.raises(error, match="timeout"):
        finished_job.exception(timeout=timeout)


@pytest.mark.parametrize(("timeout", "error"), BAD_TIMEOUTS)
def test_bad_timeout_on_an_unfinished_job_is_checked_before_waiting(
    gate: threading.Event, timeout: Any, error: type
) -> None:
    job = nbjobs.submit(wait_for_gate, 30)
    try:
        with pytest.raises(error, match="timeout"):
            job.result(timeout=timeout)
    finally:
        gate.set()
    job.wait(timeout=60)


def test_bad_input_on_an_explicit_store_writes_nothing(store: nbjobs.Store) -> None:
    store.submit(add, 1, key="a").result(timeout=60)
    before = (store.stats(), [(j.id, j.status) for j in store.jobs(limit=10**6)])
    with pytest.raises(nbjobs.InvalidArgument, match="executor"):
        store.submit(add, 2, executor="nope")
    with pytest.raises(nbjobs.InvalidArgumentType, match="key"):
        store.submit(add, 2, key=7)
    with pytest.raises(nbjobs.InvalidArgument, match="status"):
        store.jobs(status="nope")
    assert (store.stats(), [(j.id, j.status) for j in store.jobs(limit=10**6)]) == before


def test_a_good_timeout_of_zero_polls(gate: threading.Event) -> None:
    job = nbjobs.submit(wait_for_gate, 30)
    try:
        with pytest.raises(nbjobs.WaitTimeout):
            job.result(timeout=0)
        with pytest.raises(TimeoutError):
            job.wait(timeout=0.01)
    finally:
        gate.set()
    assert job.result(timeout=60) is True


def all_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


@pytest.mark.parametrize(
    ("option", "value", "error"),
    [
        ("name", 3, nbjobs.InvalidArgumentType),
        ("name", "", nbjobs.InvalidArgument),
        ("tags", [1], nbjobs.InvalidArgumentType),
        ("tags", 5, nbjobs.InvalidArgumentType),
        ("force", "yes", nbjobs.InvalidArgumentType),
        ("force", 1, nbjobs.InvalidArgumentType),
        ("kwargs", "x=1", nbjobs.InvalidArgumentType),
        ("kwargs", {1: "x"}, nbjobs.InvalidArgumentType),
        ("tags", "", nbjobs.InvalidArgument),
        ("tags", ["a", ""], nbjobs.InvalidArgument),
        # An endless limit or wait would make the job's record unfit for JSON (to_dict).
        ("timeout", math.inf, nbjobs.InvalidArgument),
        ("soft_timeout", math.inf, nbjobs.InvalidArgument),
    ],
)
def test_bad_submit_option(finished_job: nbjobs.Job, option: str, value: Any, error: type) -> None:
    before = snapshot()
    with pytest.raises(error) as info:
        nbjobs.submit(all_kwargs, key="never-written", **{option: value})
    assert option in str(info.value)
    assert snapshot() == before
    with pytest.raises(nbjobs.JobNotFound):
        nbjobs.get("never-written")


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(lambda: {"retries": 1, "backoff": math.inf}, id="backoff"),
        pytest.param(lambda: {"retries": nbjobs.Retry(1, delay=math.inf)}, id="Retry-delay"),
        pytest.param(lambda: {"retries": nbjobs.Retry(1, max_delay=math.nan)}, id="Retry-max"),
    ],
)
def test_an_endless_backoff_is_refused(finished_job: nbjobs.Job, options: Any) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument, match=r"backoff|delay"):
        nbjobs.submit(all_kwargs, key="never-written", **options())
    assert snapshot() == before


def test_an_argument_given_both_directly_and_in_kwargs(finished_job: nbjobs.Job) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument, match="alpha"):
        nbjobs.submit(all_kwargs, alpha=1, kwargs={"alpha": 2})
    assert snapshot() == before


def test_a_function_that_is_not_callable(finished_job: nbjobs.Job) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgumentType, match="fn"):
        nbjobs.submit(42)  # type: ignore[arg-type]
    assert snapshot() == before


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: nbjobs.get(3), "id_or_key"),
        (lambda: nbjobs.forget(3), "key"),
        (lambda: nbjobs.jobs(limit=0), "limit"),
        (lambda: nbjobs.jobs(limit=-5), "limit"),
        (lambda: nbjobs.jobs(limit=True), "limit"),
        (lambda: nbjobs.jobs(name=3), "name"),
        (lambda: nbjobs.jobs(tag=["a"]), "tag"),
        (lambda: nbjobs.configure(workers=0), "workers"),
        (lambda: nbjobs.configure(workers=2.5), "workers"),
        (lambda: nbjobs.configure(executor="nope"), "executor"),
        (lambda: nbjobs.configure(store=42), "store"),
    ],
)
def test_bad_arguments_of_other_functions(
    finished_job: nbjobs.Job, call: Any, argument: str
) -> None:
    before = snapshot()
    with pytest.raises(nbjobs.InvalidArgument) as info:
        call()
    assert argument in str(info.value)
    assert snapshot() == before
    assert nbjobs.get("existing").status == "succeeded"


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("retries", 1),
        ("retry_on", (ConnectionError,)),
        ("backoff", 2.0),
        ("timeout", 30),
        ("soft_timeout", 20),
    ],
)
def test_reserved_option_names_never_reach_the_function(option: str, value: Any) -> None:
    """Options are the submit's own; a function gets such names only through kwargs={...}."""
    try:
        job = nbjobs.submit(all_kwargs, **{option: value})
    except nbjobs.NbjobsError as exc:  # an option not supported yet must say so at the call
        assert option in str(exc)
        return
    assert option not in job.result(timeout=60)
