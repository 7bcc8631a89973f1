"""The detached worker's loop (`Worker`): claims a store's worker jobs, runs them, renews leases.

It runs the jobs submitted with `executor="worker"`, each in a child process of the process
executor (so retries, time limits, progress, logs and results behave as for
`executor="process"`). It waits on its doorbell (nbjobs/store/wakeups.py), rung by whoever
commits a claimable job, with a slow poll as the fallback. It claims a pending job with a
compare-and-set `pending -> running` that records its owner token and a lease; every second
it renews its heartbeat and the leases of the jobs it holds (a failed renewal means the job
was cancelled or taken over: its child is killed). It fires the store's schedules: each due
slot becomes a worker job (see nbjobs/scheduling/manage.py). It requeues the jobs of workers
that died (a dead process on this host at once, an expired lease otherwise), at most
`CRASH_CAP` times per job (nbjobs/worker/recovery.py). It stops when idle for
`--idle-timeout` seconds (never while an active schedule is stored, and not right after a
`start_worker()` reused it), or when asked (`nbjobs.stop_worker()`, SIGTERM): running jobs
get a short grace, then go back to `pending` for another worker. On a full disk it lives on:
it takes no new job and fires no schedule while its writes are held (see
nbjobs/store/writer.py), its running jobs go on (their outcomes are written once there is
room), and its log says when the disk filled and when space returned. Its command line is
nbjobs/worker/command.py, its log nbjobs/worker/logfile.py. See docs/design.md.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
from collections.abc import Callable
from typing import Any

from nbjobs import codec, states
from nbjobs.calls.call import new_id
from nbjobs.errors import IllegalTransition, PayloadLoadError, StoreFull
from nbjobs.executors.processes import ProcessExecutor
from nbjobs.records import JobRecord, transition
from nbjobs.running.local_job import LocalJob
from nbjobs.running.runner import Runner
from nbjobs.scheduling import manage
from nbjobs.store import wakeups, worker_table
from nbjobs.store.folder import free_space
from nbjobs.store.job_table import StoredCall
from nbjobs.store.owners import owner_token
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Cas, Sql
from nbjobs.worker import control
from nbjobs.worker.claiming import Claimed, Claims
from nbjobs.worker.control import LEASE, POLL
from nbjobs.worker.logfile import after_error, error_text, flush_log, job_label, plural, took
from nbjobs.worker.recovery import crashed, orphaned

log = logging.getLogger("nbjobs.worker")

_LOOK_MIN = 0.05  # seconds: a schedule that stays due (say, unwritable) must not spin the loop
_REAP_EVERY = 1.0
#: A worker whose last job took less than this claims a job ahead for each slot: it waits in
#: the pool's queue, so a slot that frees starts its next job at once, with no claim between.
SHORT_JOB = 0.1


def _runs_in_child(*args: Any, **kwargs: Any) -> Any:
    """The `fn` of a worker's `LocalJob`: its function is only unpickled in the child."""
    raise RuntimeError("a worker job runs in a child process, from its pickled payload")


