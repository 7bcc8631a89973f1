"""executor="process": jobs in child processes of our own, shipped as cloudpickle bytes."""

from __future__ import annotations

import ctypes
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

import nbjobs

pytestmark = pytest.mark.timeout(120)


class LockedError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def pid_and_cwd() -> tuple[int, str]:
    return os.getpid(), os.getcwd()


def fails() -> None:
    raise KeyError("missing thing")


def raise_locked() -> None:
    raise LockedError("locked out 9")


def returns_lock() -> Any:
    return threading.Lock()


def dies(code: int) -> None:
    os._exit(code)


def kills_itself() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def mark(path: str) -> str:
    with open(path, "a") as f:
        f.write("ran\n")
    return "marked"


def nb_children() -> list[psutil.Process]:
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "nbjobs.running.child" in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


@pytest.fixture(autouse=True)
def no_children_left_behind(wait_for: Any) -> Iterator[None]:
    yield
    nbjobs.default_store().close()
    wait_for(lambda: not nb_children(), timeout=30)


@pytest.fixture
def pstore(tmp_path: Path) -> Iterator[nbjobs.Store]:
    s = nbjobs.Store(tmp_path / "pstore", executor="process", workers=2)
    try:
        yield s
    finally:
        s.close()


def test_a_job_runs_in_another_process_with_this_working_directory(
    pstore: nbjobs.Store,
) -> None:
    pid, cwd = pstore.submit(pid_and_cwd).result(timeout=60)
    assert pid != os.getpid()
    assert cwd == os.getcwd()


def test_a_lambda_and_a_closure_run_in_a_process() -> None:
    factor = 7
    assert nbjobs.submit(lambda x: x * factor, 6, executor="process").result(timeout=60) == 42

    def closure(x: int) -> int:
        return x + factor

    assert nbjobs.submit(closure, 1, executor="process").result(timeout=60) == 8


def test_a_function_from_the_users_own_module_is_imported_in_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "nbjobs_test_usermod.py").write_text(
        textwrap.dedent(
            """
            import os

            def where(x):
                return x * 2, os.getpid()
            """
        )
    )
    monkeypatch.syspath_prepend(str(src))
    mod = importlib.import_module("nbjobs_test_usermod")
    try:
        store = nbjobs.Store(tmp_path / "s", executor="process", workers=1)
        try:
            value, pid = store.submit(mod.where, 21).result(timeout=60)
        finally:
            store.close()
    finally:
        sys.modules.pop("nbjobs_test_usermod", None)
    assert value == 42
    assert pid != os.getpid()


def test_an_unpicklable_argument_is_refused_at_submit_and_writes_nothing() -> None:
    nbjobs.submit(mark, os.devnull, key="existing").result(timeout=60)
    before = (nbjobs.stats(), [j.id for j in nbjobs.jobs(limit=10**6)])
    with pytest.raises(nbjobs.PayloadNotPicklable) as info:
        nbjobs.submit(mark, threading.Lock(), key="never", executor="process")
    assert re.search("pickl", str(info.value), re.IGNORECASE)
    assert "lock" in str(info.value).lower()
    assert (nbjobs.stats(), [j.id for j in nbjobs.jobs(limit=10**6)]) == before
    with pytest.raises(nbjobs.JobNotFound):
        nbjobs.get("never")


def test_errors_come_back_from_the_child(pstore: nbjobs.Store) -> None:
    with pytest.raises(KeyError, match="missing thing"):
        pstore.submit(fails).result(timeout=60)

    locked = pstore.submit(raise_locked)
    with pytest.raises(Exception) as info:
        locked.result(timeout=60)
    described = f"{type(info.value).__name__} {getattr(info.value, 'type_name', '')} {info.value}"
    assert "LockedError" in described
    assert "locked out 9" in described

    bad_result = pstore.submit(returns_lock)
    bad_result.wait(timeout=60)
    assert bad_result.status == "failed"
    assert bad_result.error is not None
    assert re.search("pickl", str(bad_result.error), re.IGNORECASE)


