"""The keyless durability window is bounded (#15 item 14): a keyless submit returns before
its record is committed, and a submit loop faster than the writer thread used to queue
without end (a SIGKILL then lost seconds of submits). Past `writer.QUEUE_MAX` queued ops a
keyless submit waits for the writer."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from gates import Gates, blocked, poll, wait_for_file

import nbjobs
from nbjobs.store.writer import _BATCH_MAX, QUEUE_MAX


def echo(x: Any) -> Any:
    return x


@contextmanager
def write_lock(path: Path) -> Iterator[None]:
    """Another connection (as another process would) holds the store's write lock: no
    writer thread can commit meanwhile."""
    con = sqlite3.connect(path / "cache.db", isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        yield
        con.execute("COMMIT")
    finally:
        con.close()


def test_a_keyless_submit_loop_never_queues_more_than_the_bound(tmp_path: Path) -> None:
    gates = Gates(tmp_path / "gates")
    n = QUEUE_MAX + 300
    with nbjobs.Store(tmp_path / "store", workers=1) as store:
        # The one pool thread is busy: the loop's submits are the writer's only ops.
        busy = store.submit(blocked, *gates.task("busy"), 0)
        assert poll(lambda: gates.started("busy"))
        store.flush()
        backlogs: list[int] = []
        jobs: list[nbjobs.Job] = []

        def loop() -> None:
            for i in range(n):
                jobs.append(store.submit(echo, i))
                backlogs.append(store.storage.writer.backlog())

        with write_lock(store.path):
            submitter = threading.Thread(target=loop)
            submitter.start()
            # The writer cannot commit: the loop fills the queue up to the bound, then waits.
            assert poll(lambda: len(backlogs) >= QUEUE_MAX)
        submitter.join(timeout=120)
        assert not submitter.is_alive()
        gates.open_all()
        assert busy.result(timeout=60) == 0
        assert max(backlogs) <= QUEUE_MAX, max(backlogs)
        assert [job.result(timeout=60) for job in jobs] == list(range(n))


CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    from gates import Gates, blocked, wait_for_file
    import nbjobs

    def echo(x):
        return x

    store = nbjobs.Store(sys.argv[1], workers=1)
    folder = sys.argv[2]
    gates = Gates(Path(folder))
    store.submit(blocked, *gates.task("busy"), 0)  # the pool thread: busy, adds no ops
    wait_for_file(gates.task("busy")[0])
    store.flush()  # the functions are stored: the loop's submits are the only ops
    open(os.path.join(folder, "ready"), "w").close()
    wait_for_file(os.path.join(folder, "go"))
    fd = os.open(os.path.join(folder, "log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for i in range(int(sys.argv[4])):
        job = store.submit(echo, i)
        os.write(fd, (job.id + "\\n").encode())  # in the kernel's page cache: survives SIGKILL
    open(os.path.join(folder, "done"), "w").close()
    wait_for_file(os.path.join(folder, "never"), deadline_s=600)
    """
)


def _waiting(pid: int) -> bool:
    """The process's main thread sleeps at each of 20 looks 10 ms apart: it is no longer
    running its loop (it waits for a lock or an event)."""
    for _ in range(20):
        if psutil.Process(pid).status() != psutil.STATUS_SLEEPING:
            return False
        time.sleep(0.01)
    return True


def test_a_sigkilled_submit_loop_loses_at_most_the_bound(tmp_path: Path) -> None:
    path, folder = tmp_path / "store", tmp_path / "child"
    folder.mkdir()
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    tests = str(Path(__file__).parent)
    n = 4 * (QUEUE_MAX + _BATCH_MAX)  # more than the bound, whatever the writer took
    child = subprocess.Popen([sys.executable, str(script), str(path), str(folder), tests, str(n)])
    try:
        assert wait_for_file(folder / "ready", folder / "never")
        log = folder / "log"
        lines = lambda: log.read_text().count("\n") if log.exists() else 0  # noqa: E731
        with write_lock(path):
            (folder / "go").touch()
            # Nothing commits: the loop queues up to the bound, then waits for the writer
            # (were it unbounded, it would run to its end).
            assert poll(lambda: lines() >= QUEUE_MAX)
            assert poll(lambda: (folder / "done").exists() or _waiting(child.pid))
            os.kill(child.pid, signal.SIGKILL)
            child.wait(timeout=60)
        returned = log.read_text().split()
        with nbjobs.Store(path) as store:
            found = store.storage.statuses(returned)
        lost = len(returned) - len(found)
        assert lost > 0  # (the lock was held: the test did measure a loss)
        assert lost <= QUEUE_MAX + _BATCH_MAX, (lost, len(returned))
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
