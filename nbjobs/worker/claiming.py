"""A worker's claims: pending jobs taken for its free slots, queued for its writer, one at a time.

A claim is a `Call` queued for the worker's writer, never waited for: the thread whose job
just ended queues it after that job's outcome, so one transaction commits both and its
callback hands the next job to the pool (no round trip through the worker's loop). It reads,
in that same transaction, what each job it took runs with (`StoredCall`). One claim is in
the writer's queue at a time, its number of jobs the free slots counted when it runs; one
asked for meanwhile is queued after it. A freed slot asks for a claim only when the last one
left claimable or waiting jobs behind; new jobs ring the worker's loop, which asks.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

from nbjobs import states
from nbjobs.calls import refs
from nbjobs.errors import DependencyFailed, StoreFull
from nbjobs.records import JobRecord, transition
from nbjobs.running.endings import never_ran
from nbjobs.store import wakeups, worker_table
from nbjobs.store.job_table import StoredCall
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Sql

log = logging.getLogger("nbjobs.worker")

Claimed = list[tuple[JobRecord, StoredCall]]
_LOOK_PAST = 64  # queued jobs still waiting for their dependencies a claim looks past
_BELLS_S = 1.0  # how long the other workers' addresses read by a claim are used again


class Claims:
    """Claims of one worker (`owner`): `ask()` queues one; `won(jobs)` gets what it took."""

    def __init__(
        self,
        storage: Storage,
        owner: str,
        worker_id: str,
        lease: float,
        free: Callable[[], int],
        won: Callable[[Claimed], None],
    ) -> None:
        self.storage = storage
        self.owner = owner
        self.worker_id = worker_id
        self.lease = lease
        self.free = free  # slots free now (read in the writer thread, in the transaction)
        self.won = won  # called in the writer thread once a claim is committed
        self.closed = False  # the worker stops: no more claims
        self.more = True  # the last claim left claimable or waiting jobs in the queue
        self._lock = threading.Lock()
        self._queued = False  # a claim is in the writer's queue
        self._again = False  # and another was asked for meanwhile
        self._bells: tuple[float, list[str]] = (-_BELLS_S, [])  # (when read, addresses)

    @property
    def pending(self) -> bool:
        """A claim is queued and not committed yet."""
        return self._queued

    def ask(self, look: bool = True) -> None:
        """Queue a claim (`look`: first read whether any job is queued, so that an idle
        worker takes no write lock); never waits for it. None while the store's disk is
        full: this process's writes wait for room, so would its claims."""
        if self.closed or self.storage.writer.full is not None:
            return
        if self.free() <= 0:
            self.more = True  # asked while full (jobs were queued): a freed slot claims
            return
        if look and not self._queued and not self.storage.worker_queue(1):
            return
        with self._lock:
            if self._queued:
                self._again = True
                return
            self._queued = True
        self.storage.writer.put(Call(self._claim), self._claimed)

    def slot_freed(self) -> None:
        """A job's outcome is queued: claim its successor in the same transaction, if the
        queue had one (a new job rings the worker instead)."""
        if self.more:
            self.ask(look=False)

    def _claimed(
        self, result: tuple[Claimed, bool, list[str]] | None, error: BaseException | None
    ) -> None:
        if error is not None and not isinstance(error, StoreFull):
            log.warning("worker %s: a claim failed: %s", self.worker_id, error)
        jobs, more, bells = result if result is not None else ([], True, [])
        self.more = more
        if jobs:
            self.won(jobs)
        wakeups.ring(bells)  # this worker is full: another may have a free slot for the rest
        with self._lock:
            again, self._again = self._again, False
            self._queued = again = again and not self.closed
        if again:
            self.storage.writer.put(Call(self._claim), self._claimed)

    def _claim(self, sql: Sql) -> tuple[Claimed, bool, list[str]]:
        """Take up to as many pending worker jobs as slots are free, oldest first: the
        jobs taken, whether the queue has more for this worker, and the other workers to
        ring when it has more than this one can take."""
        free = 0 if self.closed else self.free()
        if free <= 0:
            return [], True, []
        now = self.storage.clock.now()
        won: Claimed = []
        looked: set[str] = set()
        waiting = False
        # Jobs waiting for their dependencies stay queued: look past a few of them, but
        # only when some waited (each record looked at is decoded).
        for limit in (free + 1, free + _LOOK_PAST):
            queued = self.storage.worker_queue(limit, sql)
            for rec in queued:
                if rec.id in looked:
                    continue
                if len(won) == free:
                    return won, True, self._others(sql)
                looked.add(rec.id)
                new = self._take(sql, rec, now)
                if new is None:
                    waiting = True
                elif new.status == states.RUNNING:
                    won.append((new, self.storage.stored_call(sql, new)))
            if len(queued) < limit:
                break
        return won, waiting, []

    def _take(self, sql: Sql, rec: JobRecord, now: float) -> JobRecord | None:
        """Claim one queued job: its record as now stored (running; failed for a dependency
        that did not succeed; unchanged, pending, if another worker took it first); None if
        it waits for its dependencies."""
        storage = self.storage
        if rec.deps:
            problem = refs.dependency_problem(rec, lambda i: storage.read_in(sql, i))
            if problem == refs.WAITING:
                return None
            if problem is not None:
                failed, blobs = never_ran(rec, DependencyFailed(problem), now)
                for key, data, _file in blobs:
                    storage.put_blob(sql, key, data)
                storage.update(sql, failed, states.PENDING)
                return failed
        new = transition(rec, states.RUNNING, now, owner=self.owner, lease_until=now + self.lease)
        return new if storage.update(sql, new, states.PENDING) else rec

    def _others(self, sql: Sql) -> list[str]:
        """The other serving workers of this host (read again once a second)."""
        when, bells = self._bells
        if time.monotonic() - when >= _BELLS_S:
            host = os.uname().nodename
            bells = worker_table.bells(sql, self.storage.path, host, self.worker_id)
            self._bells = (time.monotonic(), bells)
        return bells
