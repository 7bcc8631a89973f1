"""Runs one attempt of a job held in this process: start, call, store the outcome.

`call_job` runs a function and turns whatever happens into an `Outcome` (plain data that
can cross a pipe); it is shared by the thread executor and the child processes of the
process executor. `Runner` owns the state changes of this process's jobs.
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CoroutineType
from typing import TYPE_CHECKING, Any

from nbjobs import codec, states
from nbjobs.calls import refs
from nbjobs.calls.retrying import Policy
from nbjobs.errors import (
    JobCancelled,
    PayloadLoadError,
    ResultNotPicklable,
    RetryPolicyFailed,
    SoftTimeout,
)
from nbjobs.records import ErrorInfo, JobRecord, transition
from nbjobs.running import capture, reporting
from nbjobs.running.alarms import Alarms
from nbjobs.store.blobs import write_value
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Blob, Call, Cas

if TYPE_CHECKING:
    from nbjobs.executors import Backend


@dataclass(slots=True)
class Outcome:
    """How an attempt ended, ready to store: a result blob or an error blob."""

    ok: bool
    data: bytes | None = None  # inline result bytes, or the error blob
    file: str | None = None  # result written as a file under blobs/
    error_type: str = ""
    error_message: str = ""
    cancelled: bool = False  # stopped at a cooperative point after a cancel
    progress: dict[str, Any] | None = None  # the last progress reported
    log: dict[str, Any] | None = None  # the final snapshot of the job's captured output


def failure(exc: BaseException) -> Outcome:
    type_name, message, blob = codec.encode_error(exc)
    return Outcome(False, blob, None, type_name, message, isinstance(exc, JobCancelled))


def invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`fn(*args, **kwargs)`; a coroutine (from an `async def`) runs on its own event loop."""
    value = fn(*args, **kwargs)
    if type(value) is CoroutineType:
        import asyncio  # only async jobs need it; importing costs ~30 ms

        value = asyncio.run(value)
    return value


def call_job(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    blob_dir: Path | None,
    ctx: reporting.JobContext,
) -> Outcome:
    """Call `fn(*args, **kwargs)` here, inside `ctx`, and encode the result or the exception.

    A large result is written to a file under `blob_dir`; with None (the store's folder is
    not reachable from here) it stays inline, for the process that owns the job to store.
    """
    token = reporting.enter(ctx)
    try:
        value = invoke(fn, args, kwargs)
        outcome = _store_result(value, blob_dir, ctx.info.id)
    except BaseException as exc:
        if isinstance(exc, NameError):
            _explain_missing_global(fn, exc)
        outcome = failure(exc)
    finally:
        reporting.leave(token)
    log = ctx.log.snapshot() if ctx.log is not None and ctx.log.total else None
    if ctx.latest is None and log is None:
        return outcome
    o = outcome  # (dataclasses.replace costs ~10 µs: it was 5% of a trivial job's CPU)
    return Outcome(
        o.ok, o.data, o.file, o.error_type, o.error_message, o.cancelled, ctx.latest, log
    )


def _explain_missing_global(fn: Callable[..., Any], exc: NameError) -> None:
    """A function pickled by value (defined in the notebook) carries the globals it saw at
    its first submit: a global defined in a later cell is missing where it runs."""
    home = sys.modules.get(getattr(fn, "__module__", None) or "")
    if getattr(fn, "__globals__", None) is getattr(home, "__dict__", None):
        return  # imported from its module here: a NameError of its own
    name = getattr(fn, "__qualname__", "the job's function")
    exc.add_note(
        f"nbjobs: {name} was pickled with the globals it could see when it was first "
        f"submitted, and {exc.name!r} was not among them. If it is defined in a later cell, "
        "submit the job again (nbjobs pickles the function again once the missing global "
        "exists; a failed keyed job re-runs when its key is submitted again, a finished one "
        "with force=True). job.retry() re-runs the call as it was stored and fails the same "
        "way."
    )


def _store_result(value: Any, blob_dir: Path | None, job_id: str) -> Outcome:
    try:
        frames = codec.dumps(value)
    except Exception as exc:
        return failure(
            ResultNotPicklable(
                f"the job returned a {type(value).__name__} that cannot be pickled, so it "
                f"cannot be stored ({type(exc).__name__}: {exc}); return plain data instead"
            )
        )
    if blob_dir is None:
        return Outcome(True, frames.to_bytes())
    data, file = write_value(blob_dir, f"r:{job_id}", frames)
    return Outcome(True, data, file)


def store_log(storage: Storage, job_id: str, snapshot: dict[str, Any]) -> None:
    """Queue the tail of a running job's output for the store."""
    data = pickle.dumps(snapshot, codec.PROTOCOL)
    storage.writer.put(Call(lambda sql: storage.put_blob(sql, f"l:{job_id}", data)))


