"""One writer thread per store and process: queued writes committed in batches.

Callers never wait for SQLite unless they ask for an answer (`call`). A batch is one
transaction (group commit). Consecutive state changes of the same job inside a batch
are coalesced into one row write: a trivial job's insert, start and finish usually
reach the disk as a single INSERT of its final record, in one transaction, so every
transition is still persisted atomically with its timestamps.

A full disk loses nothing: the ops that met it are held, in order, and committed first once
there is room (tried with every new batch, and every `_RETRY_S`); a caller that waits for
its write (`call`, `flush`) gets `StoreFull` at once. A checkpoint after a COMMIT that fails
leaves the batch committed (its frames stay in the WAL): it is never taken for the commit's
failure, and never replays the batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nbjobs.codec import CallParts
from nbjobs.errors import StoreClosed, StoreFull, WouldDeadlock
from nbjobs.records import JobRecord

log = logging.getLogger("nbjobs")

Sql = Callable[..., sqlite3.Cursor]
Blob = tuple[str, bytes | None, str | None]  # (key, inline bytes, file name)
Callback = Callable[[Any, BaseException | None], None]
_BATCH_MAX = 512
_RETRY_S = 0.5  # held ops (a full disk), and a checkpoint that failed, are tried this often
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


_RETRY = Later(lambda: None)  # wakes the writer to try its held ops again


class Applier(Protocol):
    def apply(self, sql: Sql, op: Op) -> Any: ...


class Database(Protocol):
    """The writer's connection to its store (`connections.Connections`)."""

    path: Path  # the store folder

    def batch(self) -> contextlib.AbstractContextManager[None]:
        """One write transaction: committed when the block ends, else rolled back."""

    def sql(self) -> Sql: ...

    def checkpoint(self) -> None:
        """Copy the WAL to the database if it is due (after a committed batch)."""

    def full(self, exc: BaseException, what: str) -> StoreFull | None:
        """The `StoreFull` that `exc` means (no room for `what`), or None."""


class _Item:
    __slots__ = ("callbacks", "future", "op")

    def __init__(self, op: Op, future: Future[Any] | None, callback: Callback | None) -> None:
        self.op = op
        self.future = future
        self.callbacks: list[Callback] = [callback] if callback is not None else []


