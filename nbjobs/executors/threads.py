"""The thread executor: jobs run in threads of the kernel and share its memory."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ..runner import LocalJob


class ThreadExecutor:
    """A resizable pool of daemon threads, each running one job at a time.

    >>> ran = []
    >>> pool = ThreadExecutor(lambda job: ran.append(job), workers=2)
    >>> pool.workers
    2
    """

    name = "thread"
    needs_pickle = False
    kernel_owned = True

    def __init__(self, run: Callable[[LocalJob], None], workers: int) -> None:
        self._run = run
        self._queue: queue.SimpleQueue[LocalJob | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.workers = workers

    def start(self, job: LocalJob) -> None:
        """Queue `job`; a free thread starts it."""
        self._queue.put(job)
        if len(self._threads) < self.workers:
            self._grow()

    def resize(self, workers: int) -> None:
        with self._lock:
            self.workers = workers
            extra = len(self._threads) - workers
            for _ in range(max(0, extra)):
                self._queue.put(None)
            del self._threads[workers:]

    def _grow(self) -> None:
        with self._lock:
            while len(self._threads) < self.workers:
                t = threading.Thread(
                    target=self._loop, name=f"nbjobs-thread-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            self._run(job)

    def shutdown(self) -> None:
        self.resize(0)
