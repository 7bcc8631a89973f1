"""One writer thread per store and process: queued writes committed in batches.

Callers never wait for SQLite unless they ask for an answer (`call`). A batch is one
transaction (group commit). Consecutive state changes of the same job inside a batch
are coalesced into one row write: a trivial job's insert, start and finish usually
reach the disk as a single INSERT of its final record, in one transaction, so every
transition is still persisted atomically with its timestamps.
"""

from __future__ import annotations

import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from .codec import CallParts
from .records import JobRecord

log = logging.getLogger("nbjobs")

Sql = Callable[..., sqlite3.Cursor]
Blob = tuple[str, bytes | None, str | None]  # (key, inline bytes, file name)
Callback = Callable[[Any, BaseException | None], None]
_BATCH_MAX = 512
# Queued ops at which a keyless submit waits for the writer to commit them (`put_bounded`):
# the writer commits ~20,000 ops/s here, a tight submit loop queues ~2.6 per job.
QUEUE_MAX = 1024
_FORKS = [0]  # bumped in a forked child, whose writer thread did not survive the fork


def _forked() -> None:
    _FORKS[0] += 1


os.register_at_fork(after_in_child=_forked)


@dataclass(slots=True)
class Insert:
    """Insert a new job record with its pickled call and blobs (`once`: blobs written
    only if absent)."""

    rec: JobRecord
    call: bytes | CallParts | None = None
    blobs: list[Blob] = field(default_factory=list)
    once: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(slots=True)
class Cas:
    """Write `rec` (and its blobs) only if the stored status is still `expected`."""

    rec: JobRecord
    expected: str
    blobs: list[Blob] = field(default_factory=list)


@dataclass(slots=True)
class Call:
    """Any function of the transaction's `sql`; its return value goes to the caller."""

    fn: Callable[[Sql], Any]


@dataclass(slots=True)
class Later:
    """Run `fn()` in the writer thread when its batch is gathered; the writes it queues
    join that batch in its place (so a `flush()` queued after it covers them)."""

    fn: Callable[[], None]


Op = Insert | Cas | Call


class Applier(Protocol):
    def apply(self, sql: Sql, op: Op) -> Any: ...


class _Item:
    __slots__ = ("callbacks", "future", "op")

    def __init__(self, op: Op, future: Future[Any] | None, callback: Callback | None) -> None:
        self.op = op
        self.future = future
        self.callbacks: list[Callback] = [callback] if callback is not None else []


