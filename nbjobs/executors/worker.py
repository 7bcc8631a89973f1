"""Detached workers seen from a kernel: queue jobs for them, start, list and stop them.

A job submitted with `executor="worker"` is written `pending` with no owner (committed by the
writer as any other submit); a worker process (`python -m nbjobs.worker`, nbjobs/worker/)
claims it. Once the writer has committed it, the workers of this host are rung (see
nbjobs/wakeups.py), one wake-up per writer batch, so they claim it at once rather than at
their next poll. Workers register in the `nbjobs_workers` table, one row each, renewed by
their heartbeat; a stop request is a value in that row (and SIGTERM when on this host).

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
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbjobs.clock import SYSTEM
from nbjobs.errors import InvalidArgument, StoreError, WaitTimeout
from nbjobs.running.runner import LocalJob
from nbjobs.store import wakeups
from nbjobs.store.owners import owner_alive
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Sql

#: Seconds a stopping worker lets its running jobs finish before handing them back.
STOP_GRACE = 5.0
_COLUMNS = "id, owner, host, pid, started_at, heartbeat_at, slots, running, state, cwd, lease, stop"


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


class WorkerBackend:
    """`executor="worker"`: the job waits in the store, `pending`, for a detached worker."""

    name = "worker"
    needs_pickle = True
    kernel_owned = False
    workers = 0
    address: str | None = None  # workers find their jobs in the store folder itself

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._lock = threading.Lock()
        self._ringing = False  # a wake-up is queued behind the writes of earlier jobs
        self._again = False  # and more jobs were queued after it: ring once more

    def start(self, job: LocalJob) -> None:
        """The queued `pending` record is the job: once the writer has committed it (with
        its next batch, normally within a millisecond) the workers are rung to claim it.
        One wake-up serves every job queued before it: a map of 10,000 jobs rings about
        once per writer batch, not once per job."""
        with self._lock:
            if self._ringing:
                self._again = True
                return
            self._ringing = True
        self._queue_ring()

    def _queue_ring(self) -> None:
        # Queued after the job's write: its callback runs once that write is committed.
        self._storage.writer.put(Call(lambda sql: bells(self._storage, sql)), self._rang)

    def _rang(self, addrs: list[str] | None, _error: BaseException | None) -> None:
        wakeups.ring(addrs or ())
        with self._lock:
            again, self._again = self._again, False
            self._ringing = again
        if again:
            self._queue_ring()

    def resize(self, workers: int) -> None:
        """A detached worker's size is chosen by `start_worker(workers=...)`."""

    def shutdown(self) -> None:
        """Detached workers outlive the kernel: nothing to stop here."""

    def expire(self, job: LocalJob, attempt: int) -> None:
        """Time limits of worker jobs are enforced by the worker running them."""

    def cancel_running(self, job: LocalJob) -> bool:
        """Never called: worker jobs are not held by the kernel (it cancels them in the store)."""
        return False


# --------------------------------------------------------------------------- registry
def log_path(storage: Storage, worker_id: str) -> Path:
    return storage.path / "logs" / f"worker-{worker_id}.log"


def register(sql: Sql, row: dict[str, Any]) -> None:
    sql(
        f"INSERT OR REPLACE INTO nbjobs_workers ({_COLUMNS}) "
        "VALUES (:id, :owner, :host, :pid, :started_at, :heartbeat_at, :slots, :running, "
        ":state, :cwd, :lease, NULL)",
        row,
    )


def heartbeat(sql: Sql, worker_id: str, now: float, running: int, state: str) -> float | None:
    """Renew a worker's row; returns the grace of a stop asked of it (None: keep going).

    A `wanted` mark (see `adopt`) stays while the worker is idle; a busy worker clears it
    (its jobs already keep it serving)."""
    sql(
        "UPDATE nbjobs_workers SET heartbeat_at = :now, running = :running, state = CASE "
        "WHEN state = 'wanted' AND :state = 'running' AND :running = 0 THEN state "
        "ELSE :state END WHERE id = :id",
        {"now": now, "running": running, "state": state, "id": worker_id},
    )
    return requested_grace(sql, worker_id)


