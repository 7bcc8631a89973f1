"""`key=nbjobs.auto`: a key derived from the call, stable across processes and kernel restarts.

Keys are computed in real subprocesses with different PYTHONHASHSEED values and in a real
IPython kernel before and after a restart, where cloudpickle bytes of the same function differ.
"""

from __future__ import annotations

import copy
import dataclasses
import doctest
import importlib.util
import inspect
import json
import os
import pickle
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kernel_helpers import Kernel

import nbjobs.calls.autokey
from nbjobs.calls.autokey import AutoKey, auto, auto_key
from nbjobs.errors import InvalidArgumentType

KEY_FORMAT = re.compile(r"^auto:(?P<label>[\w.<>]+):(?P<digest>[0-9a-f]{32})$")


def fit(rows: Any, alpha: float = 0.1, *, tags: Any = None) -> float:
    return float(len(rows)) * alpha


def key_of(*args: Any, **kwargs: Any) -> str:
    return auto_key(fit, args, kwargs)


# --------------------------------------------------------------------------- the sentinel
def test_auto_reads_well_and_survives_pickling_and_copying() -> None:
    assert repr(auto) == "nbjobs.auto"
    assert pickle.loads(pickle.dumps(auto)) is auto
    assert copy.deepcopy(auto) is auto
    assert isinstance(auto, AutoKey)


def test_key_names_the_function_and_carries_a_hex_digest() -> None:
    match = KEY_FORMAT.match(key_of([1, 2]))
    assert match is not None
    assert match["label"] == "fit"


# --------------------------------------------------------------------------- arguments
def test_same_call_same_key_and_changed_argument_changes_it() -> None:
    assert key_of([1, 2], alpha=0.5) == key_of([1, 2], alpha=0.5)
    assert key_of([1, 2], alpha=0.5) != key_of([1, 2], alpha=0.6)
    assert key_of([1, 2]) != key_of([1, 3])


def test_arguments_are_bound_to_parameters_with_defaults() -> None:
    assert key_of([1], 0.1) == key_of([1], alpha=0.1) == key_of([1])
    assert key_of([1], tags=None) == key_of([1])


def plain(a: int, b: int = 2, c: str = "c") -> None: ...


def positional_only(a: int, /, b: int = 2) -> None: ...


def variadic(a: int, *rest: int, b: int = 2, **more: int) -> None: ...


