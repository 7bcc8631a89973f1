"""The progress of a list of jobs, per group: what `nbjobs.watch` draws (no ipywidgets).

Jobs of one map or `nbjobs.group` are one bar; other jobs one bar per function name (as
Dask groups futures by task prefix). Each poll reads the statuses of the jobs still
active (one indexed read per 500), never the finished ones again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from nbjobs import states
from nbjobs.clock import SYSTEM, Clock
from nbjobs.records import Group, JobRecord
from nbjobs.store.group_table import KEYED

Statuses = Callable[[list[str]], dict[str, str]]


class Tally:
    """Counts per status of each group of `recs`, kept up to date by `poll()`.

    >>> tally = Tally(recs, store.storage.statuses)   # doctest: +SKIP
    >>> [g.counts for g in tally.poll()]               # doctest: +SKIP
    [{'succeeded': 12, 'running': 2, 'pending': 6}]
    """

    def __init__(self, recs: Iterable[JobRecord], statuses: Statuses, clock: Clock = SYSTEM):
        self._statuses = statuses
        self._clock = clock
        self.status: dict[str, str] = {}
        self.bucket: dict[str, str] = {}
        self.names: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        for rec in recs:
            key = rec.group or f"name:{rec.name}"
            self.status[rec.id] = rec.status
            self.bucket[rec.id] = key
            self.names.setdefault(key, key[len(KEYED) :] if key.startswith(KEYED) else rec.name)
            self.started[key] = min(self.started.get(key, rec.created_at), rec.created_at)

    @property
    def done(self) -> bool:
        """Whether every job is in a finished state."""
        return all(s in states.FINISHED for s in self.status.values())

    def poll(self) -> list[Group]:
        """Read the statuses of the jobs not finished yet; the groups, in first-seen order."""
        active = [i for i, s in self.status.items() if s not in states.FINISHED]
        if active:
            found = self._statuses(active)
            for job_id in active:
                if job_id in found:
                    self.status[job_id] = found[job_id]
                else:  # forgotten meanwhile: no longer waited for
                    del self.status[job_id]
        return self.groups()

    def groups(self) -> list[Group]:
        now = self._clock.now()
        counts: dict[str, dict[str, int]] = {key: {} for key in self.names}
        for job_id, status in self.status.items():
            per = counts[self.bucket[job_id]]
            per[status] = per.get(status, 0) + 1
        out = []
        for key, per in counts.items():
            if not per:
                continue
            size = sum(per.values())
            done = sum(n for s, n in per.items() if s in states.FINISHED)
            if done == size:
                self.finished.setdefault(key, now)
            out.append(
                Group(key, self.names[key], self.started[key], size, per,
                      self.finished.get(key), now)
            )  # fmt: skip
        return out
