"""The durable store: a diskcache folder holding job records, their indexes and blobs.

See docs/design.md. In short: diskcache owns the folder, its SQLite database
(WAL), the per-thread connections and the cross-process transactions. Job
records live in our own tables inside that database (nbjobs/schema.py).
Payloads, results and tracebacks are blobs under their own keys; large ones are
files in `blobs/` (nbjobs/blobfiles.py). All writes of a process go through one
writer thread that commits them in batches (group commit); callers that need the
outcome wait for the commit. This module is the SQL over those tables.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import os
import pickle
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

import diskcache

from nbjobs import codec, states
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import (
    IllegalTransition,
    JobNotFound,
    PayloadLoadError,
    StoreCorrupt,
    StoreNotWritable,
)
from nbjobs.records import CORRUPT, ErrorInfo, JobRecord, ScheduleRecord
from nbjobs.store import blobs as blobfiles
from nbjobs.store import schema
from nbjobs.store.connections import Connections, check_present, raise_if_damaged
from nbjobs.store.folder import prepared
from nbjobs.store.writer import Call, Insert, Op, Sql, Writer

T = TypeVar("T")
P = ParamSpec("P")
# A call up to this size lives in its job's row: a keyed submit is then one INSERT (two
# B-tree pages fewer than a separate blob), and a row still fits in one 4 KiB page.
ROW_CALL_LIMIT = 2048
_PARAMS_PER_STATEMENT = 900  # SQLite builds before 3.32 allow 999 parameters per statement
_UNREADABLE_SLACK = 16  # a worker looks past this many unreadable queued records
# A file under blobs/ that no blob names is removed by purge() once this old: a younger one
# may hold a value written by another process that has not committed it yet.
_ORPHAN_AGE_S = 86_400.0

log = logging.getLogger("nbjobs")


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


# --------------------------------------------------------------------------- storage
def _reported(method: Callable[Concatenate[Storage, P], T]) -> Callable[Concatenate[Storage, P], T]:
    """A read of the store that raises `StoreCorrupt` where SQLite finds a damaged page (and
    works where it finds none): never a raw `sqlite3.DatabaseError`."""

    @functools.wraps(method)
    def read(self: Storage, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise_if_damaged(self.path, exc)
            raise

    return read


class Storage:
    """Records, indexes and blobs in one store folder. Knows nothing of executors."""

    def __init__(self, path: str | os.PathLike[str], clock: Clock = SYSTEM) -> None:
        self.path = Path(path).expanduser().absolute()
        self.clock = clock
        self.blob_dir = self.path / "blobs"
        self.cache = self._open_database()
        self.fn_written: set[str] = set()
        self.db = Connections(self.cache, self.path)
        self._dropped = _Dropped()
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

    @property
    def values(self) -> Callable[[str], Any]:
        """What loads a job's large argument by its digest (`codec.load_args`)."""
        return blobfiles.values_in(self.blob_dir)

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

    # ---- reads (any thread; WAL readers never wait for the writer)
    @property
    def _sql(self) -> Sql:
        sql: Sql = self.cache._sql
        return sql

    @_reported
    def read(self, fn: Callable[[Sql], T]) -> T:
        """`fn(sql)` run on this thread's connection (a read of a table's module, which
        never waits for the writer); a damaged page raises `StoreCorrupt`.

        >>> storage.read(worker_table.rows)  # doctest: +SKIP
        [WorkerRow(id='w1', ...)]
        """
        return fn(self._sql)

    @_reported
    def record(self, id_or_key: str) -> JobRecord:
        """The record of the job with this id or key; raises `JobNotFound`."""
        rec = self.read_in(self._sql, id_or_key)
        if rec is None:
            raise JobNotFound(f"no job with id or key {id_or_key!r} in the store at {self.path}")
        return rec

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

    @contextlib.contextmanager
    def _then_remove_dropped(self) -> Iterator[None]:
        """Around each write transaction of this process: the files of the blobs it drops
        (`drop_blobs`) are removed once it has committed, never before. Removed inside it, a
        crash or a rollback before the COMMIT left jobs `succeeded` whose result file was
        gone (300 jobs in 4 of 24 purges killed 15 ms in). Names still listed in
        `nbjobs_dropped` (the process died after the COMMIT) are removed by the next
        `remove_dropped`. A damaged page met raises `StoreCorrupt`."""
        local = self._dropped
        if local.files is not None:  # inside this thread's transaction: its end removes them
            yield
            return
        local.files = []
        local.stored = set()
        try:
            yield
            files = local.files
        except sqlite3.DatabaseError as exc:
            raise_if_damaged(self.path, exc)
            raise
        finally:
            local.files = None
            local.stored = None
        if files:
            self._remove_files(files)

    def _remove_files(self, files: list[str]) -> bool:
        """Remove dropped files and then their names in `nbjobs_dropped`; False if that
        failed (the names stay for the next try). Never raises: its transaction committed.

        In a write transaction, and only the files no blob names: a function or a large
        argument dropped by a purge may have been stored again since (same content, same
        file name) by a submit that committed in between."""
        try:
            sql = self.db.sql()
            with self.cache.transact(retry=True):
                for chunk in _chunks(files):
                    self._remove_unnamed(sql, chunk)
                    sql(f"DELETE FROM nbjobs_dropped WHERE file IN ({_marks(chunk)})", chunk)
        except Exception as exc:
            log.warning(
                "nbjobs: the files of deleted blobs stay in %s for now: %s", self.blob_dir, exc
            )
            return False
        return True

    @_reported
    def remove_dropped(self) -> None:
        """Remove the files of blobs deleted by a process that died between its COMMIT and
        their removal. At open: one read of a table that is empty unless that happened."""
        while True:
            rows = self._sql(f"SELECT file FROM nbjobs_dropped LIMIT {_PARAMS_PER_STATEMENT}")
            files = [file for (file,) in rows.fetchall()]
            if not files or not self._remove_files(files):
                return

    def remove_orphans(self) -> int:
        """Remove what dead processes left under `blobs/`: the files of dropped blobs, and
        files no blob names that are a day old (a value written, then its process died before
        the commit naming it). Returns how many of the latter were removed."""
        self.remove_dropped()
        cutoff = SYSTEM.now() - _ORPHAN_AGE_S  # file times are the real clock's
        old = []
        with os.scandir(self.blob_dir) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        old.append(entry.name)
        removed = 0
        for chunk in _chunks(old):
            removed += self.writer.call(functools.partial(self._remove_unnamed, names=chunk))
        return removed

    def _remove_unnamed(self, sql: Sql, names: list[str]) -> int:
        """Remove those of these files that no blob names. Inside a write transaction: no
        other process can commit a blob naming one of them meanwhile, and this one writes
        nothing, so the removal need not wait for its COMMIT."""
        named = sql(
            f"SELECT file FROM nbjobs_blobs WHERE file IN ({_marks(names)})", names
        ).fetchall()
        unnamed = set(names).difference(file for (file,) in named)
        for name in unnamed:
            blobfiles.remove(self.blob_dir / name)
        return len(unnamed)

    @_reported
    def record_by_key(self, key: str, sql: Sql | None = None) -> JobRecord | None:
        row = (sql or self._sql)(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE key = ?", (key,)
        ).fetchone()
        return _decode(*row) if row else None

    @_reported
    def cancel_requests(self, owner: str) -> list[str]:
        """Ids of `owner`'s jobs that other processes cancelled (see `request_cancel`)."""
        rows = self._sql("SELECT id FROM nbjobs_cancels WHERE owner = ?", (owner,)).fetchall()
        return [job_id for (job_id,) in rows]

    @_reported
    def cancel_owners(self) -> list[str]:
        """The processes that have cancel requests waiting for them."""
        rows = self._sql("SELECT DISTINCT owner FROM nbjobs_cancels").fetchall()
        return [owner for (owner,) in rows]

    def drop_cancel_owner(self, sql: Sql, owner: str) -> None:
        sql("DELETE FROM nbjobs_cancels WHERE owner = ?", (owner,))

    def request_cancel(self, sql: Sql, owner: str, job_id: str) -> None:
        sql("INSERT OR IGNORE INTO nbjobs_cancels (owner, id) VALUES (?, ?)", (owner, job_id))

    def drop_cancel_requests(self, sql: Sql, owner: str, ids: list[str]) -> None:
        sql(
            f"DELETE FROM nbjobs_cancels WHERE owner = ? AND id IN ({','.join('?' * len(ids))})",
            (owner, *ids),
        )

    @_reported
    def record_by_id(self, job_id: str) -> JobRecord | None:
        row = self._sql(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return _decode(*row) if row else None

    @_reported
    def page(
        self,
        statuses: Iterable[str] | None = None,
        name: str | None = None,
        tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
    ) -> list[JobRecord]:
        """Newest first, through the indexes: never a scan of every record.

        `search` (a substring of the name or key) is the one filter that may scan.
        """
        where: list[str] = []
        params: list[Any] = []
        if statuses is not None:
            st = list(statuses)
            where.append(f"j.status IN ({','.join('?' * len(st))})")
            params += st
        if name is not None:
            where.append("j.name = ?")
            params.append(name)
        src = "nbjobs_jobs j"
        if tag is not None:
            src = "nbjobs_tags t JOIN nbjobs_jobs j ON j.seq = t.seq"
            where.append("t.tag = ?")
            params.append(tag)
        if search:
            where.append("(j.name LIKE ? ESCAPE '\\' OR j.key LIKE ? ESCAPE '\\')")
            pattern = (
                "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            )
            params += [pattern, pattern]
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        rows = self._sql(
            f"SELECT j.id, j.key, j.status, j.name, j.data FROM {src} {clause} "
            "ORDER BY j.seq DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        ).fetchall()
        return [_decode(*r) for r in rows]

    @_reported
    def statuses(self, ids: list[str]) -> dict[str, str]:
        """The status of each of these jobs that is in the store (one indexed read per 500)."""
        found: dict[str, str] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = self._sql(
                f"SELECT id, status FROM nbjobs_jobs WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update(rows)
        return found

    def active_records(self) -> list[JobRecord]:
        return self.page(states.ACTIVE, limit=1_000_000)

    @_reported
    def worker_queue(self, limit: int, sql: Sql | None = None) -> list[JobRecord]:
        """Pending jobs for detached workers, oldest first, through their own partial index
        (a pending job has no owner only while it waits for a worker). Records that cannot
        be read (written by a newer nbjobs, corrupt) are left alone."""
        rows = (sql or self._sql)(
            "SELECT id, key, status, name, data FROM nbjobs_jobs "
            "INDEXED BY nbjobs_jobs_worker_queue "
            "WHERE status = 'pending' AND owner IS NULL ORDER BY seq LIMIT ?",
            (limit + _UNREADABLE_SLACK,),
        ).fetchall()
        found = (_decode(*r) for r in rows)
        return [rec for rec in found if rec.executor == "worker"][:limit]

    def held_records(self) -> list[JobRecord]:
        """Running and retrying jobs (few: they hold a worker or wait for their next try)."""
        return self.page((states.RUNNING, states.RETRYING), limit=1_000_000)

    @_reported
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(states.STATES, 0)
        for status, n in self._sql(_STATUS_COUNTS, states.STATES).fetchall():
            out[status] = n
        return out

    @_reported
    def blob(self, key: str) -> bytes | None:
        row = self._sql("SELECT data, file FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._blob_bytes(*row)

    @_reported
    def blobs(self, keys: list[str]) -> dict[str, bytes]:
        """The blobs at `keys` that exist (fewer than 900 keys), read in one query."""
        rows = self._sql(
            f"SELECT key, data, file FROM nbjobs_blobs WHERE key IN ({','.join('?' * len(keys))})",
            keys,
        ).fetchall()
        found = ((key, self._blob_bytes(data, file)) for key, data, file in rows)
        return {key: data for key, data in found if data is not None}

    def _blob_bytes(self, data: bytes | None, file: str | None) -> bytes | None:
        if file is not None:
            return (self.blob_dir / str(file)).read_bytes()
        return None if data is None else bytes(data)

    @_reported
    def blob_inline(self, key: str) -> bool | None:
        """True if the blob is stored inline (small), False if in a file, None if absent."""
        row = self._sql("SELECT file IS NULL FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bool(row[0])

    @_reported
    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's attempt history, oldest first (a range scan of its `a:` blobs)."""
        rows = self._sql(
            "SELECT data FROM nbjobs_blobs WHERE key >= ? AND key < ? ORDER BY key",
            (f"a:{job_id}:", f"a:{job_id};"),
        ).fetchall()
        return [pickle.loads(data) for (data,) in rows]

    @_reported
    def load_value(self, key: str) -> Any:
        """Load a value written by `blobfiles.write_value`, reading a large one from its file."""
        row = self._sql("SELECT data, file FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise PayloadLoadError(f"no stored value under {key!r} in {self.path}")
        data, file = row
        if file is None:
            return codec.loads(data)
        return blobfiles.load(self.blob_dir / file, key)

    # ---- statements used inside writer ops
    def put_blob(self, sql: Sql, key: str, data: bytes | None, file: str | None = None) -> None:
        """Store a blob under a key that holds none (drop_blobs first to replace a file)."""
        sql(
            "INSERT OR REPLACE INTO nbjobs_blobs (key, data, file) VALUES (?, ?, ?)",
            (key, data, file),
        )

    def put_blob_once(self, sql: Sql, key: str, data: bytes) -> None:
        """Store a content-addressed blob (a function) unless it is there already.

        Every transaction that stores a job does this for the job's function, even when this
        process wrote it before: the last job that used it may have been purged since, by any
        process, and the function with it (`drop_unused`). Within one transaction only the
        first call for a key looks (`_Dropped.stored`).

        A large one (a function that carries a big array) goes to a file named after its
        key: inline, SQLite would hold it twice (database and WAL) and copy it per call.
        """
        stored = self._dropped.stored
        if stored is not None:
            if key in stored:
                return
            stored.add(key)
        if len(data) <= blobfiles.INLINE_LIMIT:
            sql("INSERT OR IGNORE INTO nbjobs_blobs (key, data) VALUES (?, ?)", (key, data))
            return
        if sql("SELECT 1 FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone() is None:
            # Same content, same name: a batch replayed after a rollback rewrites one file.
            name = blobfiles.once_name(key)
            blobfiles.write_file(self.blob_dir, name, (data,), blobfiles.describe(key, len(data)))
            self.put_blob(sql, key, None, name)

    def drop_blobs(self, sql: Sql, keys: Iterable[str]) -> None:
        """Delete these blobs; their files are listed in `nbjobs_dropped` in the same
        transaction and removed after its COMMIT (`_then_remove_dropped`). Two statements
        per 900 keys (a purge batch), a third when some had files."""
        stored = self._dropped.stored
        for chunk in _chunks(list(keys)):
            if stored is not None:
                stored.difference_update(chunk)
            marks = _marks(chunk)
            rows = sql(
                f"SELECT file FROM nbjobs_blobs WHERE key IN ({marks}) AND file IS NOT NULL", chunk
            ).fetchall()
            sql(f"DELETE FROM nbjobs_blobs WHERE key IN ({marks})", chunk)
            if rows:
                files = [file for (file,) in rows]
                sql(
                    "INSERT OR IGNORE INTO nbjobs_dropped (file) VALUES "
                    + ",".join(["(?)"] * len(files)),
                    files,
                )
                dropped = self._dropped.files
                if dropped is not None:
                    dropped += files

    def read_in(self, sql: Sql, id_or_key: str) -> JobRecord | None:
        """The record of the job with this id (first) or key, read with `sql`; None if none."""
        row = sql(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE id = ? OR key = ? "
            "ORDER BY id = ? DESC LIMIT 1",
            (id_or_key, id_or_key, id_or_key),
        ).fetchone()
        return _decode(*row) if row else None

    def insert(
        self,
        sql: Sql,
        rec: JobRecord,
        call: bytes | codec.CallParts | None = None,
        values: list[Staged] | None = None,
    ) -> bool:
        """Insert a new job and its pickled `call` (with the large arguments it refers to,
        see `stage_values`); False (nothing written) if its key is already taken. A small
        call goes in the job's row, a larger one in the blob p:<id>.
        """
        if isinstance(call, tuple):
            call = codec.payload_blob(*call)
        inline = call if call is not None and len(call) <= ROW_CALL_LIMIT else None
        cur = sql(_INSERT_JOB, (*_new_row(rec), inline, rec.fn_digest))
        if cur.rowcount != 1:
            return False
        if call is not None and inline is None:
            self.put_blob(sql, f"p:{rec.id}", call)
        for tag in rec.tags:
            sql("INSERT OR IGNORE INTO nbjobs_tags (tag, seq) VALUES (?, ?)", (tag, cur.lastrowid))
        if values:
            self.put_values(sql, rec.id, values)
        return True

    def stage_values(self, values: list[codec.Value]) -> list[Staged]:
        """Write the files of the large arguments of a call that are not stored yet, ahead of
        the transaction that stores its job (`put_values`): written inside it, a file of
        hundreds of MB would hold up every writer of the store. Each is (digest, frames,
        its temporary file or None); `unstage` removes the files no transaction took."""
        staged: list[Staged] = []
        try:
            for digest, frames in values:
                key = f"v:{digest}"
                tmp = None
                if self.blob_inline(key) is None:
                    what = blobfiles.describe(key, frames.size)
                    tmp = blobfiles.write_temporary(self.blob_dir, frames.chunks(), what)
                staged.append((digest, frames, tmp))
        except BaseException:
            self.unstage(staged)
            raise
        return staged

    def put_values(self, sql: Sql, job_id: str, staged: list[Staged]) -> None:
        """Store a job's large arguments (once each per store, under v:<digest>) and that
        the job uses them (`nbjobs_values`, read by `drop_unused`)."""
        for digest, frames, tmp in staged:
            key = f"v:{digest}"
            if sql("SELECT 1 FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone() is None:
                name = blobfiles.once_name(key)
                if tmp is not None:
                    os.replace(tmp, self.blob_dir / name)
                else:  # a purge removed it since `stage_values` found it: written again
                    what = blobfiles.describe(key, frames.size)
                    blobfiles.write_file(self.blob_dir, name, frames.chunks(), what)
                self.put_blob(sql, key, None, name)
            sql("INSERT OR IGNORE INTO nbjobs_values (value, job) VALUES (?, ?)", (digest, job_id))

    @staticmethod
    def unstage(staged: list[Staged]) -> None:
        """Remove the temporary files of `stage_values` that no transaction took."""
        for _, _, tmp in staged:
            if tmp is not None:
                blobfiles.remove(tmp)

    @staticmethod
    def claims_at_once(rec: JobRecord, call: bytes | None) -> bool:
        """Whether `claim` can store this job: a small call and no tags (one row, one
        statement)."""
        return not rec.tags and (call is None or len(call) <= ROW_CALL_LIMIT)

    @_reported
    def claim(self, rec: JobRecord, call: bytes | None) -> bool:
        """Insert a new keyed job with its call in one autocommitted statement, on this
        thread's connection (see `transact_here`); False (nothing written) if the key is
        taken, or if the job's function is no longer stored (a purge removed it since this
        process stored it: the caller stores both in a transaction). Only for what
        `claims_at_once` accepts. Durable when it returns, as a transaction would be: a
        statement outside BEGIN is its own transaction.
        """
        assert self.claims_at_once(rec, call)
        row = (*_new_row(rec), call, rec.fn_digest)
        what = f"job {rec.key!r}"
        if rec.fn_digest is None:
            changed = self.db.execute_now(_INSERT_JOB, row, what)
        else:
            changed = self.db.execute_now(_INSERT_JOB_WITH_FN, (*row, f"f:{rec.fn_digest}"), what)
        return changed == 1

    def set_call(
        self,
        sql: Sql,
        job_id: str,
        call: bytes | None,
        fn_digest: str | None,
        values: list[Staged] | None = None,
    ) -> None:
        """Replace a stored job's call (a resubmitted key runs the new one), which uses the
        function `fn_digest` and the large arguments `values`; the old call's function and
        large arguments go if no job uses them any more."""
        row = sql("SELECT fn FROM nbjobs_jobs WHERE id = ?", (job_id,)).fetchone()
        old_fns = () if row is None or row[0] is None else (row[0],)
        old_values = self._forget_values(sql, [job_id])
        self.drop_blobs(sql, (f"p:{job_id}",))
        inline = call if call is not None and len(call) <= ROW_CALL_LIMIT else None
        sql("UPDATE nbjobs_jobs SET call = ?, fn = ? WHERE id = ?", (inline, fn_digest, job_id))
        if call is not None and inline is None:
            self.put_blob(sql, f"p:{job_id}", call)
        if values:
            self.put_values(sql, job_id, values)
        self.drop_unused(sql, old_fns, old_values)

    @_reported
    def call(self, job_id: str) -> bytes | None:
        """A job's pickled call (None: not stored, or the job is gone)."""
        row = self._sql("SELECT call FROM nbjobs_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None and row[0] is not None:
            return bytes(row[0])
        return self.blob(f"p:{job_id}")

    def update(self, sql: Sql, rec: JobRecord, expected: str) -> bool:
        """Write `rec` if the stored status is still `expected` (compare-and-set).

        A running or retrying job is held by its owner: only that owner writes it, unless
        the write releases it (`rec.owner` None). So a worker that stalled past its lease
        cannot overwrite the job another worker took over meanwhile.
        """
        cur = sql(
            "UPDATE nbjobs_jobs SET status = ?, owner = ?, updated = ?, data = ? "
            "WHERE id = ? AND status = ? AND (? IS NULL OR owner IS NULL OR owner = ? "
            "OR status NOT IN ('running', 'retrying'))",
            (*_row(rec), rec.id, expected, rec.owner, rec.owner),
        )
        return cur.rowcount == 1

    def take_over(self, sql: Sql, rec: JobRecord, expected: str, owner: str | None) -> bool:
        """Write `rec` if the job is still `expected` and held by `owner` (a dead worker's
        job requeued or adopted by another)."""
        cur = sql(
            "UPDATE nbjobs_jobs SET status = ?, owner = ?, updated = ?, data = ? "
            "WHERE id = ? AND status = ? AND owner IS ?",
            (*_row(rec), rec.id, expected, owner),
        )
        return cur.rowcount == 1

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

    def delete(self, sql: Sql, job_ids: list[str]) -> None:
        """Remove jobs' records and everything stored for them, and the functions and large
        arguments that no other job (or schedule) uses."""
        fns: set[str] = set()
        for chunk in _chunks(job_ids):
            marks = _marks(chunk)
            rows = sql(f"SELECT DISTINCT fn FROM nbjobs_jobs WHERE id IN ({marks})", chunk)
            fns.update(fn for (fn,) in rows.fetchall() if fn is not None)
            sql(f"DELETE FROM nbjobs_jobs WHERE id IN ({marks})", chunk)
        values = self._forget_values(sql, job_ids)
        self.drop_blobs(sql, [key for job_id in job_ids for key in blob_keys(job_id)])
        for job_id in job_ids:
            sql(
                "DELETE FROM nbjobs_blobs WHERE key >= ? AND key < ?",
                (f"a:{job_id}:", f"a:{job_id};"),
            )
        self.drop_unused(sql, fns, values)

    def _forget_values(self, sql: Sql, job_ids: list[str]) -> set[str]:
        """Delete what these jobs' calls say of the large arguments they use; returns those."""
        values: set[str] = set()
        for chunk in _chunks(job_ids):
            marks = _marks(chunk)
            rows = sql(f"SELECT value FROM nbjobs_values WHERE job IN ({marks})", chunk)
            values.update(value for (value,) in rows.fetchall())
            if values:
                sql(f"DELETE FROM nbjobs_values WHERE job IN ({marks})", chunk)
        return values

    def drop_unused(self, sql: Sql, fns: Iterable[str], values: Iterable[str]) -> None:
        """Delete the blobs of these functions and large arguments that no job (and, for a
        function, no schedule) uses any more, in the caller's transaction.

        Safe against a submit in any process that takes one for stored: the job it inserts
        uses it, so either that insert committed first (its row is seen here: the blob
        stays), or it comes after this transaction and stores the blob again, since every
        insert of a job checks for its function in its own transaction (`put_blob_once`,
        `claim`). A function's file that a submit stored again before the removal after
        this COMMIT is left in place (`_remove_files`)."""
        unused = []
        scheduled: set[str] | None = None
        for fn in fns:
            used = f"f:{fn}"  # its count of jobs (see schema.py)
            row = sql("SELECT n FROM nbjobs_counts WHERE status = ?", (used,)).fetchone()
            if row is not None and row[0] > 0:
                continue
            sql("DELETE FROM nbjobs_counts WHERE status = ?", (used,))
            if scheduled is None:  # few schedules, read once and only when it may matter
                scheduled = {rec.fn_digest for rec in self.schedules(sql) if rec.fn_digest}
            if fn not in scheduled:
                unused.append(f"f:{fn}")
        for value in values:
            if not sql("SELECT 1 FROM nbjobs_values WHERE value = ? LIMIT 1", (value,)).fetchone():
                unused.append(f"v:{value}")
        if unused:
            self.drop_blobs(sql, unused)
            self.fn_written.difference_update(unused)

    def delete_finished(
        self, sql: Sql, statuses: Iterable[str], before: float | None, after: int, limit: int
    ) -> tuple[int, int]:
        """Delete up to `limit` jobs in `statuses` last changed before `before` (any time
        if None) with `seq > after`, oldest first; returns (how many, the last seq)."""
        st = list(statuses)
        clause = "" if before is None else " AND updated < ?"
        rows = sql(
            f"SELECT seq, id FROM nbjobs_jobs WHERE status IN ({','.join('?' * len(st))}) "
            f"AND seq > ?{clause} ORDER BY seq LIMIT ?",
            (*st, after, *(() if before is None else (before,)), limit),
        ).fetchall()
        self.delete(sql, [job_id for _, job_id in rows])
        return (len(rows), rows[-1][0]) if rows else (0, after)

    # ---- schedules (see nbjobs/recurring.py)
    @_reported
    def schedules(self, sql: Sql | None = None) -> list[ScheduleRecord]:
        """Every schedule, by name (few: one row each, no blob read)."""
        rows = (sql or self._sql)(
            "SELECT name, paused, data FROM nbjobs_schedules ORDER BY name"
        ).fetchall()
        return [_decode_schedule(*row) for row in rows]

    @_reported
    def schedule(self, name: str, sql: Sql | None = None) -> ScheduleRecord | None:
        row = (sql or self._sql)(
            "SELECT name, paused, data FROM nbjobs_schedules WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _decode_schedule(*row)

    @_reported
    def earliest_schedule(self, sql: Sql | None = None) -> float | None:
        """When the next active schedule is due (None: no active schedule): one index read."""
        row = (sql or self._sql)(
            "SELECT next_at FROM nbjobs_schedules INDEXED BY nbjobs_schedules_due "
            "WHERE paused = 0 ORDER BY next_at LIMIT 1"
        ).fetchone()
        return None if row is None else float(row[0])

    def due_schedules(self, sql: Sql, now: float, limit: int) -> list[ScheduleRecord]:
        rows = sql(
            "SELECT name, paused, data FROM nbjobs_schedules INDEXED BY nbjobs_schedules_due "
            "WHERE paused = 0 AND next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_decode_schedule(*row) for row in rows]

    def put_schedule(self, sql: Sql, rec: ScheduleRecord) -> None:
        sql(
            "INSERT OR REPLACE INTO nbjobs_schedules (name, next_at, paused, data) "
            "VALUES (?, ?, ?, ?)",
            (rec.name, rec.next_at, int(rec.paused), rec.encode()),
        )

    def move_schedule(self, sql: Sql, rec: ScheduleRecord, expected_next_at: float) -> bool:
        """Write `rec` if the schedule is still due at `expected_next_at` and active
        (compare-and-set: of several workers, one fires each slot)."""
        cur = sql(
            "UPDATE nbjobs_schedules SET next_at = ?, paused = ?, data = ? "
            "WHERE name = ? AND next_at = ? AND paused = 0",
            (rec.next_at, int(rec.paused), rec.encode(), rec.name, expected_next_at),
        )
        return cur.rowcount == 1

    def disable_schedule(self, sql: Sql, name: str) -> None:
        """Pause a schedule through its row alone (its record may be unreadable)."""
        sql("UPDATE nbjobs_schedules SET paused = 1 WHERE name = ?", (name,))

    def copy_blob(self, sql: Sql, source: str, target: str) -> None:
        """Store an inline blob again under another key (a schedule's call for its firing)."""
        sql(
            "INSERT OR REPLACE INTO nbjobs_blobs (key, data) "
            "SELECT ?, data FROM nbjobs_blobs WHERE key = ?",
            (target, source),
        )

    def delete_schedule(self, sql: Sql, name: str) -> bool:
        """Remove a schedule and its stored call, and its function if no job uses it."""
        rec = self.schedule(name, sql)
        cur = sql("DELETE FROM nbjobs_schedules WHERE name = ?", (name,))
        sql("DELETE FROM nbjobs_blobs WHERE key = ?", (f"s:{name}",))
        if rec is not None and rec.fn_digest is not None:
            self.drop_unused(sql, (rec.fn_digest,), ())
        return cur.rowcount == 1


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


Staged = tuple[str, codec.Frames, Path | None]
"""A large argument on its way to the store: (digest, frames, temporary file or None)."""


class _Dropped(threading.local):
    files: list[str] | None = None  # dropped by this thread's transaction, while one is open
    stored: set[str] | None = None  # content-addressed blobs it found or wrote (then)


def _chunks(items: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _PARAMS_PER_STATEMENT):
        yield items[start : start + _PARAMS_PER_STATEMENT]


def _marks(items: list[str]) -> str:
    return ",".join("?" * len(items))


def blob_keys(job_id: str) -> tuple[str, str, str, str]:
    """The per-job blobs: payload, result, error, log."""
    return f"p:{job_id}", f"r:{job_id}", f"e:{job_id}", f"l:{job_id}"


# The counts of jobs per status (beside them, nbjobs_counts counts the jobs per function).
_STATUS_COUNTS = (
    f"SELECT status, n FROM nbjobs_counts WHERE status IN ({','.join('?' * len(states.STATES))})"
)
_INSERT_JOB = (
    "INSERT INTO nbjobs_jobs (id, key, status, name, owner, updated, data, call, fn) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
# The same, only if the job's function (the last parameter, its blob's key) is stored.
_INSERT_JOB_WITH_FN = (
    "INSERT INTO nbjobs_jobs (id, key, status, name, owner, updated, data, call, fn) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM nbjobs_blobs WHERE key = ?) ON CONFLICT (key) DO NOTHING"
)


def _new_row(rec: JobRecord) -> tuple[str, str | None, str, str, str | None, float, bytes]:
    return rec.id, rec.key, rec.status, rec.name, rec.owner, rec.updated_at, rec.encode()


def _row(rec: JobRecord) -> tuple[str, str | None, float, bytes]:
    """The columns an update writes: status, owner, updated, data."""
    return rec.status, rec.owner, rec.updated_at, rec.encode()


def _decode(job_id: str, key: str | None, status: str, name: str, data: bytes | str) -> JobRecord:
    try:
        return JobRecord.decode(data)
    except PayloadLoadError as exc:
        return JobRecord(
            id=job_id,
            key=key,
            name=name,
            status=status,
            resumable=False,
            error=ErrorInfo(CORRUPT, str(exc)),
        )


def _decode_schedule(name: str, paused: int, data: bytes) -> ScheduleRecord:
    """The row's `paused` column is the truth (`disable_schedule` writes only that)."""
    try:
        rec = ScheduleRecord.decode(data)
    except PayloadLoadError:
        rec = ScheduleRecord(name=name, fn_name=CORRUPT)
    rec.paused = bool(paused)
    return rec


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
