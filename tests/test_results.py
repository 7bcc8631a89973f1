"""Results and errors: stored on disk, loaded on demand, never kept alive by the kernel."""

from __future__ import annotations

import gc
import json
import re
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import nbjobs


class Payload:
    """A result type that can be weak-referenced."""

    def __init__(self, values: list[int]) -> None:
        self.values = values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Payload) and other.values == self.values

    __hash__ = None  # type: ignore[assignment]


class LockedError(Exception):
    """An exception that cannot be pickled: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


RETURNED: list[weakref.ref[Payload]] = []


def make_list(n: int) -> list[int]:
    return list(range(n))


def make_payload(n: int) -> Payload:
    value = Payload(list(range(n)))
    RETURNED.append(weakref.ref(value))
    return value


def make_lock() -> Any:
    return threading.Lock()


def raise_locked_error() -> None:
    raise LockedError("boom 42 cannot travel")


def raise_value_error() -> None:
    raise ValueError("plain failure 7")


def add(a: int, b: int) -> int:
    return a + b


def take_anything(thing: Any) -> str:
    return type(thing).__name__


def numbers() -> Iterator[int]:
    yield from range(3)


def test_result_is_loaded_from_disk_each_time() -> None:
    job = nbjobs.submit(make_list, 1000)
    a = job.result(timeout=60)
    b = job.result(timeout=60)
    assert a == b == list(range(1000))
    assert a is not b
    again = nbjobs.get(job.id).result(timeout=60)
    assert again == a
    assert again is not a


def test_neither_the_kernel_nor_the_handle_keep_the_result_alive(wait_for: Any) -> None:
    RETURNED.clear()
    job = nbjobs.submit(make_payload, 100)
    loaded = job.result(timeout=60)
    assert loaded == Payload(list(range(100)))
    assert RETURNED, "the function did not run in this process (thread executor)"
    original = RETURNED[0]
    loaded_ref = weakref.ref(loaded)
    del loaded

    def all_released() -> bool:
        gc.collect()
        return original() is None and loaded_ref() is None

    # The job thread may still be unwinding right after the record says "succeeded".
    wait_for(all_released, timeout=10)
    assert job.status == "succeeded"  # the handle is still usable
    assert job.result(timeout=60) == Payload(list(range(100)))


def test_a_result_that_cannot_be_pickled_fails_the_job_and_keeps_the_store_intact() -> None:
    job = nbjobs.submit(make_lock)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.error is not None
    assert re.search("pickl", f"{job.error['type']} {job.error['message']}", re.IGNORECASE)
    with pytest.raises(Exception, match=r"(?i)pickl") as info:
        job.result(timeout=60)
    assert isinstance(info.value, nbjobs.ResultNotPicklable | nbjobs.JobFailed)
    exc = job.exception(timeout=60)
    assert exc is not None
    assert re.search("pickl", str(exc), re.IGNORECASE)

    # The store still works.
    assert nbjobs.submit(add, 2, 3).result(timeout=60) == 5
    stats = nbjobs.stats()
    assert stats["failed"] == 1
    assert stats["succeeded"] == 1


def test_an_exception_that_cannot_be_pickled_keeps_type_message_and_traceback() -> None:
    job = nbjobs.submit(raise_locked_error)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.error is not None
    assert "LockedError" in job.error["type"]
    assert "boom 42 cannot travel" in job.error["message"]

    with pytest.raises(Exception) as info:
        job.result(timeout=60)
    raised = info.value
    described = f"{type(raised).__name__} {getattr(raised, 'type_name', '')} {raised}"
    assert "LockedError" in described
    assert "boom 42 cannot travel" in described
    tb = getattr(raised, "traceback", None) or "\n".join(getattr(raised, "__notes__", []))
    assert "raise_locked_error" in tb
    assert "LockedError" in tb

    assert nbjobs.submit(add, 1, 1).result(timeout=60) == 2


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("this error cannot be printed")


def raise_unprintable() -> None:
    raise Unprintable("lost words")


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_an_exception_whose_str_raises_keeps_its_type_and_traceback(executor: str) -> None:
    job = nbjobs.submit(raise_unprintable, executor=executor)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.error is not None
    assert job.error["type"].endswith("Unprintable"), job.error
    assert "str() raised RuntimeError" in job.error["message"]
    tb = job.traceback()
    assert tb is not None and "raise_unprintable" in tb
    assert nbjobs.submit(add, 1, 1, executor=executor).result(timeout=60) == 2


def test_a_picklable_exception_is_raised_as_itself_with_the_job_traceback() -> None:
    job = nbjobs.submit(raise_value_error)
    with pytest.raises(ValueError, match="plain failure 7") as info:
        job.result(timeout=60)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "raise_value_error" in notes
    exc = job.exception(timeout=60)
    assert isinstance(exc, ValueError)
    assert job.error == {"type": "ValueError", "message": "plain failure 7"}


@pytest.mark.parametrize(
    "make_arg",
    [pytest.param(threading.Lock, id="lock"), pytest.param(numbers, id="generator")],
)
def test_a_thread_job_with_an_unpicklable_argument_runs_but_is_not_resumable(
    make_arg: Any,
) -> None:
    arg = make_arg()
    with pytest.warns(UserWarning) as caught:
        job = nbjobs.submit(take_anything, arg)
    messages = " ".join(str(w.message) for w in caught)
    assert re.search("resum", messages, re.IGNORECASE)
    assert re.search("pickl", messages, re.IGNORECASE)
    assert job.result(timeout=60) == type(arg).__name__
    assert job.status == "succeeded"
    assert job.resumable is False
    assert nbjobs.get(job.id).resumable is False


def test_a_thread_job_with_an_unpicklable_closure_runs_but_is_not_resumable() -> None:
    lock = threading.Lock()

    def uses_lock() -> bool:
        with lock:
            return True

    with pytest.warns(UserWarning, match=r"(?i)pickl"):
        job = nbjobs.submit(uses_lock)
    assert job.result(timeout=60) is True
    assert job.resumable is False


def test_a_picklable_job_is_resumable(recwarn: pytest.WarningsRecorder) -> None:
    job = nbjobs.submit(add, 1, 2)
    assert job.result(timeout=60) == 3
    assert job.resumable is True
    assert [str(w.message) for w in recwarn] == []


def test_to_dict_is_json_ready_and_holds_no_result() -> None:
    job = nbjobs.submit(make_list, 5, key="small", name="lister", tags=["a", "b"])
    job.result(timeout=60)
    data = job.to_dict()
    text = json.dumps(data)
    assert data["id"] == job.id
    assert data["key"] == "small"
    assert data["name"] == "lister"
    assert data["status"] == "succeeded"
    assert "[0, 1, 2, 3, 4]" not in text
    assert job.tags == ("a", "b")
    assert [j.id for j in nbjobs.jobs(tag="a")] == [job.id]
    assert [j.id for j in nbjobs.jobs(name="lister")] == [job.id]
