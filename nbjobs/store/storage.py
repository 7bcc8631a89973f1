"""The Storage facade: opens and closes a store, runs its reads and write transactions.

See docs/design.md. In short: diskcache owns the folder, its SQLite database (WAL), the
per-thread connections and the cross-process transactions. Job records live in our own
tables inside that database (schema.py), each table's SQL in its own module (job_table,
blob_table, schedule_table, cancel_table, worker_table; deletion and dropped for what
deleting leaves). Payloads, results and tracebacks are blobs under their own keys; large
ones are files in `blobs/` (blobs.py). All writes of a process go through one writer
thread that commits them in batches (writer.py, group commit); callers that need the
outcome wait for the commit.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sqlite3
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import diskcache

from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import IllegalTransition, StoreCorrupt, StoreNotWritable
from nbjobs.store import schema
from nbjobs.store.base import Dropped, T, reported
from nbjobs.store.cancel_table import CancelTable
from nbjobs.store.connections import Connections, check_present, raise_if_damaged
from nbjobs.store.deletion import Deletion
from nbjobs.store.dropped import DroppedFiles
from nbjobs.store.folder import prepared
from nbjobs.store.writer import Call, Insert, Op, Sql, Writer


def open_cache(path: Path) -> diskcache.Cache:
    """Open the diskcache under `path`: the only place a diskcache object is created.

    Eviction is off and the size limit cannot bite: records and results are never culled.
    """
    return diskcache.Cache(
        str(path),
        eviction_policy="none",
        size_limit=2**62,
        cull_limit=0,
        statistics=0,
        tag_index=0,
        sqlite_synchronous=1,
        sqlite_journal_mode="wal",
    )


class Storage(Deletion, CancelTable, DroppedFiles):
    """Records, indexes and blobs in one store folder. Knows nothing of executors."""

    def __init__(self, path: str | os.PathLike[str], clock: Clock = SYSTEM) -> None:
        self.path = Path(path).expanduser().absolute()
        self.clock = clock
        self.blob_dir = self.path / "blobs"
        self.cache = self._open_database()
        self.fn_written = set()
        self.db = Connections(self.cache, self.path)
        self._dropped = Dropped()
        self.writer = Writer(_WriterDatabase(self.db, self._batch), self, self.release_thread)
        self._closed = False
        self.blob_dir.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(StoreCorrupt):  # what can be read is still served
            self.remove_dropped()
        _OPEN.add(self)

    def _open_database(self) -> diskcache.Cache:
        """diskcache's database in the (checked or new) store folder, at this schema."""
        cache = None
        try:
            with prepared(self.path) as new:
                if not new:
                    check_present(self.path)
                cache = open_cache(self.path)
                schema.ensure(cache._sql, cache.transact, self.path, new)
            return cache
        except BaseException as exc:
            if cache is not None:
                cache.close()
            raise_if_damaged(self.path, exc)
            if isinstance(exc, sqlite3.OperationalError | OSError):
                raise StoreNotWritable(
                    f"the job store at {self.path} cannot be opened for writing: {exc}. "
                    "Choose a folder you can write (nbjobs.configure(store=...) or "
                    "$NBJOBS_STORE)."
                ) from exc
            raise

    def __repr__(self) -> str:
        return f"Storage({str(self.path)!r})"

    def close(self) -> None:
        """Commit queued writes, stop the writer and close this process's connections and
        files of the store (idempotent). The threads of the store close their own
        connections as they end (`release_thread`)."""
        if self._closed:
            return
        self._closed = True
        self.writer.stop()
        self.db.close()
        self.cache.close()
        _OPEN.discard(self)

    def release_thread(self) -> None:
        """Close the calling thread's connection to the database, if it has one.

        Every thread of ours that may read the store calls this as it ends. A thread's end
        alone does not close its connection: a `sqlite3.Connection` is in a reference cycle
        with its statement cache, so it stays open (3 file descriptors) until the garbage
        collector happens to run. Reading again later simply opens a new one.
        """
        self.db.release_thread()
        self.cache.close()

    @reported
    def read(self, fn: Callable[[Sql], T]) -> T:
        """`fn(sql)` run on this thread's connection (a read of a table's module, which
        never waits for the writer); a damaged page raises `StoreCorrupt`.

        >>> storage.read(worker_table.rows)  # doctest: +SKIP
        [WorkerRow(id='w1', ...)]
        """
        return fn(self._sql)

    @reported
    def version(self) -> int:
        """A number that changes once a write to the store has committed since this
        thread's last call (any process's, this process's writer thread's too).

        No table is read (SQLite's `data_version`): the one read of a live view whose
        store is quiet. Compare only values read by one thread: each has its own
        connection, and so its own count.

        >>> seen = storage.version(); storage.version() == seen  # doctest: +SKIP
        True
        """
        row = self._sql("PRAGMA data_version").fetchone()
        return int(row[0])

    def transact_here(self, fn: Callable[[Sql], T], what: str) -> T:
        """Run `fn(sql)` in one transaction on this thread's own connection (`what` it
        writes is named in a `StoreFull`).

        For the few writes whose caller waits anyway (a keyed claim that is more than one
        INSERT): skipping the writer thread saves two thread hand-offs. The caller never
        checkpoints the WAL (see `connections`).
        """
        with self._then_remove_dropped(), self.db.transaction(what) as sql:
            return fn(sql)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """The writer thread's transaction (`Connections.batch`)."""
        with self._then_remove_dropped(), self.db.batch():
            yield

    def apply(self, sql: Sql, op: Op) -> Any:
        """Carry out one writer op inside the writer's transaction."""
        if isinstance(op, Call):
            return op.fn(sql)
        for key, data, file in op.blobs:
            self.put_blob(sql, key, data, file)
        if isinstance(op, Insert):
            for key, data in op.once:
                self.put_blob_once(sql, key, data)
            self.insert(sql, op.rec, op.call)
        elif not self.update(sql, op.rec, op.expected):
            raise IllegalTransition(
                f"job {op.rec.id} is no longer {op.expected} (changed by another process); "
                f"its move to {op.rec.status} was dropped"
            )
        return None


class _WriterDatabase:
    """`Connections` as the writer thread uses it, but with batches that remove the files
    of the blobs they dropped once they have committed (`Storage._batch`)."""

    def __init__(
        self, db: Connections, batch: Callable[[], contextlib.AbstractContextManager[None]]
    ) -> None:
        self.path = db.path
        self.batch = batch
        self.sql = db.sql
        self.checkpoint = db.checkpoint
        self.full = db.full


_OPEN: weakref.WeakSet[Storage] = weakref.WeakSet()


def open_storage(path: Path) -> Storage:
    """This process's open `Storage` of `path`, or a new one that stays open."""
    for storage in list(_OPEN):
        if storage.path == path:
            return storage
    storage = Storage(path)
    _KEPT.append(storage)
    return storage


_KEPT: list[Storage] = []  # stores opened by `open_storage`, open until the process exits


@atexit.register
def _flush_all() -> None:
    for storage in list(_OPEN):
        with contextlib.suppress(Exception):
            storage.writer.flush()


def _forked() -> None:
    for storage in list(_OPEN):
        storage.db.forked()


os.register_at_fork(after_in_child=_forked)