def load_failure(exc: Exception, where: str) -> Outcome:
    """The outcome of a job whose function or arguments cannot be loaded `where` it runs."""
    return failure(
        PayloadLoadError(
            f"the job's function or arguments could not be loaded in {where} "
            f"({type(exc).__name__}: {exc}); functions imported from your own modules must "
            "be importable there (from the notebook's folder and sys.path)"
        )
    )


def job_info(rec: JobRecord) -> reporting.CurrentJob:
    return reporting.CurrentJob(rec.id, rec.key, rec.name, rec.attempts)


class OneShot:
    """A cheap one-shot event (a `threading.Event` costs a Condition per job).

    A waiter takes the lock and gives it back; Ctrl-C (a KeyboardInterrupt raised between
    the two) can leave it taken. The flag then still says it is set, and a waiter blocked
    meanwhile looks at the flag every `_RECHECK_S`: nobody waits forever for a set event.
    """

    __slots__ = ("_done", "_lock")

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._done = True
        if self._lock.locked():
            with contextlib.suppress(RuntimeError):  # released meanwhile by another set()
                self._lock.release()

    def is_set(self) -> bool:
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if `timeout` seconds passed first."""
        if self._done:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _RECHECK_S if deadline is None else deadline - time.monotonic()
            if self._lock.acquire(timeout=max(0.0, min(_RECHECK_S, left))):
                self._lock.release()
                return True
            if self._done:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


_RECHECK_S = 1.0


class LocalJob:
    """A job this process is responsible for: its callable, and its latest record.

    `rec` is the newest state this process has queued for the store; the lock orders
    state changes made here (start, cancel) so that they reach the writer in order. No
    user code runs under it (a worker's heartbeat takes the lock of every job it holds):
    the retry policy of a failed attempt is asked before it is taken. `on_start` hooks
    (nbjobs' own) run under that lock when the job starts (one returning False cancels
    it); `on_done` hooks run once the outcome is committed. A success is recorded
    by the writer thread (`Runner.run`): between its return and that record, `rec` still
    says running and `returning` is True.
    """

    __slots__ = (
        "args",
        "attempt",
        "backend",
        "cancel_requested",
        "claimed",
        "done",
        "fn",
        "judging",
        "kwargs",
        "lock",
        "log_state",
        "on_done",
        "on_start",
        "payload",
        "policy",
        "prepare",
        "rec",
        "returned",
        "soft_deadline",
        "timed_out",
    )

    def __init__(
        self,
        rec: JobRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        payload: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.rec = rec
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.payload = payload  # (function bytes, argument bytes) for other processes
        self.lock = threading.Lock()
        self.done = OneShot()
        self.cancel_requested = False
        self.claimed = False  # a worker's claim already moved it to running in the store
        self.on_start: list[Callable[[], bool]] = []
        self.on_done: list[Callable[[], None]] = []
        self.policy: Policy | None = None
        # Run (until it succeeds) before an attempt's call, on the thread that starts it:
        # a detached worker's job unpickles its policy and call there (see worker._load).
        self.prepare: Callable[[], None] | None = None
        self.attempt = 0  # which attempt of this process is current; late outcomes are dropped
        self.returned = -1  # the attempt whose call returned (its success is on its way to the
        # store); -1: none, so a job claimed but not begun yet (attempt 0) holds its slot
        self.judging = 0  # the attempt ended by another thread, its retry policy being asked
        self.timed_out = False
        self.soft_deadline: float | None = None
        self.log_state: dict[str, Any] | None = None  # the job's output so far
        self.backend: Backend | None = None  # the executor running it (set by the store)

    @property
    def returning(self) -> bool:
        """Its attempt's call returned successfully and the writer thread is recording that:
        its outcome is decided (no time limit, cancel, interrupt or hand-back ends it now)."""
        return self.returned == self.attempt and self.rec.status == states.RUNNING

    @property
    def still_running(self) -> bool:
        """Running, its outcome not decided yet: it holds its slot, and a time limit, a
        cancel, an interrupt or a hand-back can still end it."""
        return self.rec.status == states.RUNNING and self.returned != self.attempt


Finished = Callable[[LocalJob, BaseException | None], None]
Invoke = Callable[[LocalJob], Outcome]
Expire = Callable[[LocalJob, int], None]


class Runner:
    """Moves this process's jobs through their states around an `invoke` strategy."""

    def __init__(
        self,
        storage: Storage,
        owner: str,
        on_finished: Finished,
        restart: Callable[[LocalJob], None],
        expire: Expire,
    ) -> None:
        self.storage = storage
        self.owner = owner
        self.on_finished = on_finished
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
            self._move(local, rec, states.PENDING, blobs, lambda _r, e: self.on_finished(local, e))

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

    def run(self, local: LocalJob, invoke: Invoke) -> None:
        """Run one attempt of `local` with `invoke` and queue its outcome for the store."""
        claimed = local.claimed
        attempt = self.begin(local)
        if attempt is None:
            if claimed:  # handed back or cancelled before it started: no longer ours
                self.on_finished(local, None)
            return
        try:
            outcome = invoke(local)
        except BaseException as exc:  # a failure of the executor itself
            outcome = failure(exc)
        if outcome.ok:
            # The writer thread records a success: this thread takes its next job at once.
            # (A failure asks the job's retry policy, user code: it is asked here.)
            with local.lock:  # (against `finish`, which judges an end it gave the attempt)
                if local.judging == attempt:
                    return  # a late success: a time limit ended the attempt first
                local.returned = attempt  # no time limit, cancel or interrupt can end it now
            ended = self.storage.clock.now()
            self.storage.writer.later(lambda: self._end(local, outcome, attempt, ended))
        else:
            self._end(local, outcome, attempt, self.storage.clock.now())

    def begin(self, local: LocalJob, limit: bool = True) -> int | None:
        """Move the job to running; returns the attempt token, or None if it must not run.

        `limit=False`: its time limit is armed later, with `limit()` (a Dask task that may
        wait in the cluster's queue: its limit counts from when it starts there).
        """
        with local.lock:
            if local.claimed:
                local.claimed = False
                if local.cancel_requested or local.rec.status != states.RUNNING:
                    return None  # handed back before it started
                return self._arm(local, self.storage.clock.now(), limit)
            start_from = local.rec.status
            if local.cancel_requested or start_from not in (states.PENDING, states.RETRYING):
                return None
            if local.on_start and not all(hook() for hook in local.on_start):
                local.cancel_requested = True
                rec = transition(local.rec, states.CANCELLED, self.storage.clock.now())
                self._move(local, rec, start_from, [], lambda _r, e: self.on_finished(local, e))
                return None
            now = self.storage.clock.now()
            rec = transition(local.rec, states.RUNNING, now, owner=self.owner)
            self._move(local, rec, start_from, [], lambda _r, err: _lost(local, err))
            return self._arm(local, now, limit)

    def _arm(self, local: LocalJob, now: float, limit: bool) -> int:
        """Start a new attempt token and the time limits of the attempt starting `now`."""
        rec = local.rec
        local.attempt += 1
        local.timed_out = False
        local.soft_deadline = now + rec.soft_timeout if rec.soft_timeout else None
        attempt = local.attempt
        if limit:
            self.limit(local, attempt, now)
        return attempt

    def limit(self, local: LocalJob, attempt: int, started: float) -> None:
        """Arm the hard time limit (`timeout=`) of attempt `attempt`, started at `started`."""
        if local.rec.timeout:
            when = started + local.rec.timeout
            self.alarms.at(when, lambda: self.expire(local, attempt))

    def finish(self, local: LocalJob, outcome: Outcome, attempt: int) -> None:
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
            self._end(local, outcome, attempt, now)
            return
        with local.lock:
            if local.returned == attempt:
                return
            local.judging = attempt  # its late success is dropped, as it would be once recorded
        threading.Thread(
            target=self._end,
            args=(local, outcome, attempt, now),
            name="nbjobs-retry-policy",
            daemon=True,
        ).start()

    def _end(self, local: LocalJob, outcome: Outcome, attempt: int, now: float) -> None:
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
            rec, blobs = ending(local.rec, outcome, now, delay)
            if outcome.log is not None:
                local.log_state = outcome.log
            self._move(local, rec, states.RUNNING, blobs, self._after(local, rec))

    def end_held(self, local: LocalJob, outcome: Outcome) -> None:
        """End the running attempt of `local` with `outcome` now, for a caller that holds
        `local.lock` (a cancelled thread job, which Python cannot stop: whatever its thread
        does later is dropped, as the attempt is over)."""
        # A cancelled attempt is never retried: no retry policy (user code) runs under the lock.
        rec, blobs = ending(local.rec, outcome, self.storage.clock.now())
        self._move(local, rec, states.RUNNING, blobs, self._after(local, rec))

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
        self._after(local, stored)(None, None)
        return True

    def _after(
        self, local: LocalJob, rec: JobRecord
    ) -> Callable[[Any, BaseException | None], None]:
        """What follows the commit of an attempt's end: the retry alarm, or the job is done."""
        if rec.status == states.RETRYING:
            when = rec.retry_at or self.storage.clock.now()

            def after(_r: Any, err: BaseException | None) -> None:
                if err is None:
                    self.alarms.at(when, lambda: self.restart(local))
                else:
                    self.on_finished(local, err)

            return after
        return lambda _r, err: self.on_finished(local, err)

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


def ending(
    prev: JobRecord, outcome: Outcome, now: float, delay: float | None = None
) -> tuple[JobRecord, list[Blob]]:
    """The record and blobs that end the running attempt of `prev` with `outcome`: succeeded,
    failed, cancelled, or retrying in `delay` seconds (as `judge` decided, beforehand and
    without any lock: it runs user code)."""
    job_id = prev.id
    changes: dict[str, Any] = {"progress": outcome.progress or prev.progress}
    if outcome.ok:
        status = states.SUCCEEDED
        changes["has_result"] = True
        blobs: list[Blob] = [(f"r:{job_id}", outcome.data, outcome.file)]
    else:
        status = states.CANCELLED if outcome.cancelled else states.FAILED
        changes["error"] = ErrorInfo(outcome.error_type, outcome.error_message)
        blobs = [(f"e:{job_id}", outcome.data, None)]
        if delay is not None:
            status = states.RETRYING
            changes["retry_at"] = now + delay
            changes["idle_for"] = prev.idle_for + delay
    rec = transition(prev, status, now, **changes)
    if not outcome.ok:  # a successful attempt is fully described by the record
        blobs.append(attempt_blob(prev, outcome, now))
    if outcome.log is not None:
        blobs.append((f"l:{job_id}", pickle.dumps(outcome.log, codec.PROTOCOL), None))
    return rec, blobs


def judge(
    prev: JobRecord, outcome: Outcome, now: float, policy: Policy | None
) -> tuple[Outcome, float | None]:
    """Ask `policy` whether the running attempt of `prev`, ended by `outcome`, is retried:
    the outcome to record, and the seconds until the next attempt (None: no retry).

    A policy that raises fails the job with `RetryPolicyFailed` (its outcome replaces the
    attempt's, whose error it tells). User code runs here: the policy's strategies, and the
    unpickling of the job's exception; call it under no lock, on no thread other jobs need.
    """
    if policy is None or outcome.ok or outcome.cancelled or outcome.data is None:
        return outcome, None
    error = codec.decode_error(outcome.data)
    first = prev.run_started_at if prev.run_started_at is not None else now
    try:
        return outcome, policy.next_delay(prev.run_attempts, error, first, now, prev.idle_for)
    except RetryPolicyFailed as bug:
        return _policy_failure(bug, prev, outcome, outcome.data), None


def _policy_failure(
    bug: RetryPolicyFailed, prev: JobRecord, outcome: Outcome, blob: bytes
) -> Outcome:
    """The outcome of an attempt whose retry policy raised `bug`: its traceback is the
    policy's, then the attempt's own."""
    error = RetryPolicyFailed(
        f"{bug} while deciding whether to retry attempt {prev.attempts}, which failed with "
        f"{outcome.error_type}: {outcome.error_message}; the job is failed, not retried: fix "
        "the policy, then run the job again (job.retry())"
    )
    error.__cause__ = bug.__cause__
    error.add_note("The attempt's own error:\n" + codec.error_traceback(blob).rstrip())
    o = failure(error)
    return Outcome(
        False, o.data, None, o.error_type, o.error_message, False, outcome.progress, outcome.log
    )


def never_ran(rec: JobRecord, error: BaseException, now: float) -> tuple[JobRecord, list[Blob]]:
    """A pending job moved to failed with `error` (and its blob), without an attempt."""
    outcome = failure(error)
    failed = transition(
        rec, states.FAILED, now, error=ErrorInfo(outcome.error_type, outcome.error_message)
    )
    return failed, [(f"e:{rec.id}", outcome.data, None)]


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


def attempt_blob(rec: JobRecord, outcome: Outcome, now: float) -> Blob:
    """One entry of the attempt history: number, start, end, outcome, error and traceback."""
    entry: dict[str, Any] = {
        "number": rec.attempts,
        "run": rec.runs,
        "started_at": rec.started_at,
        "finished_at": now,
        "ok": outcome.ok,
        "cancelled": outcome.cancelled,
        "error": None,
    }
    if not outcome.ok and outcome.data is not None:
        entry["error"] = {
            "type": outcome.error_type,
            "message": outcome.error_message,
            "traceback": codec.error_traceback(outcome.data),
        }
    key = f"a:{rec.id}:{rec.attempts:06d}"
    return key, pickle.dumps(entry, codec.PROTOCOL), None
