"""Detached worker processes seen from outside: start, reuse, list, ring and stop them.

Workers register in the store (nbjobs/store/worker_table.py), one row each, renewed by their
heartbeat; a stop request is a value in that row (and SIGTERM when on this host).

`start_worker()` reuses a live worker rather than starting another (a notebook re-run from
the top must not pile up workers). It marks the worker's row `wanted` in one transaction; a
worker about to exit for being idle moves its row from `running` to `stopping` in one
transaction too. So either the worker stopped first (the kernel starts a new one) or it
sees it is wanted and serves another `idle_timeout`: a reused worker never exits under the
kernel that was just handed it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nbjobs.clock import SYSTEM
from nbjobs.errors import InvalidArgument, StoreError, WaitTimeout
from nbjobs.store import wakeups, worker_table
from nbjobs.store.owners import owner_alive
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Sql

#: Seconds a stopping worker lets its running jobs finish before handing them back.
STOP_GRACE = 5.0
#: Seconds a job stays claimed by a worker without a heartbeat (`--lease`).
LEASE = 30.0
#: Seconds between looks at the queue when no wake-up came: the fallback for a lost one (or a
#: job made claimable by a kernel-side dependency). Submits, finished jobs, requeues and
#: hand-backs ring the workers, so a new job normally starts within a millisecond or two.
POLL = 0.5


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A detached worker of a store, as its registry row says.

    `state` is "running", "stopping" (asked to stop, or idle and exiting) or "dead" (its
    process is gone, or its heartbeat is older than its lease). `workers` is how many jobs
    it runs at once, `cwd` its working directory, `log` the file its output goes to.
    """

    id: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float
    workers: int
    running: int
    state: str
    cwd: str
    owner: str
    log: str

    @property
    def alive(self) -> bool:
        return self.state != "dead"


def log_path(storage: Storage, worker_id: str) -> Path:
    """The file a worker's output goes to.

    >>> log_path(storage, "w1")  # doctest: +SKIP
    PosixPath('/home/me/.nbjobs/logs/worker-w1.log')
    """
    return storage.path / "logs" / f"worker-{worker_id}.log"


def list_workers(storage: Storage) -> list[WorkerInfo]:
    """Every registered worker, oldest first; dead ones are marked `state="dead"`.

    >>> [w.id for w in list_workers(storage) if w.alive]  # doctest: +SKIP
    ['w1']
    """
    now = storage.clock.now()
    out = []
    for row in storage.read(worker_table.rows):
        state = row.state
        if not owner_alive(row.owner) or row.heartbeat_at + row.lease < now:
            state = "dead"
        elif row.stop is not None:
            state = "stopping"  # asked: it takes no new job from its next heartbeat on
        elif state == "wanted":
            state = "running"
        out.append(
            WorkerInfo(
                row.id, row.pid, row.host, row.started_at, row.heartbeat_at, row.slots,
                row.running, state, row.cwd, row.owner, str(log_path(storage, row.id)),
            )
        )  # fmt: skip
    return out


def dead_here(storage: Storage) -> list[str]:
    """Ids of registered workers whose process is certainly gone (this host only).

    >>> dead_here(storage)  # doctest: +SKIP
    []
    """
    return [row.id for row in storage.read(worker_table.rows) if not owner_alive(row.owner)]


def ring_others(storage: Storage, worker_id: str) -> None:
    """Wake the other workers of this host: claimable jobs were just committed.

    >>> ring_others(storage, "w1")  # doctest: +SKIP
    """
    host = os.uname().nodename
    wakeups.ring(storage.read(lambda sql: worker_table.bells(sql, storage.path, host, worker_id)))


