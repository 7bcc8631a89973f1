"""Moves this process's jobs through their states: start an attempt, call, store its end.

`Runner` owns the state changes of this process's jobs (thread and process executors, Dask,
a detached worker's jobs): it starts an attempt, arms its time limits, and queues its end
for the store, asking the job's retry policy about a failure.
"""

from __future__ import annotations

import pickle
import threading
from collections.abc import Callable
from typing import Any

from nbjobs import codec, states
from nbjobs.calls import refs
from nbjobs.errors import JobCancelled, SoftTimeout
from nbjobs.records import JobRecord, transition
from nbjobs.running import capture, reporting
from nbjobs.running.alarms import Alarms
from nbjobs.running.calling import Outcome, call_job, failure, job_info
from nbjobs.running.endings import attempt_end, never_ran
from nbjobs.running.local_job import LocalJob
from nbjobs.running.retry import judge
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Blob, Call, Cas


def store_log(storage: Storage, job_id: str, snapshot: dict[str, Any]) -> None:
    """Queue the tail of a running job's output for the store."""
    data = pickle.dumps(snapshot, codec.PROTOCOL)
    storage.writer.put(Call(lambda sql: storage.put_blob(sql, f"l:{job_id}", data)))


Finished = Callable[[LocalJob, BaseException | None], None]
Strategy = Callable[[LocalJob], Outcome]
Expire = Callable[[LocalJob, int], None]


