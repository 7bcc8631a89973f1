"""Waiting on many jobs: done callbacks, `wait`, `as_completed`.

Jobs run by this process signal their end directly; jobs run elsewhere (another
kernel, a worker) are watched by one polling thread per store. The done callbacks users
add run in one callback thread per store.
"""

from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import NamedTuple

from nbjobs import states, validate
from nbjobs.api import watching
from nbjobs.api.job import Job
from nbjobs.clock import SYSTEM
from nbjobs.errors import InvalidArgument, InvalidArgumentType, WaitTimeout
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


class DoneAndNotDone(NamedTuple):
    done: set[Job]
    not_done: set[Job]


def _failed(job: Job) -> bool:
    return job.status in (states.FAILED, states.INTERRUPTED)


def wait(
    jobs: Iterable[Job],
    timeout: float | None = None,
    return_when: str = ALL_COMPLETED,
    *,
    progress: bool = False,
) -> DoneAndNotDone:
    """Wait for jobs like `concurrent.futures.wait`; returns `(done, not_done)` sets.

    `return_when` is `FIRST_COMPLETED`, `FIRST_EXCEPTION` or `ALL_COMPLETED` (the
    constants of `concurrent.futures`, also available as `nbjobs.FIRST_COMPLETED`, ...).
    `progress=True` shows one live bar per group of the jobs meanwhile (see
    `nbjobs.watch`): in the cell in a notebook, on stderr elsewhere.

    >>> done, pending = nbjobs.wait([a, b], timeout=60)   # doctest: +SKIP
    >>> nbjobs.wait(jobs, progress=True)                   # doctest: +SKIP
    """
    limit = validate.timeout(timeout)
    if return_when not in (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION):
        raise InvalidArgument(
            "return_when must be nbjobs.ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, "
            f"not {return_when!r}"
        )
    pending = _job_set(jobs)
    bars = watching.progress_while(pending) if validate.flag(progress, "progress") else None
    done: set[Job] = set()
    cond = threading.Condition()
    finished: list[Job] = []

    def enough() -> bool:
        if not pending:
            return True
        if return_when == FIRST_COMPLETED:
            return bool(done)
        return return_when == FIRST_EXCEPTION and any(_failed(j) for j in done)

    hooks = _notify_when_done(pending, cond, finished)
    deadline = None if limit is None else SYSTEM.monotonic() + limit
    try:
        with cond:
            while True:
                for job in finished:
                    pending.discard(job)
                    done.add(job)
                finished.clear()
                if enough():
                    break
                left = None if deadline is None else deadline - SYSTEM.monotonic()
                if left is not None and left <= 0:
                    break
                cond.wait(0.25 if left is None else min(left, 0.25))
    except KeyboardInterrupt:
        raise _stopped(pending) from None
    finally:
        _forget(hooks)
        if bars is not None:
            bars()
    return DoneAndNotDone(done, pending)


def _stopped(jobs: set[Job]) -> KeyboardInterrupt:
    """What Ctrl-C (the kernel's stop button) during a wait stopped: the wait, not the jobs."""
    return KeyboardInterrupt(
        f"stopped waiting for {len(jobs)} unfinished job(s); they keep running "
        "(job.cancel() stops one)"
    )


def as_completed(jobs: Iterable[Job], timeout: float | None = None) -> Iterator[Job]:
    """Yield jobs as they finish, like `concurrent.futures.as_completed`.

    Raises `nbjobs.WaitTimeout` (a `TimeoutError`) if some are still unfinished after
    `timeout` seconds from the call.

    >>> for job in nbjobs.as_completed(jobs, timeout=600):   # doctest: +SKIP
    ...     print(job.name, job.status)
    """
    limit = validate.timeout(timeout)
    todo = _job_set(jobs)
    return _completed(todo, limit, timeout)


def _completed(todo: set[Job], limit: float | None, timeout: object) -> Iterator[Job]:
    deadline = None if limit is None else SYSTEM.monotonic() + limit
    cond = threading.Condition()
    finished: list[Job] = []
    hooks = _notify_when_done(todo, cond, finished)
    try:
        while todo:
            with cond:
                while not finished:
                    left = None if deadline is None else deadline - SYSTEM.monotonic()
                    if left is not None and left <= 0:
                        raise WaitTimeout(f"{len(todo)} (of the jobs) unfinished after {timeout} s")
                    try:
                        cond.wait(0.25 if left is None else min(left, 0.25))
                    except KeyboardInterrupt:
                        raise _stopped(todo) from None
                ready, finished[:] = list(finished), []
            for job in ready:
                if job in todo:
                    todo.discard(job)
                    yield job
    finally:  # also when the caller stops iterating early
        _forget(hooks)


def _job_set(jobs: object) -> set[Job]:
    """The jobs to wait for, checked at the call: an iterable of `Job` handles."""
    if isinstance(jobs, Job | str) or not isinstance(jobs, Iterable):
        hint = "; to wait for one job: job.wait()" if isinstance(jobs, Job) else ""
        raise InvalidArgumentType(
            f"jobs must be an iterable of nbjobs.Job (a list, a set, ...), "
            f"not {type(jobs).__name__}{hint}"
        )
    out = set(jobs)
    for job in out:
        if not isinstance(job, Job):
            raise InvalidArgumentType(
                f"jobs must hold nbjobs.Job handles, not {type(job).__name__} {job!r:.60} "
                "(nbjobs.get(id_or_key) gives the job of an id or key)"
            )
    return out


def _notify_when_done(
    jobs: set[Job], cond: threading.Condition, finished: list[Job]
) -> list[tuple[Job, Callable[[], None]]]:
    """Have each job, once finished, join `finished` and wake `cond`; returns the hooks,
    which the waiter removes when it stops waiting (done or not)."""
    hooks: list[tuple[Job, Callable[[], None]]] = [
        (job, functools.partial(_notify, cond, finished, job)) for job in jobs
    ]
    for job, hook in hooks:
        job._when_done(hook)
    return hooks


def _forget(hooks: list[tuple[Job, Callable[[], None]]]) -> None:
    for job, hook in hooks:
        job._forget_done(hook)


def _notify(cond: threading.Condition, finished: list[Job], job: Job) -> None:
    with cond:
        finished.append(job)
        cond.notify_all()
