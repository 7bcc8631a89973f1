"""The job options are defined once (`nbjobs.calls.options`) and every entry point takes them from
there: the same names, defaults and documentation, and every option reaches the job."""

from __future__ import annotations

import inspect
import pickle
import typing
from collections.abc import Callable
from typing import Any

import pytest
from gates import poll

import nbjobs
from nbjobs.calls import options

pytestmark = pytest.mark.timeout(120)


def fit(n: int, alpha: float = 0.1) -> float:
    return n * alpha


task = nbjobs.task(fit)

#: Every public entry point that takes job options, and the options it takes.
ENTRY_POINTS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "Store.submit": (nbjobs.Store.submit, options.NAMES),
    "Store.map": (nbjobs.Store.map, options.NAMES),
    "nbjobs.submit": (nbjobs.submit, options.NAMES),
    "nbjobs.map": (nbjobs.map, options.NAMES),
    "nbjobs.task": (nbjobs.task, options.NAMES),
    "Task.submit": (nbjobs.Task.submit, options.NAMES),
    "Task.map": (nbjobs.Task.map, options.NAMES),
    "Store.schedule": (nbjobs.Store.schedule, options.SCHEDULE_NAMES),
    "nbjobs.schedule": (nbjobs.schedule, options.SCHEDULE_NAMES),
}


def test_the_definition_is_one_table_and_one_typeddict() -> None:
    assert list(options.OPTIONS) == list(options.NAMES)
    assert set(typing.get_type_hints(options.JobOptions)) == set(options.NAMES)
    assert set(options.SCHEDULE_NAMES) == set(typing.get_type_hints(options.ScheduleOptions))
    assert options.RESERVED == (*options.NAMES, "kwargs") == nbjobs.RESERVED
    assert {n: o.default for n, o in options.OPTIONS.items()} == options.DEFAULTS


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_takes_exactly_the_defined_options(entry: str) -> None:
    fn, names = ENTRY_POINTS[entry]
    params = inspect.signature(fn).parameters
    keyword = [p for p in params.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    taken = [p.name for p in keyword if p.name in options.OPTIONS]
    assert taken == list(names), entry
    for name in names:
        assert params[name].default is options.DEFAULTS[name], (entry, name)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_every_entry_point_documents_every_option_it_takes(entry: str) -> None:
    fn, names = ENTRY_POINTS[entry]
    doc = fn.__doc__ or ""
    for name in names:
        assert f"{name}: {options.OPTIONS[name].doc[:30]}" in " ".join(doc.split()), (entry, name)


def test_the_type_checkers_see_the_typeddict() -> None:
    """The `**options` of each entry point is typed with the one definition."""
    for fn in (nbjobs.task, nbjobs.Store.schedule):
        annotation = inspect.signature(fn, follow_wrapped=False)
        assert "Unpack[" in str(fn.__annotations__.get("options")), fn
        assert annotation is not None
    for overloads in (nbjobs.Store.submit, nbjobs.Store.map, nbjobs.submit, nbjobs.Task.submit):
        found = typing.get_overloads(overloads)
        assert any("Unpack[JobOptions]" in str(o.__annotations__.get("options")) for o in found)


def _retry_on(store: nbjobs.Store) -> None:
    def flaky() -> None:
        raise KeyError("not worth retrying")

    job = store.submit(flaky, retries=3, retry_on=ValueError, backoff=0)
    with pytest.raises(KeyError):
        job.result(timeout=60)
    assert job.record().attempts == 1


def _retries(store: nbjobs.Store) -> None:
    def flaky() -> None:
        raise ValueError("again")

    job = store.submit(flaky, retries=2, backoff=0)
    with pytest.raises(ValueError):
        job.result(timeout=60)
    assert job.record().attempts == 3


def _backoff(store: nbjobs.Store) -> None:
    def flaky() -> None:
        raise ValueError("again")

    job = store.submit(flaky, retries=1, backoff="1000s")
    rec = poll(lambda: (r := job.record()).status == "retrying" and r)
    assert rec, job.record()
    assert rec.retry_at is not None and rec.retry_at - store.storage.clock.now() > 900
    job.cancel()


def _force(store: nbjobs.Store) -> None:
    first = store.submit(fit, 1, key="forced")
    first.result(timeout=60)
    again = store.submit(fit, 1, key="forced", force=True)
    assert poll(lambda: again.record().runs == 2 and again.status == "succeeded")


#: One check per option that it reaches the job when given alone (or with what it needs).
REACHES: dict[str, Callable[[nbjobs.Store], None]] = {
    "key": lambda s: s.submit(fit, 1, key="k").record().key == "k" or pytest.fail("key"),
    "name": lambda s: s.submit(fit, 1, name="n").record().name == "n" or pytest.fail("name"),
    "tags": lambda s: s.submit(fit, 1, tags="t").record().tags == ("t",) or pytest.fail("tags"),
    "retries": _retries,
    "retry_on": _retry_on,
    "backoff": _backoff,
    "timeout": lambda s: (
        s.submit(fit, 1, timeout="1m").record().timeout == 60 or pytest.fail("timeout")
    ),
    "soft_timeout": lambda s: (
        s.submit(fit, 1, soft_timeout=5).record().soft_timeout == 5 or pytest.fail("soft_timeout")
    ),
    "executor": lambda s: (
        s.submit(fit, 1, executor="process").record().executor == "process"
        or pytest.fail("executor")
    ),
    "force": _force,
}


def test_every_option_has_a_check_that_it_reaches_the_job() -> None:
    assert set(REACHES) == set(options.NAMES)


@pytest.mark.parametrize("name", options.NAMES)
def test_each_option_reaches_the_job(store: nbjobs.Store, name: str) -> None:
    REACHES[name](store)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.submit(fit, 1, forse=True), id="submit"),
        pytest.param(lambda s: s.map(fit, [1], retrys=2), id="map"),
        pytest.param(lambda s: task.submit(1, tiemout=3), id="Task.submit"),
        pytest.param(lambda s: nbjobs.task(retires=2), id="task"),
        pytest.param(lambda s: s.schedule(fit, every="1h", args=(1,), timout=3), id="schedule"),
    ],
)
def test_a_misspelt_option_is_named_from_the_definition(
    store: nbjobs.Store, call: Callable[[nbjobs.Store], Any]
) -> None:
    with pytest.raises(TypeError, match=r"did you mean (force|retries|timeout)=\?"):
        call(store)
    assert store.stats()["pending"] == 0


def test_a_schedule_refuses_options_its_firings_cannot_have(store: nbjobs.Store) -> None:
    with pytest.raises(TypeError, match="key"):
        store.schedule(fit, every="1h", args=(1,), key="k")  # type: ignore[call-arg]
    assert store.schedules() == []


def test_a_task_keeps_its_options_in_the_definitions_order_and_pickles() -> None:
    t = nbjobs.task(tags="a", retries=2, name="x")(fit)
    assert list(t.defaults) == ["name", "tags", "retries"]
    assert pickle.loads(pickle.dumps(t)).defaults == t.defaults
