"""`Actions`: the part of `Store` that acts on stored jobs (forget, purge, resume, retry)."""

from __future__ import annotations

import functools

from nbjobs import states, validate
from nbjobs.api.job import Job
from nbjobs.api.reads import Reads
from nbjobs.api.submitting import Submitter
from nbjobs.errors import InvalidArgument
from nbjobs.store.writer import Sql
from nbjobs.validate import Duration


class Actions(Reads):
    """Forgetting, purging and running again the jobs of a store."""

    _submitter: Submitter

    def forget(self, key: str) -> bool:
        """Remove the job with this key (or id), its payload, result and logs.

        Returns False when there is no such job. A job that is pending, running or retrying
        is not removed (`InvalidArgument`): cancel it first.
        """
        validate.lookup(key, "key", "a job key or id")
        storage = self.storage

        def delete(sql: Sql) -> bool:
            rec = storage.read_in(sql, key)
            if rec is None:
                return False
            if rec.status in states.ACTIVE:  # a queued job would still run
                raise InvalidArgument(
                    f"job {key!r} is {rec.status}; cancel it or wait for it before forgetting it"
                )
            storage.delete(sql, [rec.id])
            return True

        removed: bool = storage.writer.call(delete)
        return removed

    def purge(
        self,
        older_than: Duration | None = None,
        status: str | list[str] | tuple[str, ...] | None = None,
    ) -> int:
        """Remove finished jobs and everything stored for them; returns how many.

        `older_than`: only jobs finished longer ago than this (seconds, a `timedelta`, or
        "30s", "5m", "1h30m", "7d"). `status`: only jobs in this finished state (or list of
        them: succeeded, failed, cancelled, interrupted). Give at least one of the two;
        pending, running and retrying jobs are never removed. A function or large argument
        that other jobs still use stays stored. Works in batches, so other writers are not
        held up. Also removes files under `blobs/` left by processes that died (none that a
        job still needs).

        >>> store.purge(older_than="7d")                      # doctest: +SKIP
        1520
        >>> store.purge(status=["failed", "cancelled"])       # doctest: +SKIP
        12
        """
        if older_than is None and status is None:
            raise InvalidArgument(
                "purge needs older_than= (such as '7d') or status= (such as 'failed'), or both; "
                "to remove every finished job say so: "
                f"status={sorted(states.FINISHED)!r}"
            )
        seconds = None if older_than is None else validate.duration(older_than, "older_than")
        chosen = validate.statuses(status) or tuple(sorted(states.FINISHED))
        active = [s for s in chosen if s not in states.FINISHED]
        if active:
            raise InvalidArgument(
                f"status must name finished states only ({', '.join(sorted(states.FINISHED))}); "
                f"{active[0]!r} jobs are never purged (cancel them first)"
            )
        before = None if seconds is None else self.storage.clock.now() - seconds
        storage = self.storage
        self.flush()
        total = last = 0
        while True:
            # One transaction per batch; the cursor `last` never revisits the kept jobs.
            n, last = storage.writer.call(
                functools.partial(
                    storage.delete_finished,
                    statuses=chosen,
                    before=before,
                    after=last,
                    limit=_PURGE_BATCH,
                )
            )
            if not n:
                break
            total += n
        storage.remove_orphans()
        return total

    def resume(self) -> list[Job]:
        """Run every interrupted job again (those whose kernel died while they ran).

        Returns the jobs that were restarted; jobs that cannot be resumed are skipped
        with a warning that says why.
        """
        self.flush()
        out = []
        # Oldest first: a job's dependencies are older than it, so they are pending again
        # (not interrupted) by the time it looks at them.
        for rec in reversed(self.storage.page((states.INTERRUPTED,), limit=1_000_000)):
            new = self._submitter.rerun(rec, fresh=False)
            if new is not None:
                out.append(Job(self._access, new))
        return out

    def retry(self, id_or_key: str) -> Job:
        """Run a failed, cancelled or interrupted job again: a fresh set of attempts under
        the same id, its earlier attempts kept in its history.

        >>> store.retry("fetch-prices").result(timeout=60)     # doctest: +SKIP
        """
        validate.lookup(id_or_key, "id_or_key", "a job id or key")
        return Job(self._access, self._access.retry(id_or_key))

    def dead_letters(self, limit: int = 100) -> list[Job]:
        """Failed jobs (their retries exhausted or not retryable), newest first.

        Inspect them with `job.exception()`, `job.attempt_history()`, and run one again
        with `job.retry()`.
        """
        return self.jobs(status=states.FAILED, limit=limit)


_PURGE_BATCH = 500  # jobs per transaction: a large purge never holds the store for long
