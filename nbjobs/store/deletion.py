"""Deleting jobs and schedules, and the functions and large arguments no job uses any more."""

from __future__ import annotations

from collections.abc import Iterable

from nbjobs.store.base import chunks, placeholders
from nbjobs.store.blob_table import Staged, blob_keys
from nbjobs.store.job_table import ROW_CALL_LIMIT, JobTable
from nbjobs.store.schedule_table import ScheduleTable
from nbjobs.store.writer import Sql


class Deletion(JobTable, ScheduleTable):
    """Deletes jobs and schedules with what is stored for them, and what nothing else uses."""

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

    def delete(self, sql: Sql, job_ids: list[str]) -> None:
        """Remove jobs' records and everything stored for them, and the functions and large
        arguments that no other job (or schedule) uses."""
        fns: set[str] = set()
        for chunk in chunks(job_ids):
            marks = placeholders(chunk)
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
        for chunk in chunks(job_ids):
            marks = placeholders(chunk)
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

    def delete_schedule(self, sql: Sql, name: str) -> bool:
        """Remove a schedule and its stored call, and its function if no job uses it."""
        rec = self.schedule(name, sql)
        cur = sql("DELETE FROM nbjobs_schedules WHERE name = ?", (name,))
        sql("DELETE FROM nbjobs_blobs WHERE key = ?", (f"s:{name}",))
        if rec is not None and rec.fn_digest is not None:
            self.drop_unused(sql, (rec.fn_digest,), ())
        return cur.rowcount == 1