class Worker:
    """One detached worker: claims jobs of one store and runs them in `slots` children."""

    def __init__(
        self,
        path: str,
        slots: int,
        idle_timeout: float | None = None,
        lease: float = LEASE,
        worker_id: str | None = None,
        poll: float = POLL,
    ) -> None:
        self.storage = Storage(path)
        self.clock = self.storage.clock
        self.id = worker_id or new_id()
        self.owner = owner_token()
        self.slots = slots
        self.idle_timeout = idle_timeout
        self.lease = lease
        self.poll = poll
        self.beat = min(1.0, lease / 4)
        self.runner = Runner(self.storage, self.owner, self._finished, self._restart, self._expire)
        self.wake = wakeups.Doorbell()
        self.claims = Claims(self.storage, self.owner, self.id, lease, self._free, self._won)
        # A slot is free as soon as a job's outcome is queued: its pool thread queues the
        # next claim then, committed in the same batch as that outcome.
        self.pool = ProcessExecutor(self.runner, slots, after_job=self.claims.slot_freed)
        self.held: dict[str, LocalJob] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.stop_grace: float | None = None  # as asked by stop_worker(), else STOP_GRACE
        self.full = False  # the store's disk is full: this process's writes are held
        self.beating = False  # a heartbeat is queued, not committed yet
        self.telling = False  # a wake-up of the watchers is queued
        self.short = False  # its last job was short: it claims a job ahead for each slot

    # ------------------------------------------------------------------ main loop
    def run(self) -> None:
        """Serve until idle for `idle_timeout` seconds or asked to stop."""
        rung = self.wake.listen(wakeups.address(self.storage.path, self.id))
        self._register()
        log.info("worker %s (pid %d) serving %s with %s (%s)", self.id, os.getpid(),
                 self.storage.path, plural(self.slots, "slot"),
                 "woken by submits" if rung else "polling only")  # fmt: skip
        mono = self.clock.monotonic
        next_beat = next_reap = next_look = idle_since = mono()
        woken = True
        while not self.stopping:
            now = mono()
            full = self._disk_full()
            try:
                if now >= next_reap:
                    next_reap = now + _REAP_EVERY
                    if not full:
                        woken = self.reap() or woken  # requeued jobs: claim them
                if now >= next_beat:
                    next_beat = now + self.beat
                    self._heartbeat("running")
                    flush_log()  # the lines gathered since the last beat
                if full:  # nothing it writes would land: it waits for room
                    next_look = now + self.poll
                    idle_since = now
                elif woken or now >= next_look:  # rung, or the fallback poll
                    next_look = now + self.poll
                    due_in = self._fire_schedules()
                    self.claims.ask(look=not self.claims.more)
                    next_look = now + min(self.poll, max(_LOOK_MIN, due_in))
                    if self.claims.pending or self.held or due_in < math.inf:  # (a schedule
                        idle_since = now
                    elif self.idle_timeout is not None and now - idle_since >= self.idle_timeout:
                        if self._retire():
                            log.info("idle for %s s: stopping", self.idle_timeout)
                            self.stop_grace = 0.0
                            break
                        idle_since = now
            except StoreFull:
                pass  # its writer holds its writes now: the next turn says so, and waits
            woken = self.wake.wait(max(0.0, min(next_look, next_beat, next_reap) - mono()))
        self.claims.closed = True
        if self.stop_grace is None:  # a signal: the grace asked in the store, if any
            with contextlib.suppress(StoreFull):  # (then the default grace)
                self.stop_grace = self.storage.writer.call(
                    lambda sql: worker_table.requested_grace(sql, self.id)
                )
        self._shutdown(control.STOP_GRACE if self.stop_grace is None else self.stop_grace)

    def _disk_full(self) -> bool:
        """Whether the store's disk is full (this process's writes are held until there is
        room); the log says so when that changes."""
        full = self.storage.writer.full
        if (full is not None) != self.full:
            self.full = full is not None
            if full is not None:
                with self.lock:
                    jobs = plural(len(self.held), "job")
                log.warning("worker %s: the job store at %s is full (%s): this worker takes "
                            "no new job until there is room; its %s go on, their outcomes "
                            "are written then", self.id, self.storage.path,
                            free_space(self.storage.path), jobs)  # fmt: skip
            else:
                log.warning("worker %s: the job store at %s has space again: this worker "
                            "takes jobs again", self.id, self.storage.path)  # fmt: skip
        return self.full

    def request_stop(self, grace: float | None = None) -> None:
        """Stop claiming; running jobs get `grace` seconds, then go back to pending."""
        if grace is not None:
            self.stop_grace = grace
        self.stopping = self.claims.closed = True
        self.wake.set()

    def _retire(self) -> bool:
        """True if this idle worker may exit; False if `start_worker()` reused it meanwhile:
        it then serves another `idle_timeout` for the kernel that was handed it."""
        if self.storage.writer.call(lambda sql: worker_table.retire(sql, self.id)):
            return True
        log.info("reused by start_worker(): serving another %s s", self.idle_timeout)
        return False

    def on_signal(self, signum: int, frame: object) -> None:
        """SIGTERM, SIGINT: a graceful stop (no lock taken here: the loop polls the flag)."""
        self.stopping = self.claims.closed = True

    def _register(self) -> None:
        now = self.clock.now()
        row = worker_table.WorkerRow(
            id=self.id, owner=self.owner, host=os.uname().nodename, pid=os.getpid(),
            started_at=now, heartbeat_at=now, slots=self.slots, running=0, state="running",
            cwd=os.getcwd(), lease=self.lease,
        )  # fmt: skip
        self.storage.writer.call(lambda sql: worker_table.register(sql, row))

    # ------------------------------------------------------------------ schedules
    def _fire_schedules(self) -> float:
        """Queue the firings of the schedules that are due (one index read when none is);
        returns the seconds until the next one is due (inf: the store has no active one)."""
        due_at = self.storage.earliest_schedule()
        if due_at is None:
            return math.inf
        now = self.clock.now()
        if due_at <= now:
            manage.fire_due(self.storage, now)
            due_at = self.storage.earliest_schedule()
        return math.inf if due_at is None else max(0.0, due_at - now)

    # ------------------------------------------------------------------ claiming
    def _free(self) -> int:
        """Jobs to claim: slots not held by a running job (one claimed but not begun holds
        its slot), and one ahead for each slot while the jobs are short (`SHORT_JOB`)."""
        ahead = self.slots if self.short else 0
        with self.lock:
            return self.slots + ahead - sum(1 for job in self.held.values() if job.still_running)

    def _won(self, jobs: Claimed) -> None:
        """The jobs of a committed claim (in the writer thread): held and started."""
        for rec, stored in jobs:
            self._start(self._hold(rec, stored))
        self._tell_watchers()  # they started

    def _hold(self, rec: JobRecord, stored: StoredCall) -> LocalJob:
        """A `LocalJob` for a job this worker now holds. What it runs with is loaded by the
        pool thread that starts its attempt (`_load`), never by the loop that heartbeats
        or the writer thread: a large payload's file, and user code (its retry policy, the
        call of a job with dependencies)."""
        local = LocalJob(rec, _runs_in_child, (), {})
        local.claimed = rec.status == states.RUNNING
        local.prepare = functools.partial(self._begin, local, stored, local.claimed)
        with self.lock:
            self.held[rec.id] = local
        return local

    def _begin(self, local: LocalJob, stored: StoredCall, claimed: bool) -> None:
        """A held job's first attempt begins (on its pool thread): a claimed job starts
        now, not when it was claimed (one claimed ahead waited for a slot); then it is
        loaded."""
        with local.lock:
            rec = local.rec
            if claimed and local.attempt == 1 and rec.status == states.RUNNING:
                self._started(local, rec, self.clock.now())
        _load(local, stored, self.storage)

    def _started(self, local: LocalJob, rec: JobRecord, now: float) -> None:
        """Write that a claimed job (`rec`, held under its lock) started at `now`."""
        first = rec.run_started_at == rec.started_at
        rec = rec.evolve(started_at=now, updated_at=now)
        if first:
            rec.run_started_at = now
        local.rec = rec
        # Committed with its previous job's outcome, merged with its own if it is short.
        self.storage.writer.put(Cas(rec, states.RUNNING), self._on_renewed(local))

    # ------------------------------------------------------------------ heartbeat
    def _heartbeat(self, state: str) -> None:
        """Renew this worker's row and the leases of its jobs; notice a stop request.

        On a full disk, one heartbeat waits for room at a time: the writes held stay few."""
        if self.full and self.beating:
            return
        until = self.clock.now() + self.lease
        with self.lock:
            held = list(self.held.values())
        running = 0
        for local in held:
            with local.lock:
                rec = local.rec
                if rec.status not in (states.RUNNING, states.RETRYING) or local.returning:
                    continue  # (a success being recorded needs no lease: it is not renewed)
                running += rec.status == states.RUNNING and not local.claimed  # (begun)
                rec = rec.evolve(lease_until=until)
                local.rec = rec
                self.storage.writer.put(Cas(rec, rec.status), self._on_renewed(local))
        now = self.clock.now()

        def beat(sql: Sql) -> float | None:
            return worker_table.heartbeat(sql, self.id, now, running, state)

        def asked(grace: float | None, err: BaseException | None) -> None:
            self.beating = False
            if self.full:
                self.wake.set()  # committed: there is room again, the loop looks at once
            if grace is not None:
                self.request_stop(grace)

        self.beating = True
        self.storage.writer.put(Call(beat), asked)

    def _on_renewed(self, local: LocalJob) -> Callable[[Any, BaseException | None], None]:
        def done(_result: Any, err: BaseException | None) -> None:
            if isinstance(err, IllegalTransition):  # cancelled, or taken over by another worker
                self._lost(local)
            elif err is not None:  # the store could not be written: the next beat tries again
                log.warning("could not renew the lease of job %s: %s", local.rec.id, err)

        return done

    def _lost(self, local: LocalJob) -> None:
        with local.lock:
            local.cancel_requested = True
            running = local.rec.status == states.RUNNING
            if local.still_running:
                self.pool.cancel_running(local)  # its outcome is then dropped: _finished
        if not running:
            self._drop(local)
        log.info("job %s was cancelled or taken over: stopped here", local.rec.id)

    # ------------------------------------------------------------------ reaping
    def reap(self) -> bool:
        """Requeue running jobs of dead workers (a crash: `crashes + 1`, failed past the cap)
        and adopt their retrying jobs; forget the rows of dead workers. True if it found
        orphaned jobs."""
        now = self.clock.now()
        orphans = [
            rec
            for rec in self.storage.held_records()
            if rec.executor == "worker" and rec.owner != self.owner and orphaned(rec, now)
        ]
        gone = control.dead_here(self.storage)
        if not orphans and not gone:
            return False
        storage = self.storage

        def requeue(sql: Sql) -> Claimed:
            adopted = []
            for rec in orphans:
                if rec.status == states.RETRYING:
                    new = rec.evolve(owner=self.owner, lease_until=now + self.lease, updated_at=now)
                    if storage.take_over(sql, new, rec.status, rec.owner):
                        adopted.append((new, storage.stored_call(sql, new)))
                    continue
                new, blobs = crashed(rec, now)
                if storage.take_over(sql, new, rec.status, rec.owner):
                    for key, data, file in blobs:
                        storage.put_blob(sql, key, data, file)
                    log.info("job %s of dead worker %s: now %s", rec.id, rec.owner, new.status)
            for wid in gone:
                worker_table.remove(sql, storage.path, wid)
            return adopted

        adopted = storage.writer.call(requeue)
        if orphans:
            control.ring_others(storage, self.id)
        for rec, stored in adopted:
            local = self._hold(rec, stored)
            self.runner.alarms.at(rec.retry_at or now, functools.partial(self._restart, local))
        return bool(orphans)

    # ------------------------------------------------------------------ runner hooks
    def _start(self, local: LocalJob) -> None:
        log.info("job %s: attempt %d starts%s", job_label(local.rec),
                 local.rec.attempts + (local.rec.status != states.RUNNING),
                 after_error(local.rec))  # fmt: skip
        self.pool.start(local)

    def _finished(self, local: LocalJob, error: BaseException | None) -> None:
        rec = local.rec
        began, ended = rec.started_at, rec.finished_at
        if rec.status in states.FINISHED and began is not None and ended is not None:
            self.short = ended - began < SHORT_JOB
        if rec.status in states.FINISHED:
            why = "" if rec.status == states.SUCCEEDED else f" ({error_text(rec)})"
            log.info("job %s: %s after %s%s; the last took %s", job_label(rec), rec.status,
                     plural(rec.attempts, "attempt"), why, took(rec))  # fmt: skip
        self._drop(local)
        self._tell_watchers()  # committed: the processes waiting look now

    def _drop(self, local: LocalJob) -> None:
        with self.lock:
            if self.held.get(local.rec.id) is local:
                del self.held[local.rec.id]
        if self.stopping:  # the loop waits for the last running job to end
            self.wake.set()

    def _tell_watchers(self) -> None:
        """Wake the processes waiting for this worker's jobs once the writer's batch is
        through (its callbacks run): one wake-up for the jobs that started or ended in it."""
        if not self.telling:
            self.telling = True
            self.storage.writer.later(self._ring_watchers)

    def _ring_watchers(self) -> None:
        self.telling = False  # (before the ring: a job that ends now is told by another)
        wakeups.ring_watchers(self.storage.path)

    def _restart(self, local: LocalJob) -> None:
        self._start(local)

    def _expire(self, local: LocalJob, attempt: int) -> None:
        if attempt == local.attempt and local.still_running:
            self.pool.expire(local, attempt)

    # ------------------------------------------------------------------ stopping
    def _shutdown(self, grace: float) -> None:
        """Let running jobs finish for `grace` seconds, hand the rest back, deregister."""
        mono = self.clock.monotonic
        deadline = mono() + grace
        next_beat = 0.0
        while self._running() and mono() < deadline:
            if mono() >= next_beat:
                self._heartbeat("stopping")
                next_beat = mono() + self.beat
            self.wake.wait(min(0.05, max(0.0, deadline - mono())))
        self.wake.close()
        try:
            self._hand_back()
            self.pool.shutdown()
            path = self.storage.path
            self.storage.writer.call(lambda sql: worker_table.remove(sql, path, self.id))
        except StoreFull as exc:
            self.pool.shutdown()
            log.warning("worker %s: %s; it stops without saying so in the store: the jobs it "
                        "held stay running there until a worker started later requeues them",
                        self.id, exc)  # fmt: skip
        self.storage.close()
        log.info("worker %s stopped", self.id)

    def _running(self) -> bool:
        with self.lock:
            return any(job.rec.status == states.RUNNING for job in self.held.values())

    def _hand_back(self) -> None:
        """Running jobs go back to `pending` (their children are killed); retrying ones are
        released for another worker to adopt."""
        self.storage.writer.flush()  # a claim still queued: the jobs it took are handed back too
        now = self.clock.now()
        with self.lock:
            held = list(self.held.values())
        handed = []
        for local in held:
            with local.lock:
                rec = local.rec
                if local.returning:
                    continue  # its success is being recorded (flushed below)
                local.cancel_requested = True
                if rec.status == states.RUNNING:
                    new = transition(
                        rec, states.PENDING, now, owner=None, lease_until=None,
                        run_attempts=max(0, rec.run_attempts - 1),
                    )  # fmt: skip
                    self.pool.cancel_running(local)
                elif rec.status == states.RETRYING:
                    new = rec.evolve(owner=None, lease_until=None, updated_at=now)
                else:
                    continue
                local.rec = new
                self.storage.writer.put(Cas(new, rec.status))
                handed.append(new)
        self.storage.writer.flush()  # (StoreFull on a full disk: nothing was handed back)
        for new in handed:
            log.info("job %s handed back (%s)", new.id, new.status)
        control.ring_others(self.storage, self.id)


def _load(local: LocalJob, stored: StoredCall, storage: Storage) -> None:
    """Load what a held job runs with: its payload (a large one from its file), its output
    so far, its retry policy and, if it has dependencies, its call (their results are put
    in place before the call is sent). User code (`__reduce__`), so run by the process
    executor before an attempt's call, never on the worker's loop, where a slow one would
    stall the heartbeat that keeps the leases of every job the worker holds."""
    rec = local.rec
    fn_blob = None if stored.fn is None else storage.blob_bytes(stored.fn)
    payload = None if stored.call is None else storage.blob_bytes(stored.call)
    if fn_blob is None or payload is None:
        raise PayloadLoadError(f"job {rec.id} ({rec.name}) has lost its payload")
    logs = None if stored.logs is None else storage.blob_bytes(stored.logs)
    local.log_state = None if logs is None else codec.load_plain(logs)
    local.payload = (fn_blob, codec.payload_args(payload))
    local.policy = codec.payload_policy(payload)
    if rec.deps:
        local.fn, local.args, local.kwargs = codec.load_payload(payload, fn_blob, storage.values)
