"""The contenders: one small class each, behind the same `Pool` interface.

- raw: a bare ThreadPoolExecutor, no store (the ceiling).
- floor: a ThreadPoolExecutor whose jobs write durable records to diskcache by hand,
  what a user could write in an afternoon.
- huey: Huey with SqliteHuey and its consumer's worker threads in this process.
- nbjobs-thread / nbjobs-process / nbjobs-worker: nbjobs with that executor (the worker
  contender starts a detached worker on the store and stops it at the end); an executor
  nbjobs does not accept yet makes the contender skip.
"""

from __future__ import annotations

import abc
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import diskcache
import huey
import huey.consumer

import nbjobs

Fn = Callable[..., Any]
Handle = Any
#: Huey polls: its workers sleep when the queue is empty and result handles poll too.
#: Delays are lowered from huey's defaults (100 ms, up to 10 s) so that polling does
#: not dominate what we measure; this favours huey.
HUEY_POLL = {"initial_delay": 0.001, "backoff": 1.15, "max_delay": 0.01}
HUEY_RESULT_MAX_DELAY = 0.005
FILL_BATCH = 1000
T = TypeVar("T")


class Unsupported(Exception):
    """This contender does not take part in this measure: reported as skipped, not failed."""


class Pool(abc.ABC):
    """Submit calls, then wait for all their results. A context manager that closes."""

    keys: ClassVar[bool] = False
    folder: ClassVar[str] = ""

    @abc.abstractmethod
    def submit(self, fn: Fn, /, *args: Any, key: str | None = None) -> Handle: ...

    @abc.abstractmethod
    def collect(self, handles: Sequence[Handle]) -> int:
        """Wait for every result and load it; returns how many jobs failed."""

    def fill(self, fn: Fn, args: Iterable[tuple[Any, ...]], keys: Iterable[str | None]) -> int:
        """Run `fn(*a)` for each `a` in `args` (with its key) to the end, as fast as this
        contender can; returns how many failed. Builds the stores that are then read."""
        handles = [self.submit(fn, *a, key=k) for a, k in zip(args, keys, strict=True)]
        return self.collect(handles)

    @abc.abstractmethod
    def close(self) -> None:
        """Stop; jobs that have not started yet are dropped."""

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_failures(loaders: Iterable[Callable[[], object]]) -> int:
    """Call each loader; count those that raise (the job's own failure)."""
    failed = 0
    for load in loaders:
        try:
            load()
        except Exception:
            failed += 1
    return failed


class RawPool(Pool):
    """A bare ThreadPoolExecutor: nothing recorded anywhere."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.pool = ThreadPoolExecutor(workers)

    def submit(self, fn: Fn, /, *args: Any, key: str | None = None) -> Handle:
        return self.pool.submit(fn, *args)

    def collect(self, handles: Sequence[Handle]) -> int:
        return count_failures(h.result for h in handles)

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


def open_floor_cache(path: Path) -> diskcache.Cache:
    """The floor's store: diskcache that never evicts."""
    return diskcache.Cache(str(path), eviction_policy="none")


class FloorPool(RawPool):
    """ThreadPoolExecutor + durable diskcache records written by hand.

    Per job: a small record set at submit (pending), updated to running, the result under
    its own key, the record updated to succeeded (or failed). A key is claimed with `add`.
    """

    keys = True
    folder = "floor"

    def __init__(self, workdir: Path, workers: int) -> None:
        super().__init__(workdir, workers)
        self.cache = open_floor_cache(workdir / self.folder)

    def submit(self, fn: Fn, /, *args: Any, key: str | None = None) -> Handle:
        rec = self._claim(fn, key)
        if rec is None:
            return _done_future(None)
        return self.pool.submit(self._run, rec, fn, args)

    def fill(self, fn: Fn, args: Iterable[tuple[Any, ...]], keys: Iterable[str | None]) -> int:
        """The same writes, run here in batches of one transaction each: builds big stores fast."""
        failed = 0
        for chunk in _batches(zip(args, keys, strict=True), FILL_BATCH):
            with self.cache.transact():
                runs = [
                    partial(self._run, rec, fn, a) for a, k in chunk if (rec := self._claim(fn, k))
                ]
                failed += count_failures(runs)
        return failed

    def _claim(self, fn: Fn, key: str | None) -> dict[str, Any] | None:
        """A new pending record, or None when the key is taken."""
        job_id = uuid.uuid4().hex
        if key is not None and not self.cache.add(f"key:{key}", job_id):
            return None
        name = getattr(fn, "__name__", type(fn).__name__)
        rec = {"id": job_id, "name": name, "key": key, "status": "pending", "created": time.time()}
        self.cache.set(f"job:{job_id}", rec)
        return rec

    def _run(self, rec: dict[str, Any], fn: Fn, args: tuple[Any, ...]) -> Any:
        job_key = f"job:{rec['id']}"
        self.cache.set(job_key, rec | {"status": "running", "started": time.time()})
        try:
            value = fn(*args)
        except Exception as exc:
            self.cache.set(job_key, rec | {"status": "failed", "error": repr(exc)})
            raise
        self.cache.set(f"result:{rec['id']}", value)
        self.cache.set(job_key, rec | {"status": "succeeded", "finished": time.time()})
        return value

    def close(self) -> None:
        super().close()
        self.cache.close()


