"""Nothing is left behind: threads, file descriptors and child processes (issue #15).

A closed store leaves no thread (none waking 20 times a second) and no open file; 50
open/use/close cycles leave the process as 10 did. A child of a process executor or a
worker dies with its parent from its first instruction, even when the parent dies while
the child starts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from gates import poll

import nbjobs


def _square(x: int) -> int:
    return x * x


def _threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate())


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _settled(count: Callable[[], int], at_most: int) -> int:
    """The count once it is at most `at_most`, or its last value after a deadline: a
    thread that was told to stop may take a moment to be gone."""
    value = poll(lambda: count() <= at_most and count(), 10.0, 0.02)
    return int(value) if value else count()


def _flat(cycle: Callable[[int], None]) -> None:
    """Run 50 cycles: the threads and file descriptors after 50 are those after 10, and
    those after the first but for a few lazily started, process-wide things. (After the
    first: `configure` cycles keep the last default store open, as they should.)"""
    cycle(0)
    threads_before = _settled(lambda: len(_threads()), 0)
    fds_before = _fds()
    for i in range(1, 10):
        cycle(i)
    threads_10 = _settled(lambda: len(_threads()), threads_before + 2)
    fds_10 = _settled(_fds, fds_before + 10)
    for i in range(10, 50):
        cycle(i)
    threads_50 = _settled(lambda: len(_threads()), threads_10)
    fds_50 = _settled(_fds, fds_10)
    assert threads_50 <= threads_10 <= threads_before + 2, _threads()
    assert fds_50 <= fds_10 <= fds_before + 10


def test_store_cycles_leave_threads_and_fds_flat(tmp_path: Path) -> None:
    def cycle(i: int) -> None:
        store = nbjobs.Store(tmp_path / f"s{i}")
        jobs = [store.submit(_square, n) for n in range(3)]
        jobs.append(store.submit(_square, 5, executor="process"))
        assert [job.result(timeout=60) for job in jobs] == [0, 1, 4, 25]
        assert store.stats()["succeeded"] == 4
        store.close()

    _flat(cycle)


def test_configure_cycles_close_the_store_they_replace(tmp_path: Path) -> None:
    def cycle(i: int) -> None:
        nbjobs.configure(store=tmp_path / f"c{i}")
        jobs = [nbjobs.submit(_square, n) for n in range(3)]
        assert [job.result(timeout=60) for job in jobs] == [0, 1, 4]
        assert nbjobs.stats()["succeeded"] == 3

    _flat(cycle)


def test_executor_cycles_leave_threads_and_fds_flat(tmp_path: Path) -> None:
    def cycle(i: int) -> None:
        with nbjobs.Executor(store=tmp_path / "ex") as ex:
            assert list(ex.map(_square, range(3))) == [0, 1, 4]

    _flat(cycle)


def test_a_closed_store_has_no_thread_left(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = nbjobs.Store(tmp_path / "s")
    job = store.submit(_square, 3, timeout=60)  # a time limit: an alarm is set
    assert job.result(timeout=60) == 9
    assert any(t.name == "nbjobs-alarms" for t in threading.enumerate())
    store.close()
    store.close()  # idempotent
    assert set(threading.enumerate()) <= before, _threads()


def test_an_idle_store_sleeps_until_an_alarm_is_due(store: nbjobs.Store) -> None:
    """The alarm thread waits without a timeout while no alarm is set, and not 50 ms at a
    time until a far one (a job's time limit) is due."""
    assert store.submit(_square, 3).result(timeout=60) == 9
    (thread,) = [t for t in threading.enumerate() if t.name == "nbjobs-alarms"]
    assert poll(lambda: _wait_timeout(thread) is None, 10.0)
    assert store.submit(_square, 3, timeout=600).result(timeout=60) == 9
    assert poll(lambda: (_wait_timeout(thread) or 0) >= 0.5, 10.0)


def _wait_timeout(thread: threading.Thread) -> float | None:
    """The timeout of the `Condition.wait` `thread` is blocked in (-1: it is not)."""
    frame = sys._current_frames().get(thread.ident or 0)
    while frame is not None:
        if frame.f_code is threading.Condition.wait.__code__:
            timeout: float | None = frame.f_locals.get("timeout", -1)
            return timeout
        frame = frame.f_back
    return -1


def test_a_closed_store_refuses_new_jobs(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = nbjobs.Store(tmp_path / "s")
    done = store.submit(_square, 2)
    assert done.result(timeout=60) == 4
    store.close()
    with pytest.raises(nbjobs.StoreClosed, match="closed"):
        store.submit(_square, 3)
    with pytest.raises(nbjobs.StoreClosed):
        store.submit(_square, 3, key="k")
    assert done.status == "succeeded"  # reads still work
    assert set(threading.enumerate()) <= before, _threads()


# --------------------------------------------------------------------------- orphans
_HOLD_CHILD = """\
import os, sys, time
from pathlib import Path
# At interpreter start-up, before any code of the child runs: hold a process-executor
# child until the test opens the gate, so that its parent can die first.
gates = os.environ.get("NBJOBS_TEST_HOLD_CHILD")
if gates and "nbjobs.running.child" in " ".join(sys.orig_argv):
    Path(gates, f"child-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not Path(gates, "open").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
"""

_PARENT = """\
import os, signal, sys
from multiprocessing.connection import Connection
from pathlib import Path
import nbjobs

# The parent is killed right after it sent its child the job (its second message, after
# the start-up one), while the child is still starting.
sent = [0]
send_bytes = Connection.send_bytes

def send_then_die(self, buf, *args):
    send_bytes(self, buf, *args)
    sent[0] += 1
    if sent[0] == 2:
        os.kill(os.getpid(), signal.SIGKILL)

Connection.send_bytes = send_then_die
store = nbjobs.Store(sys.argv[1])
store.submit(Path.touch, Path(sys.argv[2]), executor="process").wait(timeout=60)
"""


def _gone(pid: int) -> bool:
    """Whether the process has ended (exited, or a zombie nobody reaps)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_child_whose_parent_died_while_it_started_never_runs_the_job(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    hold.mkdir()
    (hold / "sitecustomize.py").write_text(_HOLD_CHILD)
    marker = tmp_path / "the-job-ran"
    env = dict(os.environ, NBJOBS_TEST_HOLD_CHILD=str(hold))
    env["PYTHONPATH"] = os.pathsep.join([str(hold), env.get("PYTHONPATH", "")])
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(tmp_path / "store"), str(marker)], env=env
    )
    try:
        assert parent.wait(timeout=120) == -signal.SIGKILL
        (child,) = poll(lambda: list(hold.glob("child-*")), 30.0)
    finally:
        (hold / "open").touch()
        if parent.poll() is None:
            parent.kill()
    pid = int(child.name.split("-")[1])
    assert poll(lambda: _gone(pid), 60.0), f"the orphaned child {pid} is still running"
    assert not marker.exists(), "the orphaned child ran the job"
