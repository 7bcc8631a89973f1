"""Issue #15, "never lose, never hang": done callbacks, waits that time out, Executor.map.

A done callback may call any public nbjobs function (it runs in the store's callback
thread, never in its writer thread); a wait or an `as_completed` that gives up leaves no
callback behind; `nbjobs.Executor.map` keeps no result alive once the caller dropped it.
Scripts that could hang on a regression run in a child process with a deadline, so a hang
fails the test instead of hanging pytest.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import Gates, blocked, poll

import nbjobs

pytestmark = pytest.mark.timeout(300)

SCRIPT_DEADLINE = 120  # seconds a child script may take before it counts as hung


def run_script(tmp_path: Path, code: str) -> str:
    """Run `code` in a fresh Python with `tmp_path` as argv[1]; return its stdout. Fails
    (and kills the child) if it does not exit within the deadline."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    tests = str(Path(__file__).parent)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.environ.get("PYTHONPATH", ""), tests]))
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=SCRIPT_DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=30)
        pytest.fail(f"the script hung (killed after {SCRIPT_DEADLINE} s)\n{out}\n{err}")
    assert proc.returncode == 0, f"{out}\n{err}"
    return out


@pytest.fixture
def gates(tmp_path: Path) -> Iterator[Gates]:
    g = Gates(tmp_path / "gates")
    yield g
    g.open_all()


# ------------------------------------------------------------------------ 1. callback deadlock
CALLBACK_USES_THE_STORE = """
    import sys, threading
    import nbjobs

    nbjobs.configure(store=sys.argv[1] + "/default")
    store = nbjobs.Store(sys.argv[1] + "/store")
    seen = []
    called = threading.Event()

    def callback(job):
        seen.append(threading.current_thread().name)
        seen.append(store.stats()["succeeded"])
        seen.append(nbjobs.stats()["succeeded"])
        seen.append(store.submit(pow, 2, 5).result(timeout=60))
        seen.append(nbjobs.submit(pow, 3, 2).result(timeout=60))
        called.set()

    gate = threading.Event()
    job = store.submit(gate.wait, 60)
    job.add_done_callback(callback)
    gate.set()
    assert job.result(timeout=60) is True
    assert called.wait(60), "the callback never finished"
    after = store.submit(pow, 2, 10)
    assert after.result(timeout=60) == 1024
    print(seen)
"""


def test_a_done_callback_may_use_the_store_and_the_process_exits(tmp_path: Path) -> None:
    out = run_script(tmp_path, CALLBACK_USES_THE_STORE)
    thread, *answers = eval(out)
    assert thread != "nbjobs-writer"
    assert answers == [1, 0, 32, 9]


WRITER_WAITS_ON_ITSELF = """
    import sys, threading
    import nbjobs

    store = nbjobs.Store(sys.argv[1] + "/store")
    writer = store.storage.writer
    errors = []
    done = threading.Event()

    def on_the_writer_thread():
        for wait in (writer.flush, lambda: writer.call(lambda sql: 1), store.stats):
            try:
                wait()
            except nbjobs.NbjobsError as exc:
                errors.append(str(exc))
        done.set()

    store.submit(pow, 2, 2).result(timeout=60)  # the writer thread is running
    writer.later(on_the_writer_thread)
    assert done.wait(60), "the writer thread hung waiting on itself"
    assert store.submit(pow, 2, 3).result(timeout=60) == 8
    store.close()
    print(repr(errors))
"""


def test_waiting_for_the_writer_on_its_own_thread_raises_instead_of_hanging(
    tmp_path: Path,
) -> None:
    errors = eval(run_script(tmp_path, WRITER_WAITS_ON_ITSELF))
    assert len(errors) == 3
    assert all("writer thread" in message for message in errors)


def current_name() -> str:
    return threading.current_thread().name


def test_done_callbacks_run_in_one_callback_thread_stopped_by_close(
    tmp_path: Path, gates: Gates, wait_for: Any
) -> None:
    def callback_threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "nbjobs-callbacks"]

    before = callback_threads()
    for i in range(50):
        with nbjobs.Store(tmp_path / "store") as store:
            job = gates.start(store.submit, f"slow-{i}", i, wait_for)
            names: list[str] = []
            job.add_done_callback(lambda j, seen=names: seen.append(current_name()))
            gates.open(f"slow-{i}")
            job.wait(timeout=60)
            assert poll(names.copy, 30) == ["nbjobs-callbacks"], i
    assert poll(lambda: callback_threads() == before, 30)


