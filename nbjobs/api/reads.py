"""`Reads`: the part of `Store` that reads its jobs (get, jobs, records, groups, stats, flush)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from nbjobs import validate
from nbjobs.api.access import JobAccess
from nbjobs.api.job import Job
from nbjobs.errors import InvalidArgument
from nbjobs.records import Group, JobRecord
from nbjobs.running.local import LocalJobs
from nbjobs.store import group_table
from nbjobs.store.job_pages import ORDERS
from nbjobs.store.storage import Storage


class Reads:
    """Reading a store's jobs; `nbjobs.Store` opens the store and sets these attributes."""

    storage: Storage
    _jobs: LocalJobs  # this process's own jobs
    _access: JobAccess  # what its `Job` handles read and do

    @property
    def path(self) -> Path:
        return self.storage.path

    def flush(self) -> None:
        """Wait until every write queued by this process is committed to disk."""
        self.storage.writer.flush()

    def get(self, id_or_key: str) -> Job:
        """The job with this id or key; raises `nbjobs.JobNotFound` (a `KeyError`).

        >>> store.get("fit-10k").status          # doctest: +SKIP
        'succeeded'
        """
        validate.lookup(id_or_key, "id_or_key", "a job id or key")
        return Job(self._access, self._access.lookup(id_or_key))

    def jobs(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        tag: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs newest first, optionally filtered by status, name and tag.

        >>> [j.name for j in store.jobs(status="failed", limit=5)]   # doctest: +SKIP
        ['fetch']
        """
        statuses = validate.statuses(status)
        validate.filters(name, tag)
        limit = validate.positive_int(limit, "limit")
        self.flush()
        return [Job(self._access, r) for r in self.storage.page(statuses, name, tag, limit)]

    def records(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        group: str | None = None,
        order: str = "newest",
    ) -> list[JobRecord]:
        """One page of job records, newest first, in one read (for dashboards and panels).

        Unlike `jobs()`, returns plain `JobRecord` snapshots and does not wait for this
        process's queued writes. `search` matches a substring of the name or key; `group`
        is a group's id (`groups()`). `order`: "newest", "oldest", "name", or "active"
        (running, retrying, failed, pending, then the other finished jobs, newest first
        within each).
        """
        statuses = validate.statuses(status)
        validate.filters(name, tag)
        if group is not None:
            validate.lookup(group, "group", "a group id (Group.id, see Store.groups())")
        validate.choice(order, "order", ORDERS)
        if search is not None:
            validate.lookup(search, "search", "a part of a job's name or key")
        limit = validate.positive_int(limit, "limit")
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not 0 <= offset <= validate.INT_MAX
        ):
            raise InvalidArgument(f"offset must be an int from 0 to 2**63 - 1, not {offset!r:.60}")
        return self.storage.page(statuses, name, tag, limit, offset, search, group, order)

    def groups(self, limit: int = 100, *, ids: Iterable[str] | None = None) -> list[Group]:
        """The groups of jobs (one per `map`, `Task.map` or `nbjobs.group`), newest first,
        or those with these `ids` (`job.record().group`), in that order. Each is read from
        counts kept beside the jobs: one indexed read, however many jobs a group has.

        >>> [(g.name, g.size, g.counts) for g in store.groups(5)]  # doctest: +SKIP
        [('fit', 300, {'succeeded': 120, 'running': 4, 'pending': 176})]
        """
        limit = validate.positive_int(limit, "limit")
        self.flush()  # a map just submitted by this process shows
        now = self.storage.clock.now()
        if ids is None:
            return self.storage.read(lambda sql: group_table.groups(sql, now, limit))
        wanted = [validate.lookup(i, "ids", "group ids (Group.id)") for i in ids]
        return self.storage.read(lambda sql: group_table.by_ids(sql, wanted, now))[:limit]

    def stats(self) -> dict[str, int]:
        """Number of jobs per status (every status present), read from the count index.

        >>> store.stats()["succeeded"]     # doctest: +SKIP
        12
        """
        self.flush()
        return self.storage.counts()