@contextlib.contextmanager
def starting(storage: Storage) -> Iterator[None]:
    """Held while a process looks for a live worker and starts one if there is none, so
    that two kernels (or threads) calling `start_worker()` at once start one worker, not
    two: the second finds the first's worker registered. (An advisory lock on a file of
    the store's `workers/` folder; released at once if the holder dies.)"""
    try:
        import fcntl  # POSIX only: imported here so that `import nbjobs` works without it
    except ImportError:  # not POSIX: no lock (two kernels may then start two workers)
        yield
        return
    folder = storage.path / "workers"
    folder.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(folder / ".starting", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


def reuse(storage: Storage) -> WorkerInfo | None:
    """The oldest live worker of the store that is not stopping, now marked wanted (so it
    does not exit for being idle before it served another `idle_timeout`); None if none."""
    for info in list_workers(storage):
        if info.state == "running" and storage.writer.call(
            functools.partial(worker_table.adopt, worker_id=info.id)
        ):
            return info
    return None


def differences(info: WorkerInfo, workers: int | None) -> list[str]:
    """How a reused worker differs from the one `start_worker(workers=...)` would start here."""
    found = []
    if workers is not None and workers != info.workers:
        found.append(f"it runs {info.workers} jobs at once, not {workers}")
    if info.cwd != os.getcwd():
        found.append(
            f"it runs in {info.cwd}, not in this process's working directory {os.getcwd()} "
            "(jobs calling functions of your own modules may not find them there)"
        )
    return found


def spawn(
    storage: Storage,
    worker_id: str,
    workers: int,
    idle_timeout: float | None,
    lease: float,
    timeout: float = 60.0,
) -> WorkerInfo:
    """Start `python -m nbjobs.worker` detached (its own session, so it survives a kernel
    restart) with this process's working directory and `sys.path`; wait until it registers."""
    log = log_path(storage, worker_id)
    log.parent.mkdir(mode=0o700, exist_ok=True)
    argv = [
        sys.executable, "-m", "nbjobs.worker", "--store", str(storage.path),
        "--workers", str(workers), "--lease", str(lease), "--id", worker_id,
    ]  # fmt: skip
    if idle_timeout is not None:
        argv += ["--idle-timeout", str(idle_timeout)]
    cwd = os.getcwd()
    path = [cwd if p == "" else p for p in sys.path]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
    import subprocess  # here: `import nbjobs` need not load it

    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # Reap it when it exits, so that it does not linger as a zombie of this kernel.
    threading.Thread(target=proc.wait, name="nbjobs-worker-reaper", daemon=True).start()
    deadline = SYSTEM.monotonic() + timeout
    while True:
        found = [w for w in list_workers(storage) if w.id == worker_id]
        if found:
            return found[0]
        if proc.poll() is not None or SYSTEM.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise StoreError(
                f"the worker for the store at {storage.path} did not start "
                f"(exit code {proc.poll()}); its log {log} ends with:\n{tail}"
            )
        threading.Event().wait(0.02)


def stop(
    storage: Storage,
    worker: str | WorkerInfo | None,
    wait: bool,
    timeout: float | None,
    grace: float,
) -> list[WorkerInfo]:
    """Ask one worker (or every live one) to stop; with `wait`, return once they are gone."""
    known = list_workers(storage)
    if worker is None:
        chosen = known
    else:
        wid = worker.id if isinstance(worker, WorkerInfo) else worker
        chosen = [w for w in known if w.id == wid]
        if not chosen:
            listed = ", ".join(repr(w.id) for w in known) or "none"
            raise InvalidArgument(
                f"worker must be the id of a worker of the store at {storage.path} "
                f"(or None for all), not {wid!r}; its workers: {listed}"
            )

    storage.writer.call(lambda sql: worker_table.ask_stop(sql, [w.id for w in chosen], grace))
    for w in chosen:
        if w.host == os.uname().nodename and owner_alive(w.owner):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(w.pid, signal.SIGTERM)
    if wait:
        _wait_gone(storage, chosen, timeout)
    return chosen


def _wait_gone(storage: Storage, chosen: list[WorkerInfo], timeout: float | None) -> None:
    """Until each worker's process is gone (this host) or its row is (other hosts)."""
    deadline = None if timeout is None else SYSTEM.monotonic() + timeout
    here = os.uname().nodename
    while True:
        rows = {w.id: w for w in list_workers(storage)}
        left = [
            w.id
            for w in chosen
            if (owner_alive(w.owner) if w.host == here else w.id in rows and rows[w.id].alive)
        ]
        if not left:

            def forget(sql: Sql) -> None:
                for w in chosen:
                    worker_table.remove(sql, storage.path, w.id)

            storage.writer.call(forget)
            return
        if deadline is not None and SYSTEM.monotonic() > deadline:
            raise WaitTimeout(f"worker(s) {left} still running after {timeout} s")
        threading.Event().wait(0.05)