def test_a_callback_may_close_its_store(tmp_path: Path, gates: Gates, wait_for: Any) -> None:
    store = nbjobs.Store(tmp_path / "store")
    job = gates.start(store.submit, "slow", None, wait_for)
    closed = threading.Event()
    job.add_done_callback(lambda j: (j.store.close(), closed.set()))
    gates.open("slow")
    assert closed.wait(60)
    assert store._jobs.closed


# ------------------------------------------------------------------------ 4. unbounded growth
def done_callbacks(store: nbjobs.Store, job_id: str) -> int:
    """How many done callbacks wait on this job (held here, or by the store's watcher)."""
    local = store._jobs.active.get(job_id)
    if local is not None:
        return len(local.on_done)
    return len(store._jobs._watcher._waiting.get(job_id, []))


@pytest.fixture(params=["thread", "worker"])
def unfinished(request: Any, gates: Gates, wait_for: Any) -> nbjobs.Job:
    """A job that stays unfinished: run here and blocked, or queued for a worker that
    does not exist (watched by the store's watcher thread)."""
    if request.param == "thread":
        return gates.start(nbjobs.submit, "slow", "v", wait_for)
    return nbjobs.submit(blocked, *gates.task("queued"), "v", executor="worker")


def test_waits_that_time_out_leave_no_callback_behind(unfinished: nbjobs.Job) -> None:
    store = unfinished.store
    before = done_callbacks(store, unfinished.id)
    for _ in range(2000):
        assert nbjobs.wait([unfinished], timeout=0) == (set(), {unfinished})
    assert done_callbacks(store, unfinished.id) == before


def test_as_completed_that_times_out_leaves_no_callback_behind(unfinished: nbjobs.Job) -> None:
    store = unfinished.store
    before = done_callbacks(store, unfinished.id)
    for _ in range(2000):
        with pytest.raises(nbjobs.WaitTimeout):
            list(nbjobs.as_completed([unfinished], timeout=0))
    finished = nbjobs.submit(pow, 2, 3)
    finished.wait(timeout=60)
    for _ in range(100):  # left after its first job, and dropped
        abandoned = nbjobs.as_completed([unfinished, finished], timeout=60)
        assert next(abandoned) == finished
        del abandoned
    assert done_callbacks(store, unfinished.id) == before


def test_job_waits_that_time_out_leave_no_watch_behind(gates: Gates) -> None:
    queued = nbjobs.submit(blocked, *gates.task("queued"), "v", executor="worker")
    for _ in range(20):
        with pytest.raises(nbjobs.WaitTimeout):
            queued.result(timeout=0.05)  # long enough to hand the wait to the watcher
    assert done_callbacks(queued.store, queued.id) == 0


def test_a_wait_that_returns_still_sees_the_job_finish(gates: Gates, wait_for: Any) -> None:
    job = gates.start(nbjobs.submit, "slow", "v", wait_for)
    for _ in range(100):
        nbjobs.wait([job], timeout=0)
    gates.open("slow")
    assert nbjobs.wait([job], timeout=60) == ({job}, set())
    assert list(nbjobs.as_completed([job], timeout=60)) == [job]


# ------------------------------------------------------------------------ 13. Executor refs
class Dummy:
    """A result object a weak reference can watch."""


def freed(ref: weakref.ref[Any]) -> bool:
    """The object is gone once garbage is collected (the delivery thread lets go of it a
    moment after the caller got it: collect on every look, not once)."""
    gc.collect()
    return ref() is None


def make_dummy(i: int) -> Dummy:
    return Dummy()


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_executor_map_keeps_no_result_alive(tmp_path: Path, executor: str) -> None:
    # CPython's test_free_reference (its generic executor tests), against nbjobs.Executor.
    with nbjobs.Executor(max_workers=2, executor=executor, store=tmp_path / "s") as ex:
        for obj in ex.map(make_dummy, range(10)):
            ref = weakref.ref(obj)
            del obj
            assert poll(lambda ref=ref: freed(ref), 30), "a result is still referenced"


def test_executor_future_results_are_freed_with_the_future(tmp_path: Path) -> None:
    with nbjobs.Executor(max_workers=2, store=tmp_path / "s") as ex:
        fut = ex.submit(make_dummy, 1)
        ref = weakref.ref(fut.result(timeout=60))
        del fut
        assert poll(lambda: freed(ref), 30), "a result is still referenced"
