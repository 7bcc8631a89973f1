"""This process's SQLite connections to a store's database, and the order of its writes.

diskcache gives each thread a connection; here they are told never to checkpoint the WAL
in their COMMIT (a `submit()` must not pay an fsync). The writer thread checkpoints after
its batches instead (`Connections.checkpoint`), in a lock that keyed claims take too, so that
SQLite can start the WAL over (see docs/design.md, "Checkpoints"). A keyed claim writes
on a connection of its own whose busy wait is ours (`execute_now`): SQLite's sleeps 1 ms
and more where the writer's batch it met ends within ~100 µs.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nbjobs.errors import StoreCorrupt, StoreError, StoreFull
from nbjobs.store.folder import disk_full, full_error
from nbjobs.store.writer import Sql

DBNAME = "cache.db"  # diskcache's database file in the store folder
_CHECKPOINT_FRAMES = 1000  # WAL pages that make the writer checkpoint (SQLite's default)
_BLIND_BATCHES = 32  # batches between checkpoints when the WAL index cannot be read,
_BLIND_ROWS = 400  # or rows written (each at least one WAL page), whichever comes first
_CLAIM_PAUSE_S = 50e-6  # a claim that finds the database locked tries again after this,
_CLAIM_PAUSE_MAX_S = 2e-3  # then waits 1.5 times longer each time up to this,
_CLAIM_TIMEOUT_S = 60.0  # for this long in all (diskcache's own timeout)
_DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)  # SQLite's codes for a bad file


def damaged(path: Path, exc: sqlite3.DatabaseError) -> StoreCorrupt | None:
    """The `StoreCorrupt` to raise for `exc`, an error of the database of the store at
    `path`, when SQLite found the file damaged (None: another error)."""
    code = getattr(exc, "sqlite_errorcode", None) or 0  # only errors SQLite itself raised
    if code & 0xFF not in _DAMAGE:
        return None
    db = path / DBNAME
    return StoreCorrupt(
        f"the job store's database {db} is damaged ({exc}). Keep a copy of the folder "
        f"{path} before anything else; then, with no process using the store, "
        f"`sqlite3 {db} .recover | sqlite3 {path / 'recovered.db'}` saves what can still be "
        f"read (put recovered.db in the place of {DBNAME}, and remove {DBNAME}-wal and "
        f"{DBNAME}-shm)"
    )


def raise_if_damaged(path: Path, exc: BaseException) -> None:
    """Raise the `StoreCorrupt` that `exc` means (from `exc`); return for any other error,
    which the caller raises as it is."""
    if isinstance(exc, sqlite3.DatabaseError) and (corrupt := damaged(path, exc)) is not None:
        raise corrupt from exc


def check_present(path: Path) -> None:
    """Raise `StoreCorrupt` if the database of the existing store at `path` is missing, or
    empty with no WAL to replay: SQLite opens either as a new, empty database, and every
    job of the store would vanish without a word."""
    db = path / DBNAME
    if not db.exists():
        what = "missing"
    elif _size(db) or _size(Path(f"{db}-wal")):
        return
    else:
        what = "empty (0 bytes)"
    raise StoreCorrupt(
        f"the job store at {path} has lost its jobs: its database {db} is {what}. "
        f"Restore {DBNAME} from a copy if you have one; to start a new store, use another "
        "folder or remove this one"
    )


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _Quiet(threading.local):
    con: Any = None  # this thread's diskcache connection once it stopped checkpointing


class _Claims(threading.local):
    con: sqlite3.Connection | None = None  # this thread's connection for `execute_now`
    pid = 0  # of the process that opened it (a forked child opens its own)


class Connections:
    """The connections of one open store in this process (see the module docstring).

    >>> db = Connections(cache, path)                        # doctest: +SKIP
    >>> with db.batch(): ...                                 # the writer thread,
    >>> db.checkpoint()                                      # once that has committed
    >>> db.execute_now("INSERT ...", row, "job 'k'")         # a keyed claim
    """

    def __init__(self, cache: Any, path: Path) -> None:
        self._cache = cache  # a diskcache.Cache (storage.py is its only importer)
        self.path = path
        self.turn = threading.Lock()  # held by claims and by a checkpoint's end
        self._quiet = _Quiet()
        self._claims = _Claims()
        self._claim_lock = threading.Lock()
        self._claim_cons: list[sqlite3.Connection] = []  # closed with the store
        self._shm: int | None = None  # the WAL index, read by `wal_backlog`
        self._blind = 0  # batches written while the WAL index could not be read
        self._blind_mark = 0  # the writer connection's `total_changes` at its last checkpoint

    def close(self) -> None:
        with self._claim_lock:
            for con in self._claim_cons:
                con.close()
            self._claim_cons.clear()
        if self._shm is not None:
            os.close(self._shm)
            self._shm = None

    def release_thread(self) -> None:
        """Forget the calling thread's connections: its claim connection is closed (see
        `Storage.release_thread` for its diskcache connection)."""
        self._quiet.con = None
        con, self._claims.con = self._claims.con, None
        if con is not None:
            with self._claim_lock:
                if con in self._claim_cons:
                    self._claim_cons.remove(con)
            con.close()

    def quiet(self) -> sqlite3.Connection:
        """This thread's diskcache connection, told never to checkpoint."""
        con: sqlite3.Connection = self._cache._con
        if self._quiet.con is not con:
            con.execute("PRAGMA wal_autocheckpoint = 0")  # this connection's, not the file's
            self._quiet.con = con
        return con

    def sql(self) -> Sql:
        """This thread's SQL function, on its quiet connection."""
        self.quiet()
        sql: Sql = self._cache._sql
        return sql

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[Sql]:
        """A write transaction on this thread's connection, for a caller that waits for
        it (a keyed claim that is more than one INSERT): in the turn, `BEGIN IMMEDIATE`.
        Raises `StoreFull` (nothing written) when the disk has no room for `what`."""
        sql = self.sql()
        try:
            with self.turn, self._undone_unless_committed():
                yield sql
        except sqlite3.OperationalError as exc:
            full = self.full(exc, what)
            if full is None:
                raise
            raise full from exc

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """The writer thread's transaction (then `checkpoint`, once it is committed)."""
        self.quiet()
        with self._undone_unless_committed():
            yield

    @contextlib.contextmanager
    def _undone_unless_committed(self) -> Iterator[None]:
        """diskcache's transaction, rolled back as well when its COMMIT fails: SQLite may
        leave the transaction open then (a full disk), and the next BEGIN would fail."""
        try:
            with self._cache.transact(retry=True):
                yield
        except BaseException:
            con = self._cache._con
            if con.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # (rolled back meanwhile by SQLite)
                    con.execute("ROLLBACK")
            raise

    def checkpoint(self) -> None:
        """After a committed batch of the writer thread: checkpoint the WAL when
        `_CHECKPOINT_FRAMES` wait to be copied (SQLite's own threshold). A failure here
        (a full disk) leaves the batch committed: the frames stay in the WAL.

        SQLite rewrites the WAL from its start only when a write begins with every frame of
        it copied to the database. A keyed claim writes on another connection: had it
        written between the checkpoint and the writer's next batch, the WAL would only ever
        grow (126 MB after 4,000 keyed submits). So the checkpoint ends in `turn`, which
        claims take: first the bulk of the copy (and its fsync) while they go on, then, in
        the turn, the few frames they appended meanwhile (about 40 µs).
        """
        con = self.quiet()
        backlog = self.wal_backlog()
        if backlog is None:  # no WAL index to read (another VFS, a network file system)
            self._blind += 1
            rows = con.total_changes - self._blind_mark
            blind_due = self._blind % _BLIND_BATCHES == 0 or rows >= _BLIND_ROWS
            backlog = _CHECKPOINT_FRAMES if blind_due else 0
        if backlog >= _CHECKPOINT_FRAMES:
            con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with self.turn:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._blind_mark = con.total_changes

    def full(self, exc: BaseException, what: str) -> StoreFull | None:
        """The `StoreFull` that `exc` means (no room for `what`), or None: another error."""
        return full_error(self.path, what) if disk_full(exc) else None

    def wal_backlog(self) -> int | None:
        """Frames of the WAL not yet copied to the database, read from the WAL-index
        header in `cache.db-shm` (https://www.sqlite.org/walformat.html: `mxFrame` at byte
        16, `nBackfill` at byte 96, native byte order): 1 µs, where asking SQLite means a
        checkpoint. A torn read only moves the next checkpoint by a batch. None when there
        is no such file to read: the writer then counts batches and rows instead."""
        try:
            if self._shm is None:
                self._shm = os.open(self.path / f"{DBNAME}-shm", os.O_RDONLY)
            head = os.pread(self._shm, 100, 0)
        except OSError:
            return None
        if len(head) < 100:
            return 0
        frames = int.from_bytes(head[16:20], sys.byteorder)
        return frames - int.from_bytes(head[96:100], sys.byteorder)

    def execute_now(self, statement: str, params: tuple[Any, ...], what: str) -> int:
        """Run one autocommitted write on this thread's claim connection, in the turn,
        waiting for the write lock ourselves; returns the rows it changed. Raises
        `StoreError` (nothing written) if the database stays locked `_CLAIM_TIMEOUT_S`,
        `StoreFull` if the disk has no room. `what` names the write in those messages.

        About half of 10,000 keyed submits under load met the lock and retried; p90 went
        from 1.3 ms (SQLite's busy handler) to 1.1 ms.
        """
        con = self._claim_connection()
        deadline = None
        pause = _CLAIM_PAUSE_S
        with self.turn:
            while True:
                try:
                    return int(con.execute(statement, params).rowcount)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        full = self.full(exc, what)
                        if full is None:
                            raise
                        raise full from exc
                    now = time.monotonic()
                    deadline = deadline or now + _CLAIM_TIMEOUT_S
                    if now > deadline:
                        raise StoreError(
                            f"the job store at {self.path} stayed locked for "
                            f"{_CLAIM_TIMEOUT_S:g} s (another process holds a write "
                            f"transaction open): {what} was not submitted"
                        ) from exc
                    time.sleep(pause)
                    pause = min(pause * 1.5, _CLAIM_PAUSE_MAX_S)

    def _claim_connection(self) -> sqlite3.Connection:
        """This thread's connection for `execute_now`: SQLite's busy handler off."""
        local = self._claims
        if local.con is None or local.pid != os.getpid():
            con = sqlite3.connect(
                self.path / DBNAME, timeout=0, isolation_level=None, check_same_thread=False
            )
            con.execute("PRAGMA synchronous = NORMAL")  # per connection, as diskcache's
            con.execute("PRAGMA wal_autocheckpoint = 0")
            local.con, local.pid = con, os.getpid()
            with self._claim_lock:
                self._claim_cons.append(con)
        return local.con

    def forked(self) -> None:
        """In a forked child: the thread that held the turn did not survive the fork."""
        self.turn = threading.Lock()