@pytest.mark.parametrize(
    ("fn", "args"),
    [pytest.param(dies, (3,), id="exit"), pytest.param(kills_itself, (), id="sigkill")],
)
def test_a_crashing_child_fails_its_job_and_the_pool_carries_on(
    pstore: nbjobs.Store, fn: Any, args: tuple[Any, ...]
) -> None:
    job = pstore.submit(fn, *args)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.error is not None
    with pytest.raises(nbjobs.NbjobsError):
        job.result(timeout=10)
    values = [pstore.submit(pid_and_cwd) for _ in range(4)]
    assert all(v.result(timeout=60)[0] != os.getpid() for v in values)


def test_keys_are_idempotent_for_process_jobs(pstore: nbjobs.Store, tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    first = pstore.submit(mark, str(log), key="p")
    assert first.result(timeout=60) == "marked"
    again = pstore.submit(mark, str(log), key="p")
    assert again.id == first.id
    assert log.read_text().splitlines() == ["ran"]


def test_closing_the_store_leaves_no_child_processes(tmp_path: Path, wait_for: Any) -> None:
    store = nbjobs.Store(tmp_path / "s", executor="process", workers=2)
    jobs = [store.submit(pid_and_cwd) for _ in range(4)]
    pids = {j.result(timeout=60)[0] for j in jobs}
    assert pids and os.getpid() not in pids
    store.close()
    wait_for(lambda: not any(psutil.pid_exists(p) and _alive(p) for p in pids), timeout=30)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --------------------------------------------------------------------------- Foundation II
SUBMITTER = textwrap.dedent(
    """
    import json, os, sys
    sys.path.insert(0, sys.argv[1])  # a folder only this process has on its path
    forks = []
    os.register_at_fork(before=lambda: forks.append(os.getpid()))
    import nbjobs

    def in_main(x):
        return x * 2, os.getpid()

    def uses_helper():
        import nbjobs_extra_helper
        return os.getcwd(), nbjobs_extra_helper.VALUE, sys.path

    def make_closure(k):
        def add(x):
            return x + k
        return add

    store = nbjobs.Store(sys.argv[2], executor="process", workers=2)
    try:
        doubled, pid = store.submit(in_main, 21).result(timeout=60)
        squared = store.submit(lambda x: x**2, 9).result(timeout=60)
        added = store.submit(make_closure(5), 1).result(timeout=60)
        cwd, helped, child_path = store.submit(uses_helper).result(timeout=60)
    finally:
        store.close()
    print(json.dumps({
        "main": in_main.__module__, "doubled": doubled, "child_pid": pid, "pid": os.getpid(),
        "squared": squared, "added": added, "cwd": cwd, "my_cwd": os.getcwd(),
        "helped": helped, "child_path": child_path, "my_path": sys.path, "forks": forks,
    }))
    """
)


def test_main_functions_lambdas_and_closures_run_with_the_submitters_cwd_and_path(
    tmp_path: Path,
) -> None:
    scripts, work, extra = (tmp_path / d for d in ("scripts", "work", "extra"))
    for folder in (scripts, work, extra):
        folder.mkdir()
    (scripts / "submitter.py").write_text(SUBMITTER)
    (extra / "nbjobs_extra_helper.py").write_text("VALUE = 'helped'\n")
    done = subprocess.run(
        [sys.executable, str(scripts / "submitter.py"), str(extra), str(tmp_path / "store")],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["main"] == "__main__"
    assert seen["doubled"] == 42
    assert seen["child_pid"] != seen["pid"]
    assert (seen["squared"], seen["added"]) == (81, 6)
    assert seen["cwd"] == seen["my_cwd"] == str(work)
    assert seen["helped"] == "helped"
    assert seen["child_path"] == seen["my_path"]
    assert str(extra) in seen["child_path"]
    assert seen["forks"] == [], "the process executor forked"


def segfault() -> None:
    ctypes.string_at(0)


@pytest.mark.parametrize(
    ("fn", "args", "says"),
    [
        pytest.param(dies, (7,), r"\b7\b", id="exit-7"),
        pytest.param(segfault, (), r"SIGSEGV|segmentation", id="segfault"),
    ],
)
def test_a_crash_fails_the_job_with_job_crashed_and_the_pool_carries_on(
    pstore: nbjobs.Store, fn: Any, args: tuple[Any, ...], says: str
) -> None:
    job = pstore.submit(fn, *args)
    with pytest.raises(nbjobs.JobCrashed) as info:
        job.result(timeout=60)
    message = str(info.value)
    assert re.search(says, message, re.IGNORECASE), message
    assert re.search(r"process", message), message
    assert job.status == "failed"
    assert job.error is not None
    assert job.error["type"].endswith("JobCrashed")
    later = [pstore.submit(pid_and_cwd) for _ in range(4)]
    assert all(j.result(timeout=60)[0] != os.getpid() for j in later)
    assert pstore.stats()["succeeded"] == 4


def takes(*args: Any, **kwargs: Any) -> int:
    return len(args) + len(kwargs)


@pytest.mark.parametrize(
    ("args", "kwargs", "named"),
    [
        pytest.param((1, threading.Lock()), {}, r"argument 1\b", id="positional"),
        pytest.param((1,), {"conn": threading.Lock()}, r"conn", id="keyword"),
    ],
)
def test_an_unpicklable_argument_is_named_in_the_error(
    args: tuple[Any, ...], kwargs: dict[str, Any], named: str
) -> None:
    with pytest.raises(nbjobs.PayloadNotPicklable, match=named):
        nbjobs.submit(takes, *args, executor="process", **kwargs)
    assert nbjobs.jobs() == []


def test_an_unpicklable_function_is_refused_at_submit() -> None:
    lock = threading.Lock()

    def holds_a_lock() -> bool:
        return lock.locked()

    with pytest.raises(nbjobs.PayloadNotPicklable, match="holds_a_lock"):
        nbjobs.submit(holds_a_lock, executor="process")
    executor = nbjobs.Executor(1, executor="process")
    try:
        with pytest.raises(nbjobs.PayloadNotPicklable, match="argument 0"):
            executor.submit(takes, threading.Lock())
    finally:
        executor.shutdown()
    assert nbjobs.jobs() == []


class CountsLoads:
    """A callable that appends a line to `path` each time it is unpickled."""

    def __init__(self, path: str, payload: bytes) -> None:
        self.path = path
        self.payload = payload

    def __reduce__(self) -> tuple[Any, tuple[str, bytes]]:
        return (_loaded, (self.path, self.payload))

    def __call__(self, i: int) -> int:
        return i + len(self.payload)


def _loaded(path: str, payload: bytes) -> CountsLoads:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\n")
    return CountsLoads(path, payload)


def test_a_child_loads_each_function_once_for_all_its_jobs(tmp_path: Path) -> None:
    """A map whose function carries big data ships and unpickles it once per child."""
    loads = tmp_path / "loads.txt"
    s = nbjobs.Store(tmp_path / "one-child", executor="process", workers=1)
    try:
        fn = CountsLoads(str(loads), b"x" * 2_000_000)
        jobs = s.map(fn, range(6))
        assert [j.result(timeout=60) for j in jobs] == [i + 2_000_000 for i in range(6)]
        lines = loads.read_text().split()
        assert len(lines) == 1, f"the function was unpickled {len(lines)} times in the child"
        assert int(lines[0]) != os.getpid()
        other = CountsLoads(str(loads), b"y")  # another function is sent and loaded too
        assert s.submit(other, 1).result(timeout=60) == 2
        assert s.submit(fn, 1).result(timeout=60) == 2_000_001  # still kept
        assert len(loads.read_text().split()) == 2
    finally:
        s.close()
