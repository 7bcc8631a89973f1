"""`nbjobs.Executor`: a `concurrent.futures.Executor` whose work is recorded in a store.

Code written for `ThreadPoolExecutor` works unchanged: `submit` returns a real
`concurrent.futures.Future`, and `map`, `shutdown(wait, cancel_futures)` and the
context manager behave as the standard library documents. Unlike a `Job`, a Future
keeps its result in memory once it has it (that is what a Future is).
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from nbjobs import validate
from nbjobs.api.default_store import default_store
from nbjobs.api.job import Job
from nbjobs.api.store import Store
from nbjobs.calls.options import Options

P = ParamSpec("P")
T = TypeVar("T")


class _Started:
    """Moves a future on from pending once, whoever comes first: its job's start (the
    runner's hook for a job of this process, the store watcher for a worker's job) or a
    cancel of the future. Returns False when the future was cancelled (the job must not
    run), as `Future.set_running_or_notify_cancel` does, which it calls only once."""

    __slots__ = ("_done", "_fut", "_lock")

    def __init__(self, fut: concurrent.futures.Future[Any]) -> None:
        self._fut = fut
        self._lock = threading.Lock()
        self._done = False

    def __call__(self) -> bool:
        with self._lock:
            if self._done:
                return not self._fut.cancelled()
            self._done = True
            return self._fut.set_running_or_notify_cancel()


class Executor(concurrent.futures.Executor):
    """A drop-in `Executor` backed by the job store.

    >>> with nbjobs.Executor(max_workers=4) as ex:        # doctest: +SKIP
    ...     squares = list(ex.map(pow, range(10), [2] * 10))
    >>> squares[3]                                        # doctest: +SKIP
    9

    `executor` is `"thread"`, `"process"`, `"worker"` or a `dask.distributed.Client`;
    `store` a path or `nbjobs.Store` (default: the default store's folder). Every call becomes
    a job you can see with `nbjobs.jobs()`. With `"worker"` the calls queue for the detached
    workers of the store (`nbjobs.start_worker()`; their size, not `max_workers`, bounds
    them), and a future is `running()` once this process sees its job start in the store
    (it looks a few times a second).
    """

    def __init__(
        self,
        max_workers: int | None = None,
        executor: str | Any = "thread",
        *,
        store: str | os.PathLike[str] | Store | None = None,
        name: str | None = None,
    ) -> None:
        if max_workers is not None:
            validate.positive_int(max_workers, "max_workers", validate.WORKERS_MAX)
        if store is None:
            path: str | os.PathLike[str] = default_store().path
        else:
            path = store.path if isinstance(store, Store) else store
        # A Store of its own, so that max_workers bounds this executor's concurrency.
        self._store = Store(path, executor=executor, workers=max_workers)
        self._options = Options(name=validate.name(name, "") or None)
        self._futures: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._shutdown = False
        self._deliveries: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Job] | None]
        self._deliveries = queue.SimpleQueue()
        self._courier = threading.Thread(target=self._deliver, name="nbjobs-futures", daemon=True)
        self._courier.start()

    @property
    def store(self) -> Store:
        return self._store

    def submit(
        self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> concurrent.futures.Future[T]:
        """Schedule `fn(*args, **kwargs)`; every keyword goes to `fn` (no job options here)."""
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut: concurrent.futures.Future[T] = concurrent.futures.Future()
            started = _Started(fut)
            job = self._store._submit_checked(
                fn, args, dict(kwargs), self._options, on_start=started
            )
            fut.job = job  # type: ignore[attr-defined]
            self._futures.add(fut)
        fut.add_done_callback(lambda f: self._settled(f, job, started))
        job._when_done(lambda: self._deliveries.put((fut, job)))
        return fut

    def _settled(self, fut: concurrent.futures.Future[Any], job: Job, started: _Started) -> None:
        # A future cancelled before its job started (as far as this process saw): cancel
        # the job, and tell waiters (concurrent.futures.wait counts a cancelled future
        # only once it is "notified"), unless the job's start got there first and did.
        if fut.cancelled():
            job.cancel()
            started()
        with self._lock:
            self._futures.discard(fut)

    def _deliver(self) -> None:
        try:
            self._deliver_all()
        finally:
            self._store.storage.release_thread()

    def _deliver_all(self) -> None:
        # Results are loaded from disk here, never in the store's writer thread.
        while (item := self._deliveries.get()) is not None:
            self._settle(*item)
            # Waiting for the next, keep nothing of this one: its caller may have dropped
            # the future and its result (as `map` does as it yields them).
            del item

    @staticmethod
    def _settle(fut: concurrent.futures.Future[Any], job: Job) -> None:
        if fut.done():
            return
        exc = job.exception(timeout=0)
        if isinstance(exc, concurrent.futures.CancelledError):
            fut.cancel()
            # A job cancelled elsewhere after it started: the future is running.
            if not fut.cancelled():
                fut.set_exception(exc)
        elif exc is not None:
            fut.set_exception(exc)
        else:
            fut.set_result(job.result(timeout=0))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop accepting work; optionally cancel what has not started; optionally wait."""
        with self._lock:
            self._shutdown = True
            pending = list(self._futures)
        if cancel_futures:
            for fut in pending:
                fut.cancel()
        if wait:
            concurrent.futures.wait(pending)
            self._close()
        else:
            threading.Thread(target=self._close_when_done, args=(pending,), daemon=True).start()

    def _close_when_done(self, pending: list[concurrent.futures.Future[Any]]) -> None:
        concurrent.futures.wait(pending)
        self._close()

    def _close(self) -> None:
        self._deliveries.put(None)
        self._courier.join(timeout=60)
        self._store.close()