class Runner:
    """Moves this process's jobs through their states around a strategy that calls the job."""

    def __init__(
        self,
        storage: Storage,
        owner: str,
        finished: Finished,
        restart: Callable[[LocalJob], None],
        expire: Expire,
    ) -> None:
        self.storage = storage
        self.owner = owner
        self.finished = finished  # the job is finished (or no longer this process's)
        self.restart = restart  # hand a job back to its executor (its next attempt)
        self.expire = expire  # end an attempt that passed its time limit
        self.alarms = Alarms(storage.clock, storage.release_thread)

    def call_of(self, local: LocalJob) -> refs.Call:
        """The job's call, with the results of the jobs it depends on in place of them."""
        if not local.rec.deps:
            return local.fn, local.args, local.kwargs
        return refs.resolve_call(local.fn, local.args, local.kwargs, self._result)

    def _result(self, job_id: str) -> Any:
        return self.storage.load_value(f"r:{job_id}")

    def fail_waiting(self, local: LocalJob, error: BaseException) -> None:
        """Fail a job that never started (a job it depends on did not succeed)."""
        with local.lock:
            if local.rec.status != states.PENDING:
                return  # cancelled meanwhile
            rec, blobs = never_ran(local.rec, error, self.storage.clock.now())
            self._move(local, rec, states.PENDING, blobs, lambda _r, e: self.finished(local, e))

    def in_thread(self, local: LocalJob) -> Outcome:
        """The thread executor's strategy: call the function right here."""
        try:
            fn, args, kwargs = self.call_of(local)
        except Exception as exc:  # a result it depends on cannot be loaded
            return failure(exc)
        ctx = reporting.JobContext(
            job_info(local.rec),
            lambda p: self.report_progress(local, p),
            lambda: _checkpoint(local, self.storage.clock.now()),
            self.storage.clock,
        )
        if local.log_state is None and local.rec.attempts <= 1:
            ctx.make_log = lambda: self.new_log(local)  # on the job's first output
        else:
            ctx.log = self.new_log(local)
        capture.install(reporting.current_log)
        return call_job(fn, args, kwargs, self.storage.blob_dir, ctx)

    def new_log(self, local: LocalJob) -> capture.LogBuffer:
        """The log of this attempt, continuing the job's earlier output (if any)."""
        log = capture.LogBuffer(lambda snap: self.write_log(local, snap), local.log_state)
        if local.rec.attempts > 1:
            log.write(f"--- attempt {local.rec.attempts} ---\n")
        return log

    def write_log(self, local: LocalJob, snapshot: dict[str, Any]) -> None:
        """Store the tail of a running job's output (throttled by the log buffer)."""
        local.log_state = snapshot
        store_log(self.storage, local.rec.id, snapshot)

    def relay(self, local: LocalJob, kind: str, body: dict[str, Any]) -> None:
        """A progress or log report sent by the process running the job elsewhere."""
        if kind == "progress":
            self.report_progress(local, body)
        elif kind == "log":
            self.write_log(local, body)

    def report_progress(
        self, local: LocalJob, progress: dict[str, Any], stored: bool = False
    ) -> None:
        """Queue a progress update of a running job (already throttled by the caller);
        `stored`: the code running it elsewhere wrote it, only this process's view follows."""
        with local.lock:
            if local.rec.status != states.RUNNING:
                return
            rec = local.rec.evolve(progress=progress)
            if stored:
                local.rec = rec
            else:
                self._move(local, rec, states.RUNNING, [], lambda _r, err: _lost(local, err))

    def run(self, local: LocalJob, strategy: Strategy) -> None:
        """Run one attempt of `local` with `strategy` and queue its outcome for the store."""
        claimed = local.claimed
        attempt = self.begin(local)
        if attempt is None:
            if claimed:  # handed back or cancelled before it started: no longer ours
                self.finished(local, None)
            return
        try:
            outcome = strategy(local)
        except BaseException as exc:  # a failure of the executor itself
            outcome = failure(exc)
        if outcome.ok:
            # The writer thread records a success: this thread takes its next job at once.
            # (A failure asks the job's retry policy, user code: it is asked here.)
            with local.lock:  # (against `end`, which judges an end it gave the attempt)
                if local.judging == attempt:
                    return  # a late success: a time limit ended the attempt first
                local.returned = attempt  # no time limit, cancel or interrupt can end it now
            ended = self.storage.clock.now()
            self.storage.writer.later(lambda: self._record_end(local, outcome, attempt, ended))
        else:
            self._record_end(local, outcome, attempt, self.storage.clock.now())

    def begin(self, local: LocalJob, limit_later: bool = False) -> int | None:
        """Move the job to running; returns the attempt token, or None if it must not run.

        `limit_later`: its time limit is armed later, with `arm_limit()` (a Dask task that may
        wait in the cluster's queue: its limit counts from when it starts there).
        """
        with local.lock:
            if local.claimed:
                local.claimed = False
                if local.cancel_requested or local.rec.status != states.RUNNING:
                    return None  # handed back before it started
                return self._next_attempt(local, self.storage.clock.now(), limit_later)
            start_from = local.rec.status
            if local.cancel_requested or start_from not in (states.PENDING, states.RETRYING):
                return None
            if local.on_start and not all(hook() for hook in local.on_start):
                local.cancel_requested = True
                rec = transition(local.rec, states.CANCELLED, self.storage.clock.now())
                self._move(local, rec, start_from, [], lambda _r, e: self.finished(local, e))
                return None
            now = self.storage.clock.now()
            rec = transition(local.rec, states.RUNNING, now, owner=self.owner)
            self._move(local, rec, start_from, [], lambda _r, err: _lost(local, err))
            return self._next_attempt(local, now, limit_later)

    def _next_attempt(self, local: LocalJob, now: float, limit_later: bool) -> int:
        """Start a new attempt token and the time limits of the attempt starting `now`."""
        rec = local.rec
        local.attempt += 1
        local.timed_out = False
        local.soft_deadline = now + rec.soft_timeout if rec.soft_timeout else None
        attempt = local.attempt
        if not limit_later:
            self.arm_limit(local, attempt, now)
        return attempt

    def arm_limit(self, local: LocalJob, attempt: int, started: float) -> None:
        """Arm the hard time limit (`timeout=`) of attempt `attempt`, started at `started`."""
        if local.rec.timeout:
            when = started + local.rec.timeout
            self.alarms.at(when, lambda: self.expire(local, attempt))

    def end(self, local: LocalJob, outcome: Outcome, attempt: int) -> None:
        """Queue the end of attempt `attempt` from a thread other than the one that ran it
        (a time limit on the alarm thread, Dask's callbacks): succeeded, failed, cancelled or
        retrying.

        An outcome that arrives after its attempt was already ended (a thread job that
        outlived its time limit) is dropped, as is any other end of an attempt whose call
        returned successfully (its success is being recorded). A failure that the job's retry
        policy must judge is judged on a thread of its own: the policy is user code, and
        other jobs wait on the thread that called (their time limits, retries, cancels).
        """
        if local.returned == attempt:
            return
        now = self.storage.clock.now()
        if outcome.ok or outcome.cancelled or local.policy is None:
            self._record_end(local, outcome, attempt, now)
            return
        with local.lock:
            if local.returned == attempt:
                return
            local.judging = attempt  # its late success is dropped, as it would be once recorded
        threading.Thread(
            target=self._record_end,
            args=(local, outcome, attempt, now),
            name="nbjobs-retry-policy",
            daemon=True,
        ).start()

    def _record_end(self, local: LocalJob, outcome: Outcome, attempt: int, now: float) -> None:
        """Queue the end of attempt `attempt`, its failure judged by the job's retry policy."""
        delay = None
        if not outcome.ok and local.policy is not None:
            if attempt != local.attempt or local.rec.status != states.RUNNING:
                return  # ended meanwhile: nothing to ask
            # Not under the job's lock: the policy is user code, and a cancel of this job,
            # its progress or a worker's heartbeat would wait for it.
            outcome, delay = judge(local.rec, outcome, now, local.policy)
        with local.lock:
            if attempt != local.attempt or local.rec.status != states.RUNNING:
                return
            if local.cancel_requested:
                delay = None  # cancelled while its policy was asked: no new attempt
            rec, blobs = attempt_end(local.rec, outcome, now, delay)
            if outcome.log is not None:
                local.log_state = outcome.log
            self._move(local, rec, states.RUNNING, blobs, self._after_end(local, rec))

    def end_held(self, local: LocalJob, outcome: Outcome) -> None:
        """End the running attempt of `local` with `outcome` now, for a caller that holds
        `local.lock` (a cancelled thread job, which Python cannot stop: whatever its thread
        does later is dropped, as the attempt is over)."""
        # A cancelled attempt is never retried: no retry policy (user code) runs under the lock.
        rec, blobs = attempt_end(local.rec, outcome, self.storage.clock.now())
        self._move(local, rec, states.RUNNING, blobs, self._after_end(local, rec))

    def adopt(self, local: LocalJob, attempt: int) -> bool:
        """Take the end of attempt `attempt` from the store, where the code that ran it wrote
        it itself (a Dask task that reaches the store folder); False if it is not there."""
        stored = self.storage.record_by_id(local.rec.id)
        with local.lock:
            if attempt != local.attempt or local.rec.status != states.RUNNING:
                return True  # ended here meanwhile (cancel, time limit)
            if stored is None or (
                stored.status == states.RUNNING and stored.attempts == local.rec.attempts
            ):
                return False
            local.rec = stored
        self._after_end(local, stored)(None, None)
        return True

    def _after_end(
        self, local: LocalJob, rec: JobRecord
    ) -> Callable[[Any, BaseException | None], None]:
        """What follows the commit of an attempt's end: the retry alarm, or the job is finished."""
        if rec.status == states.RETRYING:
            when = rec.retry_at or self.storage.clock.now()

            def after_end(_r: Any, err: BaseException | None) -> None:
                if err is None:
                    self.alarms.at(when, lambda: self.restart(local))
                else:
                    self.finished(local, err)

            return after_end
        return lambda _r, err: self.finished(local, err)

    def _move(
        self,
        local: LocalJob,
        rec: JobRecord,
        expected: str,
        blobs: list[Blob],
        callback: Callable[[Any, BaseException | None], None],
    ) -> None:
        """Queue `rec` for the store, then make it the job's state here (under `local.lock`):
        whoever sees the new state and then flushes finds it on disk."""
        self.storage.writer.put(Cas(rec, expected, blobs), callback)
        local.rec = rec


def _lost(local: LocalJob, err: BaseException | None) -> None:
    # Someone else (another process) changed the running job, e.g. cancelled it: stop at
    # the next cooperative point; its outcome will be dropped by the final compare-and-set.
    if err is not None:
        local.cancel_requested = True


def _checkpoint(local: LocalJob, now: float) -> None:
    """A cooperative point of a thread job: stop here if it was cancelled or is past its
    soft time limit (raised once, so that the job can clean up)."""
    if local.cancel_requested:
        raise JobCancelled(f"job {local.rec.id} ({local.rec.name}) was cancelled while running")
    if local.soft_deadline is not None and now >= local.soft_deadline:
        local.soft_deadline = None
        raise SoftTimeout(
            f"job {local.rec.id} ({local.rec.name}) passed its soft time limit of "
            f"{local.rec.soft_timeout} s"
        )
