"""Faults of input (issue #15): every string names at most one job, and bad input of every
class (lone surrogates, NULs, huge ints, wrong types, huge strings) raises an `NbjobsError`
that names the argument, at the call, and writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import nbjobs

SURROGATE = "a\ud800b"
NUL = "a\0b"
HUGE_INT = 10**20
HUGE_TEXT = "x" * 10_000_000


def add(a: int, b: int = 0) -> int:
    return a + b


def snapshot(store: nbjobs.Store) -> tuple[dict[str, int], list[tuple[str, str, str | None]]]:
    listed = store.jobs(limit=10**6)
    names = [s.name for s in store.schedules()]
    return store.stats(), [(j.id, j.status, j.key) for j in listed] + [
        ("s", n, None) for n in names
    ]


@pytest.fixture
def done(store: nbjobs.Store) -> nbjobs.Job:
    job = store.submit(add, 1, 2, key="existing")
    assert job.result(timeout=60) == 3
    return job


# ---------------------------------------------------------------- a key that is an id
def test_a_key_equal_to_another_jobs_id_is_refused(store: nbjobs.Store) -> None:
    a = store.submit(add, 1)
    assert a.result(timeout=60) == 1
    before = snapshot(store)
    with pytest.raises(nbjobs.InvalidArgument) as info:
        store.submit(add, 2, key=a.id)
    text = str(info.value)
    assert "key" in text and a.id in text and "id" in text
    assert snapshot(store) == before
    assert store.forget(a.id) is True  # the id names a, and only a
    with pytest.raises(nbjobs.JobNotFound):
        store.get(a.id)


@pytest.mark.parametrize("key", ["0123456789abcdef", "ffffffffffffffff"])
def test_a_key_shaped_like_a_generated_id_is_refused_even_when_no_job_has_it(
    store: nbjobs.Store, key: str
) -> None:
    """No lookup on the submit path: a key can never be a generated id, so a later id can
    never be an existing key either."""
    with pytest.raises(nbjobs.InvalidArgument, match="key"):
        store.submit(add, 1, key=key)
    with pytest.raises(nbjobs.InvalidArgument, match="key"):
        store.map(add, [1], key=lambda x: key)
    assert store.stats() == dict.fromkeys(nbjobs.STATES, 0)


@pytest.mark.parametrize("key", ["0123456789ABCDEF", "0123456789abcde", "run-0123456789abcdef"])
def test_keys_near_the_shape_of_an_id_are_fine(store: nbjobs.Store, key: str) -> None:
    job = store.submit(add, 1, key=key)
    assert job.result(timeout=60) == 1
    assert store.get(key).id == job.id


# ---------------------------------------------------------------- the listed cases
BAD_KEYS = [
    pytest.param(SURROGATE, "surrogate", id="surrogate"),
    pytest.param(NUL, "NUL", id="nul"),
    pytest.param(HUGE_TEXT, "1,000", id="10MB"),
    pytest.param("x" * 1001, "1,000", id="1001"),
]


@pytest.mark.parametrize(("key", "why"), BAD_KEYS)
def test_a_bad_key_is_refused_everywhere_a_key_is_given(
    store: nbjobs.Store, done: nbjobs.Job, key: str, why: str
) -> None:
    before = snapshot(store)
    calls: list[Callable[[], Any]] = [
        lambda: store.submit(add, 1, key=key),
        lambda: store.map(add, [1, 2], key=key),
        lambda: store.map(add, [1, 2], key=lambda x: key),
        lambda: nbjobs.task(store=store)(add).submit(1, key=key),
        lambda: nbjobs.task(store=store, key=lambda a: key)(add).submit(1),
    ]
    for call in calls:
        with pytest.raises(nbjobs.InvalidArgument) as info:
            call()
        text = str(info.value)
        assert "key" in text and why in text
        assert len(text) < 1000  # the bad value is shown shortened
    assert snapshot(store) == before


def test_the_longest_key_is_accepted(store: nbjobs.Store) -> None:
    key = "k" * 1000
    assert store.submit(add, 1, key=key).result(timeout=60) == 1
    assert store.get(key).key == key


@pytest.mark.parametrize("path", [NUL, SURROGATE])
def test_a_store_path_that_no_file_system_takes(tmp_path: Path, path: str) -> None:
    parent = tmp_path / "stores"
    parent.mkdir()
    with pytest.raises(nbjobs.InvalidArgument, match="store") as info:
        nbjobs.Store(str(parent / path))
    assert repr(str(parent / path))[:20] in str(info.value)
    with pytest.raises(nbjobs.InvalidArgument, match="store"):
        nbjobs.configure(store=str(parent / path))
    assert os.listdir(parent) == []


def test_a_store_path_from_undecodable_bytes_works(tmp_path: Path) -> None:
    """A surrogate escape (a file name that is not UTF-8, as Python decodes it) is a real
    path, not bad input."""
    path = tmp_path / "caf\udce9"
    with nbjobs.Store(path) as store:
        assert store.submit(add, 1, key="k").result(timeout=60) == 1


def map_dup(x: int) -> str:
    return "dup"


def test_a_map_whose_key_function_repeats_a_key_runs_nothing(
    store: nbjobs.Store, done: nbjobs.Job
) -> None:
    before = snapshot(store)
    with pytest.raises(nbjobs.InvalidArgument) as info:
        store.map(add, [1, 2, 3], key=map_dup)
    text = str(info.value)
    assert "key" in text and "'dup'" in text and "item 0" in text and "item 1" in text
    assert snapshot(store) == before


def test_a_map_may_repeat_a_call_under_its_key(store: nbjobs.Store) -> None:
    """The same item twice under one key is one call: one job, returned for both."""
    jobs = store.map(add, [1, 1], key=lambda x: f"add-{x}")
    assert jobs[0].id == jobs[1].id
    assert jobs[0].result(timeout=60) == 1


# ---------------------------------------------------------------- every other entry point
LOOKUPS: list[tuple[str, Callable[[nbjobs.Store, Any], Any], str]] = [
    ("get", lambda s, v: s.get(v), "id_or_key"),
    ("forget", lambda s, v: s.forget(v), "key"),
    ("retry", lambda s, v: s.retry(v), "id_or_key"),
    ("jobs-name", lambda s, v: s.jobs(name=v), "name"),
    ("jobs-tag", lambda s, v: s.jobs(tag=v), "tag"),
    ("records-name", lambda s, v: s.records(name=v), "name"),
    ("records-tag", lambda s, v: s.records(tag=v), "tag"),
    ("records-search", lambda s, v: s.records(search=v), "search"),
    ("unschedule", lambda s, v: s.unschedule(v), "name"),
    ("get_schedule", lambda s, v: s.get_schedule(v), "name"),
    ("pause_schedule", lambda s, v: s.pause_schedule(v), "name"),
    ("resume_schedule", lambda s, v: s.resume_schedule(v), "name"),
]


@pytest.mark.parametrize(
    ("call", "argument"), [(c, a) for _, c, a in LOOKUPS], ids=[n for n, _, _ in LOOKUPS]
)
@pytest.mark.parametrize("value", [SURROGATE, 5, b"k"], ids=["surrogate", "int", "bytes"])
def test_a_lookup_with_bad_text(
    store: nbjobs.Store, done: nbjobs.Job, call: Any, argument: str, value: Any
) -> None:
    before = snapshot(store)
    with pytest.raises(nbjobs.InvalidArgument) as info:
        call(store, value)
    assert argument in str(info.value)
    assert snapshot(store) == before


SUBMIT_TEXT = [
    pytest.param({"name": SURROGATE}, "name", id="name-surrogate"),
    pytest.param({"name": NUL}, "name", id="name-nul"),
    pytest.param({"name": HUGE_TEXT}, "name", id="name-huge"),
    pytest.param({"tags": [SURROGATE]}, "tags", id="tag-surrogate"),
    pytest.param({"tags": SURROGATE}, "tags", id="tag-str-surrogate"),
    pytest.param({"tags": ["ok", NUL]}, "tags", id="tag-nul"),
    pytest.param({"tags": [HUGE_TEXT]}, "tags", id="tag-huge"),
    pytest.param({"tags": [str(i) for i in range(100_000)]}, "tags", id="tags-many"),
]


@pytest.mark.parametrize(("options", "argument"), SUBMIT_TEXT)
def test_bad_names_and_tags(
    store: nbjobs.Store, done: nbjobs.Job, options: dict[str, Any], argument: str
) -> None:
    before = snapshot(store)
    calls: list[Callable[[], Any]] = [
        lambda: store.submit(add, 1, **options),
        lambda: store.submit(add, 1, key="never", **options),
        lambda: store.map(add, [1, 2], **options),
        lambda: store.schedule(add, every="1h", **options),
    ]
    for call in calls:
        with pytest.raises(nbjobs.InvalidArgument) as info:
            call()
        assert argument in str(info.value)
        assert len(str(info.value)) < 1000
    assert snapshot(store) == before


HUGE_NUMBERS: list[tuple[str, Callable[[nbjobs.Store, nbjobs.Job], Any], str]] = [
    ("jobs-limit", lambda s, j: s.jobs(limit=HUGE_INT), "limit"),
    ("records-limit", lambda s, j: s.records(limit=HUGE_INT), "limit"),
    ("records-offset", lambda s, j: s.records(offset=HUGE_INT), "offset"),
    ("dead_letters-limit", lambda s, j: s.dead_letters(limit=HUGE_INT), "limit"),
    ("configure-workers", lambda s, j: s.configure(workers=HUGE_INT), "workers"),
    ("start_worker-workers", lambda s, j: s.start_worker(workers=HUGE_INT), "workers"),
    ("timeout-int", lambda s, j: s.submit(add, 1, timeout=10**400), "timeout"),
    ("timeout-float", lambda s, j: s.submit(add, 1, timeout=1e300), "timeout"),
    ("soft_timeout", lambda s, j: s.submit(add, 1, soft_timeout=10**400), "soft_timeout"),
    ("backoff", lambda s, j: s.submit(add, 1, retries=1, backoff=10**400), "backoff"),
    ("retries", lambda s, j: s.submit(add, 1, retries=10**400), "retries"),
    ("result", lambda s, j: j.result(timeout=10**400), "timeout"),
    ("wait", lambda s, j: j.wait(timeout=10**400), "timeout"),
    ("nbjobs.wait", lambda s, j: nbjobs.wait([j], timeout=10**400), "timeout"),
    ("purge", lambda s, j: s.purge(older_than=10**400), "older_than"),
    ("schedule", lambda s, j: s.schedule(add, every=10**400), "every"),
    ("stop_worker", lambda s, j: s.stop_worker(timeout=10**400), "timeout"),
    ("Executor", lambda s, j: nbjobs.Executor(max_workers=HUGE_INT, store=s), "max_workers"),
]


@pytest.mark.parametrize(
    ("call", "argument"), [(c, a) for _, c, a in HUGE_NUMBERS], ids=[n for n, _, _ in HUGE_NUMBERS]
)
def test_huge_numbers(store: nbjobs.Store, done: nbjobs.Job, call: Any, argument: str) -> None:
    before = snapshot(store)
    with pytest.raises(nbjobs.InvalidArgument) as info:
        call(store, done)
    assert argument in str(info.value)
    assert len(str(info.value)) < 1000
    assert snapshot(store) == before
    assert store.submit(add, 5).result(timeout=60) == 5  # the store still works


def test_a_progress_message_that_cannot_be_stored(store: nbjobs.Store) -> None:
    def report() -> str:
        try:
            nbjobs.progress(1, 2, message=SURROGATE)
        except nbjobs.InvalidArgument as exc:
            return str(exc)
        return "accepted"

    assert "message" in store.submit(report).result(timeout=60)


# ---------------------------------------------------------------- the terminal
def _cli(store: nbjobs.Store, *argv: str) -> tuple[int, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "nbjobs", "--store", str(store.path), *argv],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(Path(nbjobs.__file__).parents[1])},
        timeout=120,
    )
    return proc.returncode, proc.stderr.decode(errors="replace")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param((b"show", b"\xff"), id="show-undecodable"),
        pytest.param((b"ls", b"--name", b"\xff"), id="ls-name-undecodable"),
        pytest.param((b"ls", b"--limit", str(HUGE_INT).encode()), id="ls-limit-huge"),
        pytest.param((b"retry", b"\xfe"), id="retry-undecodable"),
    ],
)
def test_the_terminal_says_what_is_wrong(
    store: nbjobs.Store, done: nbjobs.Job, argv: tuple[bytes, ...]
) -> None:
    store.flush()
    before = snapshot(store)
    code, err = _cli(store, *(os.fsdecode(a) for a in argv))
    assert code != 0
    assert "Traceback" not in err, err
    assert err.startswith(("nbjobs: ", "usage:")), err
    assert snapshot(store) == before
