"""A resizable pool of daemon threads that take jobs from one queue.

Each thread owns a *slot* (nothing for threads, a child process for processes), so a
slot can be replaced on its own when its process dies or must be killed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from nbjobs.running.local_job import LocalJob


class Slot(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=Slot)


class Pool(Generic[S]):
    """Runs `run(job, slot)` for queued jobs on at most `workers` threads.

    >>> pool = Pool("demo", 2, make_slot=lambda: None, run=lambda job, slot: None)  # doctest: +SKIP
    """

    address: str | None = None  # the jobs run on this machine

    def __init__(
        self,
        name: str,
        workers: int,
        make_slot: Callable[[], S],
        run: Callable[[LocalJob, S], None],
        release: Callable[[], None] = lambda: None,
    ) -> None:
        self.name = name
        self.workers = workers
        self._make_slot = make_slot
        self._run = run
        self._release = release  # called by each thread as it ends: closes its connection
        self._queue: queue.SimpleQueue[LocalJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy: dict[str, threading.Thread] = {}  # job id -> thread running it
        self._lock = threading.Lock()  # guards `_threads` and `_busy`

    def start(self, job: LocalJob) -> None:
        """Queue `job`; a free thread starts it."""
        self._queue.put(job)
        if len(self._threads) < self.workers:
            self._grow()

    def resize(self, workers: int) -> None:
        with self._lock:
            self.workers = workers
            for _ in range(max(0, len(self._threads) - workers)):
                self._queue.put(None)  # the thread that takes it leaves the pool

    def abandon(self, job_id: str) -> None:
        """Give the slot of the thread running `job_id` to a new thread.

        Python cannot stop a thread: the old one finishes its call, its outcome is
        dropped, and it leaves the pool instead of taking another job.
        """
        with self._lock:
            stuck = self._busy.pop(job_id, None)
            if stuck is not None and stuck in self._threads:
                self._threads.remove(stuck)
        self._grow()

    def shutdown(self) -> None:
        """Stop every thread; wait for those that run no job (a thread still in a job's
        call leaves once the call returns: Python cannot stop it)."""
        self.resize(0)
        with self._lock:
            busy = set(self._busy.values())
            idle = [t for t in self._threads if t not in busy]
        for thread in idle:
            if thread is not threading.current_thread():
                thread.join(timeout=_IDLE_JOIN_S)

    def _grow(self) -> None:
        with self._lock:
            while len(self._threads) < self.workers:
                t = threading.Thread(
                    target=self._loop, name=f"nbjobs-{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()

    def _loop(self) -> None:
        me = threading.current_thread()
        slot = self._make_slot()
        try:
            while me in self._threads:
                job = self._queue.get()
                if job is None:
                    break
                job_id = job.rec.id
                with self._lock:
                    self._busy[job_id] = me
                try:
                    self._run(job, slot)
                finally:
                    # (`abandon` may have taken it already, or a new attempt on another
                    # thread holds the entry now: only this thread's own entry goes.)
                    with self._lock:
                        if self._busy.get(job_id) is me:
                            del self._busy[job_id]
                    # An idle thread must not keep its last job (function, arguments) alive.
                    del job
        finally:
            with self._lock:
                if me in self._threads:
                    self._threads.remove(me)
            slot.close()
            self._release()


_IDLE_JOIN_S = 30.0  # an idle thread takes its stop at once; this bounds an unlucky one