def adopt(sql: Sql, worker_id: str) -> bool:
    """Mark a running worker `wanted` (a kernel was just handed it): when it is next about
    to exit for being idle it serves another `idle_timeout` instead. False if it is
    stopping (or gone) already."""
    cur = sql(
        "UPDATE nbjobs_workers SET state = 'wanted' "
        "WHERE id = ? AND state IN ('running', 'wanted') AND stop IS NULL",
        (worker_id,),
    )
    return cur.rowcount == 1


def retire(sql: Sql, worker_id: str) -> bool:
    """An idle worker's last word: True if it may exit (its row is now `stopping`); False if
    a kernel wanted it meanwhile (the mark is cleared: it serves on)."""
    cur = sql(
        "UPDATE nbjobs_workers SET state = 'running' WHERE id = ? AND state = 'wanted'",
        (worker_id,),
    )
    if cur.rowcount == 1:
        return False
    sql("UPDATE nbjobs_workers SET state = 'stopping' WHERE id = ?", (worker_id,))
    return True


def requested_grace(sql: Sql, worker_id: str) -> float | None:
    """The grace of the stop asked of this worker in the store, or None."""
    row = sql("SELECT stop FROM nbjobs_workers WHERE id = ?", (worker_id,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def deregister(sql: Sql, storage: Storage, worker_id: str) -> None:
    """Forget a worker that is gone: its row and its wake-up socket."""
    sql("DELETE FROM nbjobs_workers WHERE id = ?", (worker_id,))
    wakeups.forget(wakeups.address(storage.path, worker_id))


def bells(storage: Storage, sql: Sql | None = None, but: str | None = None) -> list[str]:
    """The wake-up addresses of the running workers registered on this host (but `but`)."""
    rows = (sql or storage._sql)(
        "SELECT id FROM nbjobs_workers WHERE host = ? AND state IN ('running', 'wanted')",
        (os.uname().nodename,),
    ).fetchall()
    found = (wakeups.address(storage.path, wid) for (wid,) in rows if wid != but)
    return [addr for addr in found if addr is not None]


def ring_others(storage: Storage, worker_id: str) -> None:
    """Wake the other workers of this host: claimable jobs were just committed."""
    wakeups.ring(bells(storage, but=worker_id))


def list_workers(storage: Storage) -> list[WorkerInfo]:
    """Every registered worker, oldest first; dead ones are marked `state="dead"`."""
    now = storage.clock.now()
    rows = storage._sql(f"SELECT {_COLUMNS} FROM nbjobs_workers ORDER BY started_at").fetchall()
    out = []
    for wid, owner, host, pid, started, beat, slots, running, state, cwd, lease, stop in rows:
        if not owner_alive(owner) or beat + lease < now:
            state = "dead"
        elif stop is not None:
            state = "stopping"  # asked: it takes no new job from its next heartbeat on
        elif state == "wanted":
            state = "running"
        out.append(
            WorkerInfo(
                wid, pid, host, started, beat, slots, running, state, cwd, owner,
                str(log_path(storage, wid)),
            )
        )  # fmt: skip
    return out


def dead_here(storage: Storage) -> list[str]:
    """Ids of registered workers whose process is certainly gone (this host only)."""
    rows = storage._sql("SELECT id, owner FROM nbjobs_workers").fetchall()
    return [wid for wid, owner in rows if not owner_alive(owner)]


# --------------------------------------------------------------------------- start / stop
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
            functools.partial(adopt, worker_id=info.id)
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

    def ask(sql: Sql) -> None:
        for w in chosen:
            sql("UPDATE nbjobs_workers SET stop = ? WHERE id = ?", (grace, w.id))

    storage.writer.call(ask)
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
                    deregister(sql, storage, w.id)

            storage.writer.call(forget)
            return
        if deadline is not None and SYSTEM.monotonic() > deadline:
            raise WaitTimeout(f"worker(s) {left} still running after {timeout} s")
        threading.Event().wait(0.05)
