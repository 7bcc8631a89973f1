"""nbjobs.map / Store.map: one job per item, shared data stored once, all or nothing."""

from __future__ import annotations

import asyncio
import functools
import gc
import threading
import tracemalloc
import warnings
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbjobs

pytestmark = pytest.mark.timeout(120)

SHARED_BYTES = 20 * 1024 * 1024
GATE = threading.Event()


def add(a: int, b: int = 0) -> int:
    return a + b


def scaled(i: int, scale: int = 1) -> int:
    return i * scale


def head_plus(data: bytes, i: int) -> int:
    return data[0] + i


def plus_head(i: int, data: bytes) -> int:
    return data[0] + i


def gated(data: bytes, i: int) -> int:
    GATE.wait(60)
    return data[0] + i


def count_call(path: str, i: int) -> int:
    with open(path, "a") as f:
        f.write(f"{i}\n")
    return i * i


def option_clash(i: int, timeout: int = 0) -> int:
    return i + timeout


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


class Counted:
    """Counts how often it is pickled (hashing an unknown object pickles it too)."""

    reduced = 0

    def __reduce__(self) -> tuple[type[Counted], tuple[()]]:
        Counted.reduced += 1
        return Counted, ()


def with_counted(i: int, shared: Counted) -> int:
    return i


@pytest.fixture
def gate() -> Iterator[threading.Event]:
    GATE.clear()
    yield GATE
    GATE.set()


