"""`executor="worker"`: jobs queued in the store for detached workers, who are rung to claim them.

A job submitted with `executor="worker"` is written `pending` with no owner (committed by the
writer as any other submit); a worker process (`python -m nbjobs.worker`, nbjobs/worker/)
claims it. Once the writer has committed it, the workers of this host are rung (see
nbjobs/store/wakeups.py), one wake-up per writer batch, so they claim it at once rather than
at their next poll. Starting, listing and stopping the workers is nbjobs/worker/control.py.
"""

from __future__ import annotations

import os
import threading

from nbjobs.running.local_job import LocalJob
from nbjobs.store import wakeups, worker_table
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Sql


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
        self._storage.writer.put(Call(self._bells), self._rang)

    def _bells(self, sql: Sql) -> list[str]:
        return worker_table.bells(sql, self._storage.path, os.uname().nodename)

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