class Writer:
    """Commits queued ops for one store from one daemon thread."""

    def __init__(self, db: Database, applier: Applier, release: Callable[[], None] = lambda: None):
        self._db = db
        self._applier = applier
        self._release = release  # called by the thread as it ends: closes its connection
        self._closed = False
        self._held: list[_Item] = []  # ops that met a full disk, in order: committed first
        self.full: StoreFull | None = None  # why ops are held (None: none are)
        self._checkpoint_after = 0.0  # a checkpoint that failed is tried again after this
        self._queue: queue.SimpleQueue[_Item | Later | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._generation = -1
        self._lock = threading.Lock()
        self._into: list[_Item] | None = None  # the batch a `Later` running now adds to

    def _running(self) -> bool:
        # The thread only ends through stop(); a forked child has none (another generation).
        return self._thread is not None and self._generation == _FORKS[0]

    def _ensure_thread(self) -> bool:
        """Start the thread if need be; False once the writer is stopped (the store closed):
        a late write must not start a thread on a closed store that nobody ever stops."""
        if self._running():
            return True
        with self._lock:
            if self._closed:
                return False
            if self._running():
                return True
            self._generation = _FORKS[0]
            self._queue = queue.SimpleQueue()  # a forked child must not inherit queued ops
            self._thread = threading.Thread(target=self._loop, name="nbjobs-writer", daemon=True)
            self._thread.start()
            return True

    def put(self, op: Op, callback: Callback | None = None) -> None:
        """Queue `op`; `callback(result, error)` runs in the writer thread after the commit."""
        into = self._into
        if into is not None and threading.current_thread() is self._thread:
            into.append(_Item(op, None, callback))  # from a `Later`: joins its batch
            return
        if not self._running() and not self._ensure_thread():
            _late(op)
            return
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

    def in_thread(self) -> bool:
        """True in the writer thread itself (write callbacks, deferred updates): whatever
        runs there reads what is committed and cannot wait for more (`call`, `flush`)."""
        return threading.current_thread() is self._thread

    def backlog(self) -> int:
        """Ops queued for the writer and not yet taken into a batch."""
        return self._queue.qsize()

    def later(self, fn: Callable[[], None]) -> None:
        """Run `fn()` in the writer thread, before the next batch is written: work that
        need not hold up the calling thread (a job thread ending its job takes the next)."""
        if not self._running() and not self._ensure_thread():
            _late(fn)
            return
        self._queue.put(Later(fn))

    def call(self, fn: Callable[[Sql], Any]) -> Any:
        """Run `fn(sql)` in the next batch and return its result once it is committed.

        Raises `WouldDeadlock` in the writer thread itself, which would wait for itself, and
        `StoreClosed` once the writer is stopped."""
        if threading.current_thread() is self._thread:
            raise WouldDeadlock(
                "this waits for the store's writer thread (nbjobs-writer) and runs on it, so "
                "it would wait for itself forever: code run there (write callbacks, deferred "
                "updates) must not flush, call or read the store through it; hand the work to "
                "another thread (done callbacks of jobs run in the nbjobs-callbacks thread)"
            )
        if not self._ensure_thread():
            raise StoreClosed(f"the job store at {self._db.path} is closed: {_REOPEN}")
        fut: Future[Any] = Future()
        self._queue.put(_Item(Call(fn), fut, None))
        return fut.result()

    def flush(self) -> None:
        """Return once everything queued before this call is committed."""
        if self._running():
            self.call(lambda sql: None)

    def check_room(self) -> None:
        """While writes are held (a full disk), try them again now: raises `StoreFull` if
        there is still no room (at once in the writer thread, which cannot wait for itself)."""
        full = self.full
        if full is None:
            return
        if threading.current_thread() is self._thread:
            raise full
        self.flush()

    def stop(self) -> None:
        """Commit what is queued, end the thread, and take no more writes (idempotent)."""
        with self._lock:
            self._closed = True
            thread = self._thread if self._running() else None
        if thread is not None:
            self._queue.put(None)
            if thread is not threading.current_thread():
                thread.join(timeout=30)
        self._thread = None

    def _loop(self) -> None:
        try:
            self._drain(self._queue)
        finally:
            self._release()

    def _drain(self, q: queue.SimpleQueue[_Item | Later | None]) -> None:
        while True:
            got = q.get() if not self._held else self._retry_wait(q)
            if got is None:
                self._drop_held()
                return
            batch = self._held
            self._held = []
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
                self._drop_held()
                return

    @staticmethod
    def _retry_wait(q: queue.SimpleQueue[_Item | Later | None]) -> _Item | Later | None:
        """The next op, or `_RETRY` after `_RETRY_S` without one (ops are held)."""
        try:
            return q.get(timeout=_RETRY_S)
        except queue.Empty:
            return _RETRY

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
            with self._db.batch():
                sql = self._db.sql()
                results = [self._applier.apply(sql, item.op) for item in batch]
            outcomes: list[tuple[Any, BaseException | None]] = [(r, None) for r in results]
        except Exception as exc:
            full = self._db.full(exc, _updates(len(batch)))
            if full is not None:
                outcomes = []  # one by one they would meet it too: held, in order
                self._hold(batch, full)
            else:
                # One op failed and the whole transaction rolled back: replay the ops one
                # by one so that a single bad op does not sink the others.
                outcomes = self._replay(batch)
        if self.full is not None and not self._held:
            log.warning(
                "nbjobs: the job store at %s has space again: the writes held since it was "
                "full are committed",
                self._db.path,
            )
            self.full = None
        for item, (result, error) in zip(batch, outcomes, strict=False):
            _deliver(item, result, error)
        if outcomes:
            self._checkpoint()

    def _replay(self, batch: list[_Item]) -> list[tuple[Any, BaseException | None]]:
        """Commit the ops one by one: the outcome of each, up to the first that meets a
        full disk (that one and those after it are held)."""
        outcomes: list[tuple[Any, BaseException | None]] = []
        for i, item in enumerate(batch):
            try:
                with self._db.batch():
                    outcomes.append((self._applier.apply(self._db.sql(), item.op), None))
            except Exception as exc:
                full = self._db.full(exc, _updates(len(batch) - i))
                if full is not None:
                    self._hold(batch[i:], full)
                    break
                outcomes.append((None, exc))
        return outcomes

    def _hold(self, items: list[_Item], full: StoreFull) -> None:
        """Keep `items` for the next batch; a caller waiting for one is told at once."""
        held = [item for item in items if item.future is None]
        if self.full is None:
            log.warning(
                "nbjobs: %s; this process holds its %d writes and commits them once there "
                "is room (until then, calls that write raise nbjobs.StoreFull)",
                full,
                len(held),
            )
        self._held = held
        self.full = full  # before a caller hears of it: it then finds the writer full
        for item in items:
            if item.future is not None:
                item.future.set_exception(full)

    def _drop_held(self) -> None:
        """The writer stops: ops still held are lost, and said so."""
        held, self._held = self._held, []
        if held:
            log.warning(
                "nbjobs: %s; the store was closed with %d writes of this process that found "
                "no room: they are lost",
                self.full,
                len(held),
            )
        for item in held:
            _deliver(item, None, self.full)

    def _checkpoint(self) -> None:
        """Checkpoint after a commit; a failure (a full disk) leaves what was committed as
        it is, and is tried again `_RETRY_S` later (each try copies frames until it fails)."""
        if self._checkpoint_after and time.monotonic() < self._checkpoint_after:
            return
        try:
            self._db.checkpoint()
        except Exception as exc:
            if not self._checkpoint_after:
                why = self._db.full(exc, "the copy of the WAL into the database") or exc
                log.warning("nbjobs: committed writes stay in the WAL for now: %s", why)
            self._checkpoint_after = time.monotonic() + _RETRY_S
        else:
            self._checkpoint_after = 0.0


def _updates(n: int) -> str:
    return f"{n} update{'s' if n != 1 else ''} queued by this process"


def _late(op: object) -> None:
    # A job thread that outlived `Store.close()` (Python cannot stop it) reports its end:
    # the store marked that job interrupted as it closed, so there is nothing to write.
    log.debug("nbjobs: a write after the store was closed was dropped: %r", op)


_REOPEN = "open it again with nbjobs.Store(path) to submit or change jobs"


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