def folder_size(path: Path) -> int:
    """Every file of a store folder: cache.db, its WAL, blobs/."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def nothing_written(store: nbjobs.Store) -> bool:
    return store.jobs(limit=10**6) == [] and sum(store.stats().values()) == 0


# ---------------------------------------------------------------------- results
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_results_come_back_in_input_order(store: nbjobs.Store, executor: str) -> None:
    jobs = store.map(add, range(12), range(100, 112), executor=executor)
    assert [job.result(timeout=60) for job in jobs] == [i + 100 + i for i in range(12)]
    assert {job.record().executor for job in jobs} == {executor}


def test_iterables_are_zipped_and_must_have_one_length(store: nbjobs.Store) -> None:
    jobs = store.map(add, [1, 2], iter([10, 20]))
    assert [job.result(timeout=30) for job in jobs] == [11, 22]
    with pytest.raises(nbjobs.InvalidArgument, match="same length"):
        store.map(add, [1, 2, 3], iter([10, 20]))


def test_empty_input_gives_no_jobs(store: nbjobs.Store) -> None:
    assert store.map(add, []) == []
    assert store.map(add, [], [], key="empty") == []
    assert nothing_written(store)


def test_module_function_uses_the_default_store() -> None:
    jobs = nbjobs.map(scaled, [1, 2, 3], scale=10, tags="mapped")
    assert [job.result(timeout=30) for job in jobs] == [10, 20, 30]
    assert {j.id for j in nbjobs.jobs(tag="mapped")} == {j.id for j in jobs}


def test_shared_keyword_arguments_and_reserved_names(store: nbjobs.Store) -> None:
    jobs = store.map(option_clash, [1, 2], kwargs={"timeout": 100}, timeout=30)
    assert [job.result(timeout=30) for job in jobs] == [101, 102]
    assert {job.record().timeout for job in jobs} == {30.0}


def test_the_job_name_is_the_function_name_even_through_a_partial(store: nbjobs.Store) -> None:
    jobs = store.map(functools.partial(head_plus, b"\x05"), [1, 2])
    assert [job.result(timeout=30) for job in jobs] == [6, 7]
    assert {job.name for job in jobs} == {"head_plus"}
    assert store.map(add, [1], name="adder")[0].name == "adder"


def test_async_functions_are_mapped(store: nbjobs.Store) -> None:
    jobs = store.map(async_add, [1, 2], [10, 20])
    assert [job.result(timeout=30) for job in jobs] == [11, 22]


def test_options_apply_to_every_job(store: nbjobs.Store) -> None:
    jobs = store.map(add, [1, 2], tags=["a", "b"], timeout=50, soft_timeout=10)
    for job in jobs:
        job.wait(timeout=30)
        rec = job.record()
        assert (rec.tags, rec.timeout, rec.soft_timeout) == (("a", "b"), 50.0, 10.0)


# ---------------------------------------------------------------------- keys
def test_a_prefix_keys_jobs_by_position_and_rerunning_reuses_them(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    first = store.map(functools.partial(count_call, str(calls)), [3, 4, 5], key="sq")
    assert [job.key for job in first] == ["sq/0", "sq/1", "sq/2"]
    assert [job.result(timeout=30) for job in first] == [9, 16, 25]
    again = store.map(functools.partial(count_call, str(calls)), [3, 4, 5], key="sq")
    assert [job.id for job in again] == [job.id for job in first]
    assert [job.result(timeout=30) for job in again] == [9, 16, 25]
    assert sorted(calls.read_text().split()) == ["3", "4", "5"]


def test_automatic_keys_find_the_same_jobs_and_follow_the_items(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    calls = tmp_path / "calls.txt"
    first = store.map(count_call, [str(calls)] * 2, [1, 2], key=nbjobs.auto)
    assert all(job.key and job.key.startswith("auto:count_call:") for job in first)
    assert len({job.key for job in first}) == 2
    [job.wait(timeout=30) for job in first]
    again = store.map(count_call, [str(calls)] * 3, [1, 2, 7], key=nbjobs.auto)
    assert [job.id for job in again[:2]] == [job.id for job in first]
    assert again[2].result(timeout=30) == 49
    assert sorted(calls.read_text().split()) == ["1", "2", "7"]


def test_automatic_keys_depend_on_the_shared_arguments(store: nbjobs.Store) -> None:
    one = store.map(scaled, [1, 2], scale=1, key=nbjobs.auto)
    two = store.map(scaled, [1, 2], scale=2, key=nbjobs.auto)
    assert {job.key for job in one}.isdisjoint(job.key for job in two)
    assert [job.result(timeout=30) for job in two] == [2, 4]


def test_the_shared_part_of_automatic_keys_is_hashed_once(store: nbjobs.Store) -> None:
    Counted.reduced = 0
    jobs = store.map(with_counted, range(20), shared=Counted(), key=nbjobs.auto)
    assert [job.result(timeout=30) for job in jobs] == list(range(20))
    # Once to hash it for the keys, once to pickle it with the function; not per item.
    assert Counted.reduced <= 2


def test_a_key_function_gets_the_items(store: nbjobs.Store, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    fn = functools.partial(count_call, str(calls))
    first = store.map(fn, [3, 4], key=lambda i: f"square-{i}")
    assert [job.key for job in first] == ["square-3", "square-4"]
    assert [job.result(timeout=30) for job in first] == [9, 16]
    again = store.map(fn, [4, 3], key=lambda i: f"square-{i}")
    assert [job.id for job in again] == [first[1].id, first[0].id]
    assert sorted(calls.read_text().split()) == ["3", "4"]
    pairs = store.map(add, [1, 2], [5, 6], key=lambda a, b: f"add-{a}-{b}")
    assert [job.key for job in pairs] == ["add-1-5", "add-2-6"]


@pytest.mark.parametrize("bad", [None, 7, ""])
def test_a_key_function_must_return_a_str_for_every_item(store: nbjobs.Store, bad: Any) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"item 2: the key function") as info:
        store.map(add, [1, 2, 3, 4], key=lambda i: f"k{i}" if i < 3 else bad)
    assert "non-empty str" in str(info.value)
    assert nothing_written(store)


def test_a_key_function_that_raises_writes_nothing(store: nbjobs.Store) -> None:
    with pytest.raises(ZeroDivisionError) as info:
        store.map(add, [1, 0, 2], key=lambda i: f"k{1 / i}")
    assert any("item 1" in note for note in info.value.__notes__)
    assert nothing_written(store)


@pytest.mark.parametrize("bad", [42, b"prefix", ["a", "b"], 1.5])
def test_a_key_of_another_type_names_the_accepted_forms(store: nbjobs.Store, bad: Any) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType) as info:
        store.map(add, [1, 2], key=bad)
    text = str(info.value)
    assert text.startswith("key must be")
    assert "nbjobs.auto" in text and "prefix" in text and "callable" in text
    assert type(bad).__name__ in text
    assert nothing_written(store)


def test_an_item_automatic_keys_cannot_hash_is_named(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"item 2: key=nbjobs.auto cannot hash"):
        store.map(add, [1, 2, threading.Lock()], key=nbjobs.auto)
    assert nothing_written(store)


# ---------------------------------------------------------------------- all or nothing
@pytest.mark.parametrize(
    "options",
    [
        {"timeout": -1},
        {"timeout": "soon"},
        {"soft_timeout": 10, "timeout": 5},
        {"executor": "threads"},
        {"retries": "many"},
        {"tags": 5},
        {"name": 3},
        {"force": "yes"},
        {"kwargs": ["not", "a", "dict"]},
    ],
)
def test_bad_options_raise_and_write_nothing(store: nbjobs.Store, options: dict[str, Any]) -> None:
    with pytest.raises(nbjobs.InvalidArgument) as info:
        store.map(add, [1, 2, 3], key="never", **options)
    assert next(iter(options)) in str(info.value)
    assert nothing_written(store)


def test_things_that_are_not_iterables_or_functions_are_refused(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgumentType, match=r"iterable 1 must be iterable.*int"):
        store.map(add, [1, 2], 5)
    with pytest.raises(nbjobs.InvalidArgumentType, match="fn must be callable"):
        store.map([1, 2], [3])  # type: ignore[arg-type]
    with pytest.raises(nbjobs.InvalidArgumentType, match="needs an iterable"):
        store.map(add)
    assert nothing_written(store)


def test_an_unpicklable_item_for_processes_names_the_item_and_writes_nothing(
    store: nbjobs.Store,
) -> None:
    with pytest.raises(nbjobs.PayloadNotPicklable, match=r"^item 3: argument 0 \(lock\)"):
        store.map(add, [1, 2, 3, threading.Lock(), 5], key="p", executor="process")
    assert nothing_written(store)


def test_an_unpicklable_function_for_processes_is_named_once(store: nbjobs.Store) -> None:
    lock = threading.Lock()
    with pytest.raises(nbjobs.PayloadNotPicklable, match=r"^the function") as info:
        store.map(lambda i: (lock, i), [1, 2], executor="process")
    assert "item" not in str(info.value)
    assert nothing_written(store)


def test_unpicklable_thread_items_run_with_one_warning(store: nbjobs.Store) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        jobs = store.map(scaled, [1, threading.Lock(), threading.Lock(), 4], scale=1)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "2 of the 4 jobs" in messages[0] and "item 1: argument 0 (lock)" in messages[0]
    jobs[0].wait(timeout=30)
    assert jobs[3].result(timeout=30) == 4
    assert [job.record().resumable for job in jobs] == [True, False, False, True]


# ---------------------------------------------------------------------- shared data
@pytest.mark.parametrize("how", ["partial", "keyword"])
def test_data_shared_by_every_item_is_stored_once(store: nbjobs.Store, how: str) -> None:
    shared = bytes([7]) * SHARED_BYTES
    store.flush()
    before = folder_size(store.path)
    if how == "partial":
        jobs = store.map(functools.partial(head_plus, shared), range(50))
    else:
        jobs = store.map(plus_head, range(50), data=shared)
    assert [job.result(timeout=60) for job in jobs] == [7 + i for i in range(50)]
    store.flush()
    growth = folder_size(store.path) - before
    # 50 copies would be 50x; inline in SQLite it would be 2x (database and WAL).
    assert SHARED_BYTES <= growth < 2 * SHARED_BYTES


def test_a_big_function_is_stored_once_for_keyed_maps_too(store: nbjobs.Store) -> None:
    shared = bytes([1]) * SHARED_BYTES
    jobs = store.map(functools.partial(head_plus, shared), range(10), key="big")
    assert [job.result(timeout=60) for job in jobs] == [1 + i for i in range(10)]
    store.flush()
    before = folder_size(store.path)
    again = store.map(functools.partial(head_plus, shared), range(10), key="big")
    assert [job.id for job in again] == [job.id for job in jobs]
    store.flush()
    assert folder_size(store.path) - before < SHARED_BYTES


def test_jobs_waiting_in_threads_do_not_hold_copies_of_the_shared_data(
    store: nbjobs.Store, gate: threading.Event
) -> None:
    shared = bytes([3]) * SHARED_BYTES
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        jobs = store.map(functools.partial(gated, shared), range(40))
        held = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert not any(job.done() for job in jobs)
    gate.set()
    assert [job.result(timeout=60) for job in jobs] == [3 + i for i in range(40)]
    # The function (with the data) is pickled once to store it; 40 copies would be 40x.
    assert held < 3 * SHARED_BYTES


def test_finished_jobs_keep_nothing_of_the_map_alive(store: nbjobs.Store, wait_for: Any) -> None:
    shared = functools.partial(head_plus, bytes([1]) * 1024)
    alive = weakref.ref(shared)
    jobs = store.map(shared, range(20))
    del shared
    assert [job.result(timeout=30) for job in jobs] == [1 + i for i in range(20)]
    store.flush()
    # Neither an idle pool thread nor the idle writer holds the last job's function.
    wait_for(lambda: gc.collect() >= 0 and alive() is None, timeout=10)