class Writer:
    """Commits queued ops for one store from one daemon thread."""

    def __init__(self, transact: Callable[[], Any], sql: Callable[[], Sql], applier: Applier):
        self._transact = transact
        self._sql = sql
        self._applier = applier
        self._queue: queue.SimpleQueue[_Item | Later | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._generation = -1
        self._lock = threading.Lock()
        self._into: list[_Item] | None = None  # the batch a `Later` running now adds to

    def _running(self) -> bool:
        # The thread only ends through stop(); a forked child has none (another generation).
        return self._thread is not None and self._generation == _FORKS[0]

    def _ensure_thread(self) -> None:
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            self._generation = _FORKS[0]
            self._queue = queue.SimpleQueue()  # a forked child must not inherit queued ops
            self._thread = threading.Thread(target=self._loop, name="nbjobs-writer", daemon=True)
            self._thread.start()

    def put(self, op: Op, callback: Callback | None = None) -> None:
        """Queue `op`; `callback(result, error)` runs in the writer thread after the commit."""
        into = self._into
        if into is not None and threading.current_thread() is self._thread:
            into.append(_Item(op, None, callback))  # from a `Later`: joins its batch
            return
        if not self._running():
            self._ensure_thread()
        self._queue.put(_Item(op, None, callback))

    def put_bounded(self, op: Op, callback: Callback | None = None) -> None:
        """`put`, but first, when `QUEUE_MAX` ops wait in the queue, wait until the writer
        has committed them all (not in the writer thread, which would wait for itself). A
        keyless submit returns before its commit: this bounds what a crash can take with it
        to about `QUEUE_MAX` ops; a submit loop faster than the writer grew the queue
        without end (50,000 ops after 20,000 submits, 2-7 s of commits). Waiting for the
        whole queue, not for room for one op, makes one submit in hundreds wait (p99 intact).
        """
        if self._queue.qsize() >= QUEUE_MAX and threading.current_thread() is not self._thread:
            self.flush()
        self.put(op, callback)

    def backlog(self) -> int:
        """Ops queued for the writer and not yet taken into a batch."""
        return self._queue.qsize()

    def later(self, fn: Callable[[], None]) -> None:
        """Run `fn()` in the writer thread, before the next batch is written: work that
        need not hold up the calling thread (a job thread ending its job takes the next)."""
        if not self._running():
            self._ensure_thread()
        self._queue.put(Later(fn))

    def call(self, fn: Callable[[Sql], Any]) -> Any:
        """Run `fn(sql)` in the next batch and return its result once it is committed."""
        self._ensure_thread()
        fut: Future[Any] = Future()
        self._queue.put(_Item(Call(fn), fut, None))
        return fut.result()

    def flush(self) -> None:
        """Return once everything queued before this call is committed."""
        if self._running():
            self.call(lambda sql: None)

    def stop(self) -> None:
        if self._running():
            self._queue.put(None)
            assert self._thread is not None
            self._thread.join(timeout=30)
        self._thread = None

    def _loop(self) -> None:
        q = self._queue
        while True:
            got = q.get()
            if got is None:
                return
            batch: list[_Item] = []
            stop = False
            while True:
                if isinstance(got, Later):
                    self._run_later(got, batch)
                else:
                    batch.append(got)
                if len(batch) >= _BATCH_MAX:
                    break
                try:
                    got = q.get_nowait()
                except queue.Empty:
                    break
                if got is None:
                    stop = True
                    break
            if batch:
                self._commit(_coalesce(batch))
            # Waiting for the next op, keep nothing of this batch (results, jobs) alive.
            got = None
            batch.clear()
            if stop:
                return

    def _run_later(self, op: Later, batch: list[_Item]) -> None:
        self._into = batch
        try:
            op.fn()
        except Exception:
            log.exception("nbjobs: a deferred store update failed")
        finally:
            self._into = None

    def _commit(self, batch: list[_Item]) -> None:
        try:
            with self._transact():
                sql = self._sql()
                results = [self._applier.apply(sql, item.op) for item in batch]
            outcomes: list[tuple[Any, BaseException | None]] = [(r, None) for r in results]
        except Exception:
            # One op failed and the whole transaction rolled back: replay the ops one by
            # one so that a single bad op does not sink the others.
            outcomes = [self._commit_one(item) for item in batch]
        for item, (result, error) in zip(batch, outcomes, strict=True):
            _deliver(item, result, error)

    def _commit_one(self, item: _Item) -> tuple[Any, BaseException | None]:
        try:
            with self._transact():
                return self._applier.apply(self._sql(), item.op), None
        except Exception as exc:
            return None, exc


def _deliver(item: _Item, result: Any, error: BaseException | None) -> None:
    if item.future is not None:
        if error is None:
            item.future.set_result(result)
        else:
            item.future.set_exception(error)
    for cb in item.callbacks:
        try:
            cb(result, error)
        except Exception:
            log.exception("nbjobs: a store write callback failed")
    if error is not None and item.future is None and not item.callbacks:
        log.error("nbjobs: a store write failed: %s", error)


def _coalesce(batch: list[_Item]) -> list[_Item]:
    """Merge chains of writes to the same job (insert/cas followed by cas) into one."""
    out: list[_Item] = []
    last: dict[str, _Item] = {}
    for item in batch:
        op = item.op
        if isinstance(op, Call):
            last.clear()  # a function may read records: never merge across it
            out.append(item)
            continue
        prev = last.get(op.rec.id)
        if isinstance(op, Cas) and prev is not None and _chains(prev.op, op):
            prev.op = _merge(prev.op, op)
            prev.callbacks += item.callbacks
            continue
        last[op.rec.id] = item
        out.append(item)
    return out


def _chains(first: Op, then: Cas) -> bool:
    return not isinstance(first, Call) and first.rec.status == then.expected


def _merge(first: Op, then: Cas) -> Op:
    if isinstance(first, Insert):
        return Insert(then.rec, first.call, first.blobs + then.blobs, first.once)
    assert isinstance(first, Cas)
    return Cas(then.rec, first.expected, first.blobs + then.blobs)