def _batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while chunk := list(itertools.islice(it, size)):
        yield chunk


def _done_future(value: object) -> Future[object]:
    done: Future[object] = Future()
    done.set_result(value)
    return done


class _ThreadConsumer(huey.consumer.Consumer):  # type: ignore[misc]
    """huey's Consumer started from a thread that is not the main one: no signal handlers."""

    def _set_signal_handlers(self) -> None:
        pass


class HueyPool(Pool):
    """SqliteHuey (a file in the work folder) and a thread consumer with 4 workers."""

    def __init__(self, workdir: Path, workers: int) -> None:
        self.huey = huey.SqliteHuey(filename=str(workdir / "huey.db"), results=True)
        self.tasks: dict[Fn, Any] = {}
        self.consumer = _ThreadConsumer(
            self.huey, workers=workers, worker_type="thread", periodic=False, **HUEY_POLL
        )
        starter = threading.Thread(target=self.consumer.start, name="huey-consumer")
        starter.start()
        starter.join()

    def _task(self, fn: Fn) -> Any:
        if fn not in self.tasks:
            self.tasks[fn] = self.huey.task()(fn)
        return self.tasks[fn]

    def submit(self, fn: Fn, /, *args: Any, key: str | None = None) -> Handle:
        return self._task(fn)(*args)

    def collect(self, handles: Sequence[Handle]) -> int:
        return count_failures(
            partial(h.get, blocking=True, max_delay=HUEY_RESULT_MAX_DELAY) for h in handles
        )

    def close(self) -> None:
        self.consumer.stop(graceful=True)
        self.huey.storage.close()


class NbjobsPool(Pool):
    """nbjobs through its module functions, the way a notebook uses it."""

    keys = True
    folder = "nbjobs"

    def __init__(self, workdir: Path, workers: int, executor: str) -> None:
        try:
            self.store = nbjobs.configure(
                store=workdir / self.folder, executor=executor, workers=workers
            )
        except nbjobs.InvalidArgument as exc:
            raise Unsupported(f"nbjobs executor={executor!r} not available: {exc}") from exc
        self.submitted: list[nbjobs.Job] = []
        # executor="worker": a detached worker process with `workers` slots, stopped at close
        self.worker = self.store.start_worker(workers=workers) if executor == "worker" else None

    def submit(self, fn: Fn, /, *args: Any, key: str | None = None) -> Handle:
        job = nbjobs.submit(fn, *args, key=key)
        self.submitted.append(job)
        return job

    def collect(self, handles: Sequence[Handle]) -> int:
        return count_failures(h.result for h in handles)

    def close(self) -> None:
        """Cancel the jobs that have not started, then close the store.

        (`Store.close()` with pending jobs raises IllegalTransition pending -> interrupted.)
        """
        for job in self.submitted:
            if job.status == "pending":
                job.cancel()
        if self.worker is not None:
            self.store.stop_worker(self.worker, grace=0)
        self.store.close()


#: Every contender: name -> pool factory(workdir, workers). Later executors plug in here.
POOLS: dict[str, Callable[[Path, int], Pool]] = {
    "raw": RawPool,
    "floor": FloorPool,
    "huey": HueyPool,
    "nbjobs-thread": partial(NbjobsPool, executor="thread"),
    "nbjobs-process": partial(NbjobsPool, executor="process"),
    "nbjobs-worker": partial(NbjobsPool, executor="worker"),
}


def open_pool(contender: str, workdir: Path, workers: int) -> Pool:
    if contender not in POOLS:
        raise Unsupported(f"{contender} has no job pool")
    return POOLS[contender](workdir, workers)
