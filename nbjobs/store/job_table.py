"""The nbjobs_jobs table (with its tags and counts): job records, the queue, claims."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from nbjobs import codec, states
from nbjobs.errors import JobNotFound
from nbjobs.records import JobRecord
from nbjobs.store.base import reported
from nbjobs.store.blob_table import BlobRef, BlobTable, Staged
from nbjobs.store.job_pages import JobPages, decode
from nbjobs.store.writer import Sql

# A call up to this size lives in its job's row: a keyed submit is then one INSERT (two
# B-tree pages fewer than a separate blob), and a row still fits in one 4 KiB page.
ROW_CALL_LIMIT = 2048
_UNREADABLE_SLACK = 16  # a worker looks past this many unreadable queued records


@dataclass(frozen=True, slots=True)
class StoredCall:
    """A claimed job's call, function and output so far, as stored (None: not stored)."""

    call: BlobRef | None
    fn: BlobRef | None
    logs: BlobRef | None


class JobTable(JobPages, BlobTable):
    """Job records: read by id, key, page or status; inserted, claimed and updated by
    compare-and-set; queued for workers."""

    @reported
    def record(self, id_or_key: str) -> JobRecord:
        """The record of the job with this id or key; raises `JobNotFound`."""
        rec = self.read_in(self._sql, id_or_key)
        if rec is None:
            raise JobNotFound(f"no job with id or key {id_or_key!r} in the store at {self.path}")
        return rec

    @reported
    def record_by_key(self, key: str, sql: Sql | None = None) -> JobRecord | None:
        row = (sql or self._sql)(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE key = ?", (key,)
        ).fetchone()
        return decode(*row) if row else None

    @reported
    def record_by_id(self, job_id: str) -> JobRecord | None:
        row = self._sql(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return decode(*row) if row else None

    def read_in(self, sql: Sql, id_or_key: str) -> JobRecord | None:
        """The record of the job with this id (first) or key, read with `sql`; None if none."""
        row = sql(
            "SELECT id, key, status, name, data FROM nbjobs_jobs WHERE id = ? OR key = ? "
            "ORDER BY id = ? DESC LIMIT 1",
            (id_or_key, id_or_key, id_or_key),
        ).fetchone()
        return decode(*row) if row else None

    @reported
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

    @reported
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
        # Decoded one by one, up to `limit`: a claim of one job decodes one record, not 17.
        found = (decode(*r) for r in rows)
        return list(itertools.islice((rec for rec in found if rec.executor == "worker"), limit))

    def held_records(self) -> list[JobRecord]:
        """Running and retrying jobs (few: they hold a worker or wait for their next try)."""
        return self.page((states.RUNNING, states.RETRYING), limit=1_000_000)

    @reported
    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(states.STATES, 0)
        for status, n in self._sql(_STATUS_COUNTS, states.STATES).fetchall():
            out[status] = n
        return out

    @reported
    def call(self, job_id: str) -> bytes | None:
        """A job's pickled call (None: not stored, or the job is gone)."""
        row = self._sql("SELECT call FROM nbjobs_jobs WHERE id = ?", (job_id,)).fetchone()
        if row is not None and row[0] is not None:
            return bytes(row[0])
        return self.blob(f"p:{job_id}")

    def stored_call(self, sql: Sql, rec: JobRecord) -> StoredCall:
        """What a worker runs a job it just claimed with, read in its claim's transaction
        (`sql`): its call, function and output so far, as stored (a large one's file is
        read later, outside the transaction: `blob_bytes`)."""
        row = sql("SELECT call FROM nbjobs_jobs WHERE id = ?", (rec.id,)).fetchone()
        inline = None if row is None or row[0] is None else bytes(row[0])
        fn, logs, blob = f"f:{rec.fn_digest}", f"l:{rec.id}", f"p:{rec.id}"
        found = self.blob_refs(sql, [fn, logs] if inline is not None else [fn, logs, blob])
        call = (inline, None) if inline is not None else found.get(blob)
        return StoredCall(call, found.get(fn) if rec.fn_digest else None, found.get(logs))

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
        cur = sql(_INSERT_JOB, (*_new_row(rec), inline, rec.fn_digest, rec.group))
        if cur.rowcount != 1:
            return False
        if call is not None and inline is None:
            self.put_blob(sql, f"p:{rec.id}", call)
        for tag in rec.tags:
            sql("INSERT OR IGNORE INTO nbjobs_tags (tag, seq) VALUES (?, ?)", (tag, cur.lastrowid))
        if values:
            self.put_values(sql, rec.id, values)
        return True

    @staticmethod
    def claims_at_once(rec: JobRecord, call: bytes | None) -> bool:
        """Whether `claim` can store this job: a small call and no tags (one row, one
        statement)."""
        return not rec.tags and (call is None or len(call) <= ROW_CALL_LIMIT)

    @reported
    def claim(self, rec: JobRecord, call: bytes | None) -> bool:
        """Insert a new keyed job with its call in one autocommitted statement, on this
        thread's connection (see `transact_here`); False (nothing written) if the key is
        taken, or if the job's function is no longer stored (a purge removed it since this
        process stored it: the caller stores both in a transaction). Only for what
        `claims_at_once` accepts. Durable when it returns, as a transaction would be: a
        statement outside BEGIN is its own transaction.
        """
        assert self.claims_at_once(rec, call)
        row = (*_new_row(rec), call, rec.fn_digest, rec.group)
        what = f"job {rec.key!r}"
        if rec.fn_digest is None:
            changed = self.db.execute_now(_INSERT_JOB, row, what)
        else:
            changed = self.db.execute_now(_INSERT_JOB_WITH_FN, (*row, f"f:{rec.fn_digest}"), what)
        return changed == 1

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


# The counts of jobs per status (beside them, nbjobs_counts counts the jobs per function).
_STATUS_COUNTS = (
    f"SELECT status, n FROM nbjobs_counts WHERE status IN ({','.join('?' * len(states.STATES))})"
)
_INSERT_JOB = (
    "INSERT INTO nbjobs_jobs (id, key, status, name, owner, updated, data, call, fn, grp) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING"
)
# The same, only if the job's function (the last parameter, its blob's key) is stored.
_INSERT_JOB_WITH_FN = (
    "INSERT INTO nbjobs_jobs (id, key, status, name, owner, updated, data, call, fn, grp) "
    "SELECT ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
    "WHERE EXISTS (SELECT 1 FROM nbjobs_blobs WHERE key = ?) ON CONFLICT (key) DO NOTHING"
)


def _new_row(rec: JobRecord) -> tuple[str, str | None, str, str, str | None, float, bytes]:
    return rec.id, rec.key, rec.status, rec.name, rec.owner, rec.updated_at, rec.encode()


def _row(rec: JobRecord) -> tuple[str, str | None, float, bytes]:
    """The columns an update writes: status, owner, updated, data."""
    return rec.status, rec.owner, rec.updated_at, rec.encode()
