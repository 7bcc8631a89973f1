"""Mistakes in a call's options and arguments get a clear answer at the call, not a late failure.

Misspelt options and arguments the function cannot take are refused (or, when a `**kwargs`
function would swallow a near-miss of an option's name, warned about) before anything is
stored; `map`'s iterables must have one length; every duration option takes the same forms.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

import nbjobs
from nbjobs.clock import FakeClock

pytestmark = pytest.mark.timeout(120)


def fit(n: int, alpha: float = 0.1) -> float:
    return n * alpha


def loose(n: int, **extra: Any) -> dict[str, Any]:
    return {"n": n, **extra}


def download(url: str, timeout: float) -> str:
    return f"{url} in {timeout}"


def only_positional(a: int, /) -> int:
    return a


def add(a: int, b: int) -> int:
    return a + b


def scale(x: int, factor: int = 1) -> int:
    return x * factor


def failing() -> None:
    raise ConnectionError("down")


class Model:
    def predict(self, x: int) -> int:
        return x + 1


class Anything:
    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        return args


def stored(store: nbjobs.Store) -> tuple[dict[str, int], list[Any]]:
    store.flush()
    return store.stats(), store.records(limit=1000)


@pytest.fixture
def empty(store: nbjobs.Store) -> Iterator[nbjobs.Store]:
    before = stored(store)
    yield store
    assert stored(store) == before, "a refused call must store nothing"


# --------------------------------------------------------------------------- 1. misspelt options
def test_a_misspelt_option_is_refused_with_the_option_it_resembles(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType) as info:
        empty.submit(fit, 10, retires=3)
    text = str(info.value)
    assert "'retires'" in text and "fit()" in text
    assert "did you mean retries=?" in text


def test_a_misspelt_parameter_is_refused_with_the_parameter_it_resembles(
    empty: nbjobs.Store,
) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"'alpah'.*did you mean alpha=\?"):
        empty.submit(fit, 10, alpah=0.5)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"'alpah'.*did you mean alpha="):
        empty.submit(fit, 10, key="k", kwargs={"alpah": 0.5})


def test_the_module_functions_refuse_too() -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean timeout="):
        nbjobs.submit(fit, 10, timeuot=5)
    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean tags="):
        nbjobs.map(fit, [1, 2], tag="sweep")
    assert sum(nbjobs.stats().values()) == 0


def test_a_kwargs_function_warns_about_a_near_miss_of_an_option(store: nbjobs.Store) -> None:
    with pytest.warns(UserWarning, match=r"'retires'.*did you mean retries=\?") as seen:
        job = store.submit(loose, 1, retires=3)
    assert seen[0].filename == __file__  # points at the user's line
    assert job.result(timeout=60) == {"n": 1, "retires": 3}
    with pytest.warns(UserWarning, match="did you mean key="):
        store.map(loose, [1], kye="x")


def test_a_kwargs_function_gets_far_names_and_explicit_kwargs_without_a_warning(
    store: nbjobs.Store,
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = store.submit(loose, 1, colour="red", alpha=2)
        second = store.submit(loose, 2, kwargs={"retires": 3})
        third = store.submit(fit, 3, alpha=0.5)
    assert first.result(timeout=60) == {"n": 1, "colour": "red", "alpha": 2}
    assert second.result(timeout=60) == {"n": 2, "retires": 3}
    assert third.result(timeout=60) == 1.5


def test_too_many_or_too_few_arguments_are_refused(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"fit\(\) takes at most 2"):
        empty.submit(fit, 1, 2, 3)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"fit\(\) is missing.*'n'"):
        empty.submit(fit)
    with pytest.raises(nbjobs.InvalidArgumentType, match="'n' twice"):
        empty.submit(fit, 1, n=2)
    with pytest.raises(nbjobs.InvalidArgumentType, match="positional-only"):
        empty.submit(only_positional, a=1)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"predict\(\) takes at most 1"):
        empty.submit(Model().predict, 1, 2)


def test_an_argument_taken_as_an_option_is_explained(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType) as info:
        empty.submit(download, "http://x", timeout=30)
    text = str(info.value)
    assert "'timeout'" in text and "kwargs={'timeout': ...}" in text


def test_callables_without_a_signature_and_odd_callables_are_accepted(
    store: nbjobs.Store,
) -> None:
    assert store.submit(max, [3, 9, 4]).result(timeout=60) == 9
    assert store.submit(dict, a=1).result(timeout=60) == {"a": 1}
    assert store.submit(Anything(), 1, 2, colour=3).result(timeout=60) == (1, 2)
    assert store.submit(Model().predict, 1).result(timeout=60) == 2
    assert store.submit(functools.partial(fit, 10), alpha=0.5).result(timeout=60) == 5.0
    assert store.submit(lambda: 7).result(timeout=60) == 7


def test_map_checks_the_call_before_reading_the_items(empty: nbjobs.Store) -> None:
    read: list[int] = []

    def items() -> Iterator[int]:
        for i in range(3):
            read.append(i)
            yield i

    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean backoff="):
        empty.map(fit, items(), bakoff=2)
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"fit\(\) takes at most 2"):
        empty.map(fit, items(), items(), items())
    assert read == []


def test_a_task_refuses_before_its_key_function_runs(empty: nbjobs.Store) -> None:
    keyed: list[Any] = []

    @nbjobs.task(store=empty, key=lambda *a, **k: keyed.append((a, k)) or "k")
    def fit_task(n: int, alpha: float = 0.1) -> float:
        return n * alpha

    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean retries="):
        fit_task.submit(10, retires=3)
    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean alpha="):
        fit_task.map([1, 2], alhpa=3)
    assert keyed == []


def test_a_misspelt_task_option_is_named_with_a_hint() -> None:
    with pytest.raises(TypeError, match=r"\['retires'\].*did you mean retries=\?"):
        nbjobs.task(retires=3)


def test_a_schedule_refuses_arguments_its_function_cannot_take(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match="did you mean alpha="):
        store.schedule(fit, every="5m", args=(10,), kwargs={"alpah": 1}, name="s")
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"fit\(\) is missing"):
        store.schedule(fit, every="5m", name="s")
    assert store.schedules() == []


# --------------------------------------------------------------------------- 2. map pitfalls
def test_map_refuses_iterables_of_different_lengths(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument) as info:
        empty.map(add, [1, 2, 3], [10, 20])
    text = str(info.value)
    assert "3" in text and "2" in text and "same length" in text


def test_map_refuses_iterators_that_run_out_at_different_times(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=r"iterable 1 ran out after 2 items"):
        empty.map(add, iter([1, 2, 3]), iter([10, 20]))
    with pytest.raises(nbjobs.InvalidArgument, match=r"iterable 0 ran out after 1 item\b"):
        empty.map(add, iter([1]), (x for x in [10, 20]))
    # An endless iterable beside a finite one is refused, not read for ever.
    with pytest.raises(nbjobs.InvalidArgument, match=r"iterable 1 ran out after 2 items"):
        empty.map(add, itertools.count(), [10, 20])


def test_map_of_equal_lengths_still_runs(store: nbjobs.Store) -> None:
    jobs = store.map(add, iter([1, 2]), (x for x in [10, 20]))
    assert [j.result(timeout=60) for j in jobs] == [11, 22]
    assert store.map(add, [], []) == []


def test_a_key_function_gets_the_shared_keyword_arguments_in_map(store: nbjobs.Store) -> None:
    jobs = store.map(scale, [1, 2], factor=3, key=lambda x, factor: f"s-{x}-{factor}")
    assert [j.key for j in jobs] == ["s-1-3", "s-2-3"]

    @nbjobs.task(store=store, key=lambda x, factor=1: f"t-{x}-{factor}")
    def scaled(x: int, factor: int = 1) -> int:
        return x * factor

    assert scaled.submit(3, factor=4).key == "t-3-4"
    assert [j.key for j in scaled.map([1, 2], factor=4)] == ["t-1-4", "t-2-4"]


# --------------------------------------------------------------------------- 9. durations
@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (90, 90.0),
        (2.5, 2.5),
        (datetime.timedelta(minutes=5), 300.0),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h30m", 5400.0),
        ("7d", 604800.0),
    ],
)
def test_every_time_limit_takes_the_duration_forms(
    store: nbjobs.Store, given: Any, seconds: float
) -> None:
    job = store.submit(fit, 1, timeout=given)
    assert job.record().timeout == seconds
    job = store.submit(fit, 1, timeout=seconds * 2, soft_timeout=given)
    assert job.record().soft_timeout == seconds


def test_a_task_and_a_schedule_take_duration_strings(store: nbjobs.Store) -> None:
    fit_task = nbjobs.task(store=store, timeout="1h", soft_timeout="50m")(fit)
    rec = fit_task.submit(2).record()
    assert (rec.timeout, rec.soft_timeout) == (3600.0, 3000.0)
    with pytest.warns(UserWarning, match="no detached worker"):
        sched = store.schedule(fit, every="1h30m", args=(1,), timeout="10m", name="d")
    assert sched.every == 5400.0


def test_backoff_takes_the_duration_forms(
    fake_store: nbjobs.Store, clock: FakeClock, wait_for: Any
) -> None:
    job = fake_store.submit(failing, retries=2, backoff="1m30s")

    def retrying() -> Any:
        rec = job.record()  # (flushes: a keyless submit's record may not be committed yet)
        return rec if rec.status == "retrying" else None

    rec = wait_for(retrying, timeout=60)
    assert rec.retry_at == clock.now() + 90
    job.cancel()


def test_a_wait_takes_the_duration_forms(store: nbjobs.Store) -> None:
    job = store.submit(fit, 2)
    assert job.result(timeout="1m") == 0.2
    assert job.wait(timeout=datetime.timedelta(seconds=30)).status == "succeeded"


@pytest.mark.parametrize("option", ["timeout", "soft_timeout", "backoff"])
@pytest.mark.parametrize("bad", ["5 minutes", "soon", "5x", "-5m", "1h 30"])
def test_a_bad_duration_names_the_option_and_the_forms(
    empty: nbjobs.Store, option: str, bad: str
) -> None:
    extra = {"retries": 1} if option == "backoff" else {}
    with pytest.raises(nbjobs.InvalidArgument) as info:
        empty.submit(fit, 1, **{option: bad}, **extra)
    text = str(info.value)
    assert option in text and repr(bad) in text
    assert "'30s'" in text and "'1h30m'" in text and "timedelta" in text


def test_idle_timeout_is_checked_with_the_same_parser(empty: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=r"idle_timeout.*'30s'.*'1h30m'"):
        empty.start_worker(workers=1, idle_timeout="ten minutes")
    assert empty.workers() == []
