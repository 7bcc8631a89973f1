"""Waiting for jobs of this store from this process: the store watcher and the done-callback thread.

Jobs run by this process signal their end directly; jobs run elsewhere (another kernel, a
worker) are watched by one polling thread per store (`Watcher`). The done callbacks users add
run in one callback thread per store (`CallbackThread`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from nbjobs import states
from nbjobs.store import wakeups
from nbjobs.store.storage import Storage

_POLL_MIN = 0.02
_POLL_MAX = 0.25


class CallbackThread:
    """Runs the done callbacks users add (`Job.add_done_callback`) one after the other, in
    one thread per store: started by the first, stopped by `Store.close()`.

    Never in the writer thread, whose commit hands them their job's end: a callback may call
    any nbjobs function, and one that reads the store there would wait for itself. Nor in
    the watcher's, so a slow callback delays no other job's end.
    """

    def __init__(self, release: Callable[[], None] = lambda: None) -> None:
        self._queue: queue.SimpleQueue[Callable[[], object] | None] = queue.SimpleQueue()
        self._release = release  # called by the thread as it ends: closes its connection
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def run(self, callback: Callable[[], object]) -> None:
        """Queue `callback()` for the callback thread (after `stop()`: a thread of its own,
        since the caller may be the writer thread committing a job's end as the store
        closes, where a callback that reads the store would wait for itself)."""
        with self._lock:
            if not self._closed:
                if self._thread is None or not self._thread.is_alive():  # first, or forked
                    self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(
                        target=self._loop,
                        args=(self._queue, self._release),
                        name="nbjobs-callbacks",
                        daemon=True,
                    )
                    self._thread.start()
                self._queue.put(callback)
                return
        threading.Thread(target=callback, name="nbjobs-callback", daemon=True).start()

    def stop(self) -> None:
        """Run the callbacks queued so far, then end the thread (not waited for from a
        callback, which may close its own store)."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            if thread is None or not thread.is_alive():
                return
            self._queue.put(None)
        if thread is not threading.current_thread():
            thread.join(timeout=30)

    @staticmethod
    def _loop(
        calls: queue.SimpleQueue[Callable[[], object] | None], release: Callable[[], None]
    ) -> None:
        try:
            while (callback := calls.get()) is not None:
                callback()
                del callback  # waiting for the next, keep this one's job and closure unreferenced
        finally:
            release()  # a callback that read the store opened a connection in this thread


class Watcher:
    """Polls the store for jobs of other processes: calls their start hooks once they left
    `pending`, and their done callbacks once they are finished (or gone).

    While it watches, it listens on a socket in `<store>/watchers/` that detached workers
    ring when a job of theirs starts or ends (`wakeups.ring_watchers`), so it looks at
    once; the poll, from 20 ms up to 250 ms, is the fallback.
    """

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._waiting: dict[str, list[Callable[[], object]]] = {}
        self._starting: dict[str, list[Callable[[], object]]] = {}
        self._lock = threading.Lock()
        self._wake: wakeups.Doorbell | None = None  # the running thread's (two sockets)
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, job_id: str, callback: Callable[[], None]) -> None:
        """Call `callback()` once the job is finished or gone."""
        self._watch(self._waiting, job_id, callback)

    def remove(self, job_id: str, callback: Callable[[], None]) -> None:
        """Stop watching for `callback` (added with `add`) if it was not called yet."""
        with self._lock:
            callbacks = self._waiting.get(job_id)
            if callbacks is not None and callback in callbacks:
                callbacks.remove(callback)
                if not callbacks:
                    del self._waiting[job_id]

    def add_start(self, job_id: str, callback: Callable[[], object]) -> None:
        """Call `callback()` once the job has started (it is no longer pending); dropped
        uncalled if the job leaves the store first."""
        self._watch(self._starting, job_id, callback)

    def _watch(
        self,
        table: dict[str, list[Callable[[], object]]],
        job_id: str,
        callback: Callable[[], object],
    ) -> None:
        with self._lock:
            if self._closed:
                return  # the store is closed: nothing will be watched
            table.setdefault(job_id, []).append(callback)
            if self._thread is None or not self._thread.is_alive():
                self._wake = wakeups.Doorbell()
                self._thread = threading.Thread(
                    target=self._loop, args=(self._wake,), name="nbjobs-watch", daemon=True
                )
                self._thread.start()
            else:
                assert self._wake is not None
                self._wake.set()

    def close(self) -> None:
        """Drop what is watched and end the thread (its socket with it); idempotent."""
        with self._lock:
            self._closed = True
            self._waiting.clear()
            self._starting.clear()
            thread, bell = self._thread, self._wake
        if bell is not None:
            bell.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _loop(self, bell: wakeups.Doorbell) -> None:
        bell.listen(wakeups.watcher_address(self._storage.path))
        try:
            self._watch_until_done(bell)
        finally:
            bell.close()  # stops listening, removes its socket
            self._storage.release_thread()

    def _watch_until_done(self, bell: wakeups.Doorbell) -> None:
        delay = _POLL_MIN
        while True:
            with self._lock:
                ids = list(self._waiting.keys() | self._starting.keys())
                if not ids:
                    self._thread = self._wake = None
                    return
            found = self._storage.statuses(ids)
            fire: list[Callable[[], object]] = []
            with self._lock:
                for job_id in ids:
                    status = found.get(job_id)
                    if status != states.PENDING:  # started (a gone job never started here)
                        started = self._starting.pop(job_id, [])
                        fire += started if status is not None else []
                    if status is None or status in states.FINISHED:
                        fire += self._waiting.pop(job_id, [])
            for callback in fire:
                callback()
            if fire:  # look again at once: stop listening if nothing is left to watch
                delay = _POLL_MIN
                continue
            delay = min(delay * 1.5, _POLL_MAX)
            bell.wait(delay)
