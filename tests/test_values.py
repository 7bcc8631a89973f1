"""Values of every size and shape survive the round trip through the store; odd keys work."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import nbjobs


def identity(value: Any) -> Any:
    return value


def make_bytes(n: int) -> bytes:
    return (bytes(range(251)) * (n // 251 + 1))[:n]


def make_arrays() -> dict[str, Any]:
    big = np.arange(3_000_000, dtype=np.float64).reshape(1000, 3000)
    return {
        "big": big,
        "strided": big[::3, ::7],  # not contiguous
        "fortran": np.asfortranarray(big[:200]),
        "small": np.array([1, 2, 3], dtype=np.int8),
        "objects": np.array(["a", None, 3], dtype=object),
        "empty": np.empty((0, 4)),
    }


@pytest.mark.parametrize("n", [0, 1, 1000, 256 * 1024 - 64, 256 * 1024, 256 * 1024 + 1, 5_000_000])
def test_bytes_of_every_size_round_trip(store: nbjobs.Store, n: int) -> None:
    job = store.submit(make_bytes, n)
    assert job.result(timeout=60) == make_bytes(n)
    assert store.get(job.id).result(timeout=60) == make_bytes(n)


def test_numpy_arrays_round_trip(store: nbjobs.Store) -> None:
    got = store.submit(make_arrays).result(timeout=60)
    want = make_arrays()
    assert set(got) == set(want)
    for name, array in want.items():
        assert got[name].dtype == array.dtype, name
        assert got[name].shape == array.shape, name
        assert np.array_equal(got[name], array), name
    assert got["fortran"].flags.f_contiguous
    got["big"][0, 0] = -1.0  # a loaded array is writable and independent of the store
    assert store.submit(make_arrays).result(timeout=60)["big"][0, 0] == 0.0


@pytest.mark.parametrize(
    "value",
    [None, 0, "", "ünïcødé", (1, "a"), {"nested": [1, {2, 3}]}, float("inf"), b"\x00" * 10],
    ids=repr,
)
def test_plain_values_round_trip(store: nbjobs.Store, value: Any) -> None:
    assert store.submit(identity, value).result(timeout=60) == value


@pytest.mark.parametrize(
    "key",
    ["a/b/../c", "ünïcødé-🔑", " spaces ", "with:colons:r:", "x" * 1000, "'; DROP TABLE jobs; --"],
    ids=["slashes", "unicode", "spaces", "colons", "long", "sql"],
)
def test_odd_keys_work(store: nbjobs.Store, key: str) -> None:
    job = store.submit(identity, key, key=key)
    assert job.key == key
    assert job.result(timeout=60) == key
    assert store.get(key).id == job.id
    assert store.submit(identity, key, key=key).id == job.id
    assert store.forget(key) is True
    with pytest.raises(nbjobs.JobNotFound):
        store.get(key)


def test_a_key_that_looks_like_another_jobs_id_is_refused(store: nbjobs.Store) -> None:
    first = store.submit(identity, 1)
    first.result(timeout=60)
    with pytest.raises(nbjobs.InvalidArgument, match="shape of a job id"):
        store.submit(identity, 2, key=first.id)
    assert store.get(first.id).result(timeout=60) == 1
    assert store.stats()["succeeded"] == 1


def test_a_forgotten_jobs_handle_says_so(store: nbjobs.Store) -> None:
    job = store.submit(identity, 1, key="soon-gone")
    job.result(timeout=60)
    assert store.forget("soon-gone") is True
    with pytest.raises(nbjobs.JobNotFound):
        job.result(timeout=5)
    # Displaying it (a cell that shows `job`, nbconvert's HTML) says so, never raises.
    assert "forgotten" in repr(job)
    assert "forgotten" in job._repr_html_()