@pytest.mark.parametrize(
    ("fn", "args"),
    [
        (plain, (1,)),
        (plain, (1, 5)),
        (plain, (1, 5, "x")),
        (positional_only, (1,)),
        (positional_only, (1, 3)),
        (variadic, (1,)),
        (variadic, (1, 2, 3)),
        (len, ([1, 2],)),
    ],
)
def test_positional_calls_hash_as_their_bound_arguments(
    fn: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    """Positional calls are bound without `inspect` on the submit path: the same pairs, the
    same digests, as binding them by keyword."""
    try:
        bound = inspect.signature(fn).bind(*args)
    except ValueError:  # no signature (a builtin): the raw call is hashed
        expected = [("*args", args), ("**kwargs", {})]
    else:
        bound.apply_defaults()
        expected = list(bound.arguments.items())
    assert list(nbjobs.calls.autokey._arguments(fn, args, {})) == expected


def test_positional_and_keyword_forms_of_one_call_have_one_digest() -> None:
    digest = nbjobs.calls.autokey.arguments_digest
    assert (
        digest(plain, (1, 5), {}) == digest(plain, (1,), {"b": 5}) == digest(plain, (1, 5, "c"), {})
    )
    assert digest(plain, (1, 5), {}) != digest(plain, (1,), {})
    assert auto_key(plain, (1,), {}) == auto_key(plain, (), {"a": 1, "b": 2, "c": "c"})
    assert auto_key(positional_only, (1, 2), {}) == auto_key(positional_only, (1,), {})


def test_keys_do_not_change_between_nbjobs_versions() -> None:
    """Stores keep jobs under these keys: a faster hasher must feed blake2b the same bytes.
    (Values computed with nbjobs 0.1.)"""
    assert auto_key(pow, (2, 10), {}) == "auto:pow:8e43bf8c099c9f6591ddcb5424604d9b"
    call = ([3, 1.5, "x", None, (1, 2)],), {"reverse": True}
    assert auto_key(sorted, *call) == "auto:sorted:37fcda1f9c64ec513ac4325b0e705ed2"
    digest = nbjobs.calls.autokey.arguments_digest(divmod, (7, 2), {})
    assert digest == "849bfdb55f232e4bd8c1f65aa6989dde"


def test_a_call_missing_a_required_argument_still_gets_a_key() -> None:
    assert auto_key(plain, (), {}) == auto_key(plain, (), {})  # hashed as the raw call
    assert auto_key(plain, (), {}) != auto_key(plain, (1,), {})


def test_dict_and_set_order_do_not_matter() -> None:
    assert key_of({"a": 1, "b": [2]}) == key_of({"b": [2], "a": 1})
    assert key_of({"x", "y", "z"}) == key_of({"z", "y", "x"})
    assert key_of({"a": 1, "b": 2}) != key_of({"a": 2, "b": 1})


def test_types_are_part_of_the_value() -> None:
    distinct = [
        [1, 2],
        (1, 2),
        {1, 2},
        frozenset({1, 2}),
        1,
        1.0,
        True,
        "1",
        b"1",
        bytearray(b"1"),
        None,
        0.0,
        -0.0,
        np.float64(1.0),
        np.array([1, 2]),
        np.array([1.0, 2.0]),
        np.array([[1, 2]]),
    ]
    keys = [key_of(value) for value in distinct]
    assert len(set(keys)) == len(distinct)


def test_every_nan_is_the_same_value() -> None:
    assert key_of(float("nan")) == key_of(float("-nan")) == key_of(float("inf") - float("inf"))


def test_huge_ints_and_cycles_hash() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert key_of(10**5000) != key_of(10**5000 + 1)
    assert key_of(loop) == key_of(loop)


@dataclasses.dataclass
class Config:
    depth: int
    names: set[str]


def test_dataclasses_hash_by_field_values() -> None:
    assert key_of(Config(3, {"a", "b"})) == key_of(Config(3, {"b", "a"}))
    assert key_of(Config(3, {"a"})) != key_of(Config(4, {"a"}))


def test_an_argument_that_cannot_be_hashed_is_named() -> None:
    with pytest.raises(InvalidArgumentType, match=r"argument 'rows'.*explicit key="):
        key_of(threading.Lock())


class Holder:
    def __init__(self, value: Any) -> None:
        self.value = value


def test_other_objects_hash_by_value_with_joblib_and_by_pickle_without(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_joblib = key_of(Holder([1, 2]))
    assert with_joblib == key_of(Holder([1, 2]))
    assert with_joblib != key_of(Holder([1, 3]))
    monkeypatch.setitem(sys.modules, "joblib", None)  # as if joblib were not installed
    assert key_of(Holder([1, 2])) == key_of(Holder([1, 2])) != with_joblib
    assert key_of(Holder([1, 2])) != key_of(Holder([1, 3]))


# --------------------------------------------------------------------------- NumPy and pandas
def test_100_mb_numpy_array_hashes_its_data() -> None:
    data = np.random.default_rng(0).random(100 * 2**20 // 8)
    start = time.perf_counter()
    key = key_of(data)
    print(f"auto_key of a {data.nbytes / 2**20:.0f} MiB array: {time.perf_counter() - start:.3f} s")
    assert key == key_of(data.copy())
    data[-1] += 1.0
    assert key != key_of(data)


def test_numpy_memory_layout_does_not_matter_but_shape_does() -> None:
    grid = np.arange(12.0).reshape(3, 4)
    assert key_of(grid) == key_of(np.asfortranarray(grid))
    assert key_of(grid) != key_of(grid.reshape(4, 3))
    assert key_of(grid) != key_of(grid.astype(np.float32))


def frame_in_one_go() -> pd.DataFrame:
    return pd.DataFrame({"a": [1, 2, 3], "b": [1.5, 2.5, 3.5]}, index=pd.Index([7, 8, 9], name="i"))


def frame_column_by_column() -> pd.DataFrame:
    frame = pd.DataFrame({"a": [1, 2, 3]}, index=pd.Index([7, 8, 9], name="i"))
    frame["b"] = [1.5, 2.5, 3.5]  # a second block: laid out differently from frame_in_one_go
    return frame


def test_pandas_frames_with_equal_data_get_equal_keys() -> None:
    assert key_of(frame_in_one_go()) == key_of(frame_column_by_column())
    assert key_of(frame_in_one_go()["a"]) == key_of(frame_column_by_column()["a"])


@pytest.mark.parametrize(
    "change",
    [
        lambda f: f.assign(b=[1.5, 2.5, 4.5]),
        lambda f: f.rename(columns={"b": "c"}),
        lambda f: f[["b", "a"]],
        lambda f: f.astype({"a": "float64"}),
        lambda f: f.rename_axis("j"),
        lambda f: f.set_axis([7, 8, 10]),
    ],
    ids=["value", "column name", "column order", "dtype", "index name", "index value"],
)
def test_pandas_frames_that_differ_get_different_keys(
    change: Callable[[pd.DataFrame], pd.DataFrame],
) -> None:
    assert key_of(frame_in_one_go()) != key_of(change(frame_in_one_go()))


# --------------------------------------------------------------------------- functions
def load_cell(path: Path, source: str) -> ModuleType:
    """Run `source` as a module named like a notebook's, from its own file (like a cell)."""
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("cell", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCALE = """\
def scale(x, factor=2):
    return x * factor
"""


def test_same_source_in_another_file_same_key_edited_source_another(tmp_path: Path) -> None:
    first = load_cell(tmp_path / "cell_1.py", SCALE)
    again = load_cell(tmp_path / "cell_2.py", "# shifted by a line\n" + SCALE)
    edited = load_cell(tmp_path / "cell_3.py", SCALE.replace("x * factor", "x * factor + 0"))
    key = auto_key(first.scale, (3,), {})
    assert key.startswith("auto:scale:")
    assert key == auto_key(again.scale, (3,), {})
    assert key != auto_key(edited.scale, (3,), {})


def test_without_source_the_bytecode_counts_not_file_or_line() -> None:
    def compiled(source: str, filename: str) -> Callable[..., Any]:
        namespace: dict[str, Any] = {"__name__": "cell"}
        exec(compile(source, filename, "exec"), namespace)
        scale: Callable[..., Any] = namespace["scale"]
        return scale

    key = auto_key(compiled(SCALE, "<cell-1>"), (3,), {})
    assert key == auto_key(compiled("\n\n" + SCALE, "<cell-2>"), (3,), {})
    assert key != auto_key(compiled(SCALE.replace("x *", "x +"), "<cell-3>"), (3,), {})


HELPERS = """\
def helper(x):
    return x + 1

def main(x):
    return helper(x) * 2
"""


def test_editing_a_notebook_function_the_job_calls_changes_the_key(tmp_path: Path) -> None:
    first = load_cell(tmp_path / "cell_1.py", HELPERS)
    edited = load_cell(tmp_path / "cell_2.py", HELPERS.replace("x + 1", "x + 2"))
    assert auto_key(first.main, (1,), {}) != auto_key(edited.main, (1,), {})


def make_multiplier(n: int) -> Callable[[int], int]:
    def multiply(x: int) -> int:
        return x * n

    return multiply


def test_closures_defaults_and_lambdas_tell_functions_apart() -> None:
    assert auto_key(make_multiplier(2), (1,), {}) == auto_key(make_multiplier(2), (1,), {})
    assert auto_key(make_multiplier(2), (1,), {}) != auto_key(make_multiplier(3), (1,), {})
    add_one, add_two = (lambda x: x + 1), (lambda x: x + 2)
    assert auto_key(add_one, (1,), {}) != auto_key(add_two, (1,), {})


def test_functions_as_arguments_follow_the_same_rule() -> None:
    assert key_of(make_multiplier(2)) == key_of(make_multiplier(2))
    assert key_of(make_multiplier(2)) != key_of(make_multiplier(3))
    assert key_of(len) != key_of(abs)
    assert key_of(fit) != key_of(key_of)


# --------------------------------------------------------------------------- processes
CALLS = """\
import json, pickle, hashlib, sys
from dataclasses import dataclass
import numpy as np
import pandas as pd
from nbjobs.calls.autokey import auto_key

@dataclass
class Options:
    names: set

class Holder:
    def __init__(self, names):
        self.names = names

def train(data, names, options=None, **extra):
    return len(data)

WORDS = {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"}
calls = {
    "set": ((1, [2, 3], {"a": 1.5}), {"names": WORDS}),
    "nested": (([{"k": frozenset(WORDS)}], WORDS), {"extra": {"x": (1.0, None, b"z")}}),
    "dataclass": ((Options(WORDS), None), {}),
    "object": ((Holder(WORDS), None), {}),
    "numpy": ((np.arange(10.0), WORDS), {}),
    "pandas": ((pd.DataFrame({"w": sorted(WORDS)}), WORDS), {}),
}
keys = {name: auto_key(train, args, kwargs) for name, (args, kwargs) in calls.items()}
keys["pickle of the set"] = hashlib.sha256(pickle.dumps(WORDS)).hexdigest()
print(json.dumps(keys))
"""


def keys_in_subprocess(command: list[str], seed: str, cwd: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONHASHSEED": seed}
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    keys: dict[str, str] = json.loads(done.stdout)
    return keys


@pytest.mark.parametrize("how", ["script file", "no source (-c)"])
def test_keys_are_the_same_in_processes_with_other_hash_seeds(tmp_path: Path, how: str) -> None:
    script = tmp_path / "calls.py"
    script.write_text(CALLS)
    command = (
        [sys.executable, str(script)] if how == "script file" else [sys.executable, "-c", CALLS]
    )
    one = keys_in_subprocess(command, "1", tmp_path)
    two = keys_in_subprocess(command, "2", tmp_path)
    # The set pickles differently under the two seeds, so raw pickle bytes would not do.
    assert one.pop("pickle of the set") != two.pop("pickle of the set")
    assert one == two
    assert len(set(one.values())) == len(one)


def test_importing_autokey_imports_no_optional_library() -> None:
    code = (
        "import sys, nbjobs.calls.autokey; print({'numpy', 'pandas', 'joblib'} & set(sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "set()"


# --------------------------------------------------------------------------- a real kernel
@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Any]:

    running = Kernel(tmp_path, {**os.environ, "PYTHONHASHSEED": "1"})
    try:
        yield running
    finally:
        running.stop()


DEFINE = """\
import hashlib, inspect, os, cloudpickle
from nbjobs.calls.autokey import auto_key

def f(x, items, opts, s=None):
    \"\"\"Scale the items.\"\"\"
    return x * len(items) + len(opts)
"""
KEYS = """\
print(json.dumps({
    "pid": os.getpid(),
    "key": auto_key(f, (1, [2, 3], {"a": 1.5}), {"s": {1, 2, 3}}),
    "words": auto_key(f, ({"alpha", "beta", "gamma", "delta"},), {"items": ()}),
    "source": inspect.getsource(f),
    "pickle": hashlib.sha256(cloudpickle.dumps(f)).hexdigest(),
}))
"""


@pytest.mark.slow
def test_key_survives_a_real_kernel_restart_and_follows_an_edit(kernel: Any) -> None:
    kernel.run(DEFINE)
    before = json.loads(kernel.run("import json\n" + KEYS))
    kernel.restart(now=False, env={**os.environ, "PYTHONHASHSEED": "2"})
    kernel.run("# the same cell, run again after the restart\n" + DEFINE)
    after = json.loads(kernel.run("import json\n" + KEYS))
    assert after["pid"] != before["pid"]
    assert "Scale the items" in after["source"]
    assert after["pickle"] != before["pickle"]  # cloudpickle bytes embed the cell's file name
    assert (after["key"], after["words"]) == (before["key"], before["words"])
    assert KEY_FORMAT.match(after["key"])

    kernel.run(DEFINE.replace("+ len(opts)", "- len(opts)"))
    edited = json.loads(kernel.run(KEYS))
    assert edited["key"] != before["key"]
    assert edited["words"] != before["words"]


def test_the_documented_example_runs() -> None:
    results = doctest.testmod(nbjobs.calls.autokey)
    assert results.attempted > 0
    assert results.failed == 0
