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
from nbjobs.calls import refs
from nbjobs.calls.call import new_id
from nbjobs.errors import DependencyFailed, IllegalTransition, PayloadLoadError, StoreFull
from nbjobs.executors.processes import ProcessExecutor
from nbjobs.records import JobRecord, transition
from nbjobs.running.calling import failure
from nbjobs.running.endings import never_ran
from nbjobs.running.local_job import LocalJob
from nbjobs.running.runner import Runner
from nbjobs.scheduling import manage
from nbjobs.store import wakeups, worker_table
from nbjobs.store.folder import free_space
from nbjobs.store.owners import owner_token
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Cas, Sql
from nbjobs.worker import control
from nbjobs.worker.control import LEASE, POLL
from nbjobs.worker.logfile import after_error, error_text, flush_log, job_label, plural, took
from nbjobs.worker.recovery import crashed, orphaned

log = logging.getLogger("nbjobs.worker")

_LOOK_MIN = 0.05  # seconds: a schedule that stays due (say, unwritable) must not spin the loop
_REAP_EVERY = 1.0
_LOOK_PAST = 64  # queued jobs still waiting for their dependencies a claim looks past


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
        # A slot is free as soon as a job's outcome is queued: look for the next job then,
        # so that its claim is committed in the same batch as that outcome.
        self.pool = ProcessExecutor(self.runner, slots, after_job=self.wake.set)
        self.held: dict[str, LocalJob] = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.stop_grace: float | None = None  # as asked by stop_worker(), else STOP_GRACE
        self.full = False  # the store's disk is full: this process's writes are held
        self.beating = False  # a heartbeat is queued, not committed yet

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
                elif woken or now >= next_look:  # rung, a slot freed, or the fallback poll
                    next_look = now + self.poll
                    due_in = self._fire_schedules()
                    claimed = self._claim()
                    next_look = now + min(self.poll, max(_LOOK_MIN, due_in))
                    if claimed or self.held or due_in < math.inf:  # a schedule keeps it serving
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
        self.stopping = True
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
        self.stopping = True

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
    def _claim(self) -> int:
        """Claim up to as many pending worker jobs as there are free slots, oldest first."""
        with self.lock:
            busy = sum(1 for job in self.held.values() if job.still_running)
        free = self.slots - busy
        if free <= 0 or not self.storage.worker_queue(1):  # a read: no write lock when idle
            return 0
        now = self.clock.now()
        storage = self.storage

        def claim(sql: Sql) -> tuple[list[JobRecord], bool]:
            won: list[JobRecord] = []
            # Jobs waiting for their dependencies stay queued: look past a few of them.
            for rec in storage.worker_queue(free + _LOOK_PAST, sql):
                if len(won) == free:
                    return won, True
                if rec.deps:
                    problem = refs.dependency_problem(rec, lambda i: storage.read_in(sql, i))
                    if problem == refs.WAITING:
                        continue
                    if problem is not None:
                        failed, blobs = never_ran(rec, DependencyFailed(problem), now)
                        for key, data, _file in blobs:
                            storage.put_blob(sql, key, data)
                        storage.update(sql, failed, states.PENDING)
                        continue
                new = transition(
                    rec, states.RUNNING, now, owner=self.owner, lease_until=now + self.lease
                )
                if storage.update(sql, new, states.PENDING):
                    won.append(new)
            return won, False

        won, more = storage.writer.call(claim)
        if won:  # they started: wake the processes waiting for them
            wakeups.ring_watchers(storage.path)
        for rec in won:
            local = self._hold(rec)
            if local is not None:
                self._start(local)
        if more:  # this worker is full: another may have a free slot for the rest
            control.ring_others(storage, self.id)
        return len(won)

    def _hold(self, rec: JobRecord) -> LocalJob | None:
        """A `LocalJob` for a job this worker now holds, its payload read from the store.

        A payload that is gone fails the job's attempt (None is returned). What is user code
        (its retry policy, and the call of a job with dependencies) is unpickled later, on
        the pool thread that starts its attempt (`_load`): this is the loop that heartbeats.
        """
        local = LocalJob(rec, _runs_in_child, (), {})
        local.claimed = rec.status == states.RUNNING
        with self.lock:
            self.held[rec.id] = local
        found = self.storage.blobs([f"f:{rec.fn_digest}", f"l:{rec.id}"])
        fn_blob = found.get(f"f:{rec.fn_digest}") if rec.fn_digest else None
        payload = self.storage.call(rec.id)
        try:
            if fn_blob is None or payload is None:
                raise PayloadLoadError(f"job {rec.id} ({rec.name}) has lost its payload")
            local.payload = (fn_blob, codec.payload_args(payload))
        except Exception as exc:
            broken = failure(exc)
            self.runner.run(local, lambda _job: broken)
            return None
        local.prepare = functools.partial(_load, local, payload, fn_blob, self.storage.values)
        logs = found.get(f"l:{rec.id}")
        local.log_state = None if logs is None else codec.load_plain(logs)
        return local

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
                running += rec.status == states.RUNNING
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

        def requeue(sql: Sql) -> list[JobRecord]:
            adopted = []
            for rec in orphans:
                if rec.status == states.RETRYING:
                    new = rec.evolve(owner=self.owner, lease_until=now + self.lease, updated_at=now)
                    if storage.take_over(sql, new, rec.status, rec.owner):
                        adopted.append(new)
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
        for rec in adopted:
            local = self._hold(rec)
            if local is not None:
                when = rec.retry_at or now
                self.runner.alarms.at(when, functools.partial(self._restart, local))
        return bool(orphans)

    # ------------------------------------------------------------------ runner hooks
    def _start(self, local: LocalJob) -> None:
        log.info("job %s: attempt %d starts%s", job_label(local.rec),
                 local.rec.attempts + (local.rec.status != states.RUNNING),
                 after_error(local.rec))  # fmt: skip
        self.pool.start(local)

    def _finished(self, local: LocalJob, error: BaseException | None) -> None:
        rec = local.rec
        if rec.status in states.FINISHED:
            why = "" if rec.status == states.SUCCEEDED else f" ({error_text(rec)})"
            log.info("job %s: %s after %s%s; the last took %s", job_label(rec), rec.status,
                     plural(rec.attempts, "attempt"), why, took(rec))  # fmt: skip
        self._drop(local)
        wakeups.ring_watchers(self.storage.path)  # committed: the processes waiting look now

    def _drop(self, local: LocalJob) -> None:
        with self.lock:
            if self.held.get(local.rec.id) is local:
                del self.held[local.rec.id]
        self.wake.set()

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


def _load(local: LocalJob, payload: bytes, fn_blob: bytes, values: Callable[[str], Any]) -> None:
    """Unpickle a held job's retry policy and, if it has dependencies, its call (their
    results are put in place before the call is sent): user code (`__reduce__`), so run by
    the process executor before an attempt's call, never on the worker's loop, where a slow
    one would stall the heartbeat that keeps the leases of every job the worker holds."""
    local.policy = codec.payload_policy(payload)
    if local.rec.deps:
        local.fn, local.args, local.kwargs = codec.load_payload(payload, fn_blob, values)
