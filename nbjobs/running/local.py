"""The jobs this process runs itself (thread and process executors), from submit to done.

`LocalJobs` holds them while they are active: it starts each one once the jobs it depends on
are finished, looks for cancels asked by other processes, answers `Job` reads from memory,
waits, runs done callbacks, and marks jobs `interrupted` when this process (or a dead one)
leaves them behind. The `Store` facade validates and writes; this is what happens after.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from nbjobs import codec, states
from nbjobs.calls import refs
from nbjobs.errors import DependencyFailed, JobNotFound, StoreFull
from nbjobs.records import JobRecord, transition
from nbjobs.running.local_job import Backend, LocalJob
from nbjobs.running.runner import Runner
from nbjobs.running.watching import CallbackThread, Watcher
from nbjobs.store.owners import orphaned, owner_alive
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Call, Cas, Sql
from nbjobs.validate import warn

log = logging.getLogger("nbjobs")

WAITING = (states.PENDING, states.RETRYING)  # not running now: cancelled at once
CANCEL_POLL = 0.1  # seconds between looks for cancels asked by other processes


class LocalJobs:
    """This process's active jobs of one store, and the hooks its runner calls."""

    def __init__(self, storage: Storage, owner: str) -> None:
        self.storage = storage
        self.owner = owner
        self.active: dict[str, LocalJob] = {}
        self.runner = Runner(storage, owner, self.finished, self.restart, self.expire)
        self.backends: dict[str, Backend] = {}  # shared with the Submitter, which fills it
        self.closed = False
        self._watcher = Watcher(storage)
        self.callbacks = CallbackThread(storage.release_thread)  # where users' done callbacks run
        self._cancel_poll = threading.Lock()  # held while a poll for cancels is scheduled

    # ------------------------------------------------------------------ starting
    def backend_of(self, local: LocalJob) -> Backend:
        """The executor running `local`: the one it was submitted to (a Dask client's, say),
        else the store's by its record's name."""
        return local.backend or self.backends[local.rec.executor]

    def keep(self, local: LocalJob) -> None:
        """Track a job this process runs, and watch for cancels of it by other processes."""
        self.active[local.rec.id] = local
        if not self._cancel_poll.locked():
            self._watch_cancels()

    def start(self, local: LocalJob) -> None:
        """Start `local` now, or once every job it depends on is finished.

        (A detached worker checks the dependencies of the jobs it claims itself, so that a
        job queued for it waits for them even when this kernel is gone.)
        """
        backend = self.backend_of(local)
        if not local.rec.deps or not backend.kernel_owned:
            backend.start(local)
            for dep_id in local.rec.deps:  # a worker's job waits for jobs of this kernel:
                if dep_id in self.active:  # the workers are rung when each one ends
                    self.on_done(dep_id, functools.partial(backend.start, local))
            return
        waiting = set(local.rec.deps)
        lock = threading.Lock()

        def finished(dep_id: str) -> None:
            with lock:
                waiting.discard(dep_id)
                if waiting:
                    return
            problem = refs.dependency_problem(local.rec, self.current)
            if problem is None:
                backend.start(local)
            elif problem == refs.WAITING:  # one was run again meanwhile (retry, resume)
                self.start(local)
            else:
                self.runner.fail_waiting(local, DependencyFailed(problem))

        for dep_id in local.rec.deps:
            self.on_done(dep_id, functools.partial(finished, dep_id))

    def restart(self, local: LocalJob) -> None:
        """The runner's hook: hand a job back to its executor for its next attempt."""
        self.backend_of(local).start(local)

    def expire(self, local: LocalJob, attempt: int) -> None:
        """The runner's hook: end attempt `attempt` of a job past its time limit."""
        if attempt == local.attempt and local.still_running:
            self.backend_of(local).expire(local, attempt)

    # ------------------------------------------------------------------ cancels
    def _watch_cancels(self) -> None:
        """Schedule the next look for cancels, unless one is scheduled already."""
        if self._cancel_poll.acquire(blocking=False):
            self.runner.alarms.at(self.storage.clock.now() + CANCEL_POLL, self._poll_cancels)

    def _poll_cancels(self) -> None:
        """Act on cancels other processes (another kernel, the terminal) asked for our jobs;
        polls every `CANCEL_POLL` seconds while this process has jobs of its own."""
        try:
            asked = [] if self.closed else self.storage.cancel_requests(self.owner)
            for job_id in asked:
                self._cancelled_elsewhere(job_id)
            if asked:
                self.storage.writer.put(
                    Call(lambda sql: self.storage.drop_cancel_requests(sql, self.owner, asked))
                )
        finally:
            self._cancel_poll.release()
            if self.active and not self.closed:  # (checked after the release: a job kept
                self._watch_cancels()  # meanwhile found the poll still scheduled)

    def _cancelled_elsewhere(self, job_id: str) -> None:
        local = self.active.get(job_id)
        stored = None if local is None else self.storage.record_by_id(job_id)
        if local is None or stored is None or stored.status != states.CANCELLED:
            return
        with local.lock:
            status = local.rec.status
            if status in WAITING:  # never starts: it takes the stored (cancelled) record
                local.cancel_requested = True
                local.rec = stored
            elif local.still_running:
                self.backend_of(local).cancel_running(local)
        if status in WAITING:
            self.finished(local, None)

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: at once if it is waiting, at its executor's next chance if running."""
        local = self.active.get(job_id)
        if local is not None:
            stopped = ended = False
            with local.lock:
                status = local.rec.status
                if status in WAITING:
                    local.cancel_requested = True
                elif status == states.RUNNING:  # (not stopped if it has just returned)
                    stopped = local.still_running and self.backend_of(local).cancel_running(local)
                    ended = local.rec.status == states.CANCELLED
            if status == states.RUNNING:
                if stopped and ended:
                    self._ended_while_running(local)
                return stopped
            if status not in WAITING:
                return False
        storage = self.storage
        now = storage.clock.now()
        # A job of another kernel is marked cancelled here, and asked to stop: that kernel
        # looks for such requests every CANCEL_POLL s; a worker's job, at its heartbeat.
        cancellable = WAITING if local is not None else (*WAITING, states.RUNNING)

        def cancel(sql: Sql) -> JobRecord | None:
            rec = storage.read_in(sql, job_id)
            if rec is None or rec.status not in cancellable:
                return None
            new = transition(rec, states.CANCELLED, now, owner=None)
            if not storage.update(sql, new, rec.status):
                return None
            if rec.owner and rec.owner != self.owner and rec.executor != "worker":
                storage.request_cancel(sql, rec.owner, rec.id)  # its kernel stops it
            return new

        done: JobRecord | None = storage.writer.call(cancel)
        if local is not None:
            if done is not None:
                local.rec = done
                self.finished(local, None)
            else:
                local.cancel_requested = False
        return done is not None

    def _ended_while_running(self, local: LocalJob) -> None:
        """A running job its executor ended at once, while its code runs on (a thread):
        the store says so before `cancel()` returns, and a warning says what runs on."""
        self.storage.writer.flush()
        rec = local.rec
        warn(
            f"job {rec.id} ({rec.name}) is cancelled, but Python cannot stop the thread "
            "running it: its code runs on until its next nbjobs.progress()/track() call "
            "(which stops it) or its end, and whatever it returns is dropped. Its slot is "
            "already given to the next job. To stop such work at once, run it with "
            'executor="process"'
        )

    # ------------------------------------------------------------------ reads and waits
    def current(self, job_id: str) -> JobRecord | None:
        """The job's record: from memory while this process runs it, else from disk."""
        local = self.active.get(job_id)
        if local is not None:
            return local.rec
        return self.stored(job_id)

    def stored(self, job_id: str) -> JobRecord | None:
        """The job's record on disk. Jobs this process does not run (a worker's) are not held
        here, so one submitted a moment ago may still be queued: a miss waits for the writer.

        Not in the writer thread, which would wait for itself: the hooks it runs (a job's
        end seen by the jobs that depend on it) follow the commit of what they look up, so
        a miss there is a job that is gone (forgotten, purged).
        """
        rec = self.storage.record_by_id(job_id)
        if rec is None and not self.storage.writer.in_thread():
            self.storage.writer.flush()
            rec = self.storage.record_by_id(job_id)
        return rec

    def done(self, job_id: str) -> bool:
        local = self.active.get(job_id)
        if local is not None:
            return local.done.is_set()
        rec = self.stored(job_id)
        if rec is None:
            raise JobNotFound(f"job {job_id} is no longer in the store")
        return rec.status in states.FINISHED

    def wait(self, job_id: str, timeout: float | None) -> JobRecord | None:
        """The job's finished record, or None after `timeout` seconds."""
        clock = self.storage.clock
        deadline = None if timeout is None else clock.monotonic() + timeout
        local = self.active.get(job_id)
        if local is not None:
            while not local.done.wait(_slice(deadline, clock.monotonic(), 0.2)):
                self._check_end_written(local)
                if deadline is not None and clock.monotonic() >= deadline:
                    return None
            return local.rec
        # Run elsewhere (a worker, another kernel): a few quick looks for a job about to
        # end, then the watcher says when it ends (workers ring it); reading the record
        # every `_LOOK_MAX_S` stays as the fallback.
        ended = threading.Event()
        watching = False
        delay = 0.002
        try:
            while True:
                rec = self.current(job_id)
                if rec is None:
                    raise JobNotFound(f"job {job_id} is no longer in the store")
                if rec.status in states.FINISHED and job_id not in self.active:
                    return rec
                if deadline is not None and clock.monotonic() >= deadline:
                    return None
                if delay >= _WATCH_AFTER_S and not watching:
                    self._watcher.add(job_id, ended.set)
                    watching = True
                if ended.wait(_slice(deadline, clock.monotonic(), delay)):
                    ended.clear()  # the watcher's callback is spent: ask again if need be
                    watching = False
                delay = min(delay * 1.5, _LOOK_MAX_S)
        finally:
            if watching:  # a wait that timed out (or read the end itself) leaves no callback
                self._watcher.remove(job_id, ended.set)

    def _check_end_written(self, local: LocalJob) -> None:
        """Raise `StoreFull` if `local` has ended here but the disk has no room to record
        that (the writer holds it): a wait for it would last until space is freed."""
        full = self.storage.writer.full
        rec = local.rec
        if full is not None and rec.status in states.FINISHED:
            raise StoreFull(
                f"job {rec.id} ({rec.name}) ended ({rec.status}), but that cannot be stored "
                f"yet: {full}"
            )

    def log_state(self, job_id: str) -> dict[str, Any] | None:
        """The job's captured output so far: live while it runs here, else as stored."""
        local = self.active.get(job_id)
        if local is not None and local.log_state is not None:
            return local.log_state
        blob = self.storage.blob(f"l:{job_id}")
        return None if blob is None else codec.load_plain(blob)

    # ------------------------------------------------------------------ finishing
    def finished(self, local: LocalJob, error: BaseException | None) -> None:
        """The runner's hook: the job is done; forget it and run its done callbacks."""
        if error is not None:
            stored = self.storage.record_by_id(local.rec.id)
            if stored is not None:
                local.rec = stored
        with local.lock:
            self.active.pop(local.rec.id, None)
            local.done.set()
            hooks, local.on_done = local.on_done, []
        for hook in hooks:
            try:
                hook()
            except Exception:
                log.exception("nbjobs: a done callback of job %s failed", local.rec.id)

    def on_started(self, job_id: str, hook: Callable[[], object]) -> None:
        """Call `hook()` once a job run elsewhere (a detached worker's) has started: at once
        if it has, else when the watcher sees it leave `pending` in the store. (This
        process's own jobs call their `LocalJob.on_start` hooks as they start.)"""
        rec = self.stored(job_id)
        if rec is None:
            return
        if rec.status != states.PENDING:
            hook()
        else:
            self._watcher.add_start(job_id, hook)

    def on_done(self, job_id: str, callback: Callable[[], None]) -> None:
        """Call `callback()` once the job is finished (at once if it already is).

        It runs in the writer thread (this process's jobs, after their outcome is committed)
        or the watcher's (other processes' jobs): it must be quick and must not wait for the
        store (users' callbacks go through `callbacks`)."""
        if not self.add_done(job_id, callback):
            callback()

    def add_done(self, job_id: str, callback: Callable[[], None]) -> bool:
        """As `on_done`, but False (and `callback` not called) if the job is finished."""
        local = self.active.get(job_id)
        if local is not None:
            with local.lock:
                if not local.done.is_set():
                    local.on_done.append(callback)
                    return True
        rec = self.stored(job_id)
        if rec is None or rec.status in states.FINISHED:
            return False
        self._watcher.add(job_id, callback)
        return True

    def remove_done(self, job_id: str, callback: Callable[[], None]) -> None:
        """Drop `callback` (added with `on_done`) if it was not called yet: a wait that gave
        up must not leave it behind, one per wait."""
        local = self.active.get(job_id)
        if local is not None:
            with local.lock:
                if callback in local.on_done:
                    local.on_done.remove(callback)
                    return
        self._watcher.remove(job_id, callback)

    # ------------------------------------------------------------------ interruption
    def reap_dead_owners(self) -> None:
        """Jobs left active by a kernel that died become `interrupted` (never re-run silently)."""
        now = self.storage.clock.now()
        dead = orphaned(self.storage.active_records(), self.owner)
        for rec in dead:
            self._interrupt(rec, now)
        # Cancels asked of a process that died before it saw them are moot.
        for owner in self.storage.cancel_owners():
            if owner != self.owner and not owner_alive(owner):
                self.storage.writer.put(
                    Call(functools.partial(self.storage.drop_cancel_owner, owner=owner))
                )
        if dead:
            self.storage.writer.flush()

    def interrupt_all(self) -> None:
        """This process is ending: its active jobs become `interrupted`."""
        now = self.storage.clock.now()
        for local in list(self.active.values()):
            with local.lock:
                local.cancel_requested = True
                rec = local.rec
                if local.returning:
                    continue  # the writer records its success (flushed below)
            self._interrupt(rec, now)
        with contextlib.suppress(Exception):
            self.storage.writer.flush()

    def close(self) -> None:
        """This process is done with the store: its active jobs become `interrupted`, and
        the alarms (retries, time limits, cancel polls) and the watcher stop."""
        self.closed = True
        self.interrupt_all()
        self.runner.alarms.close()
        self._watcher.close()

    def _interrupt(self, rec: JobRecord, now: float) -> None:
        if rec.status not in states.ACTIVE:
            return
        self.storage.writer.put(
            Cas(transition(rec, states.INTERRUPTED, now, owner=None), rec.status)
        )


_WATCH_AFTER_S = 0.01  # a wait for a job run elsewhere leaves it to the watcher after this
_LOOK_MAX_S = 0.25  # and reads the record itself at least this often


def _slice(deadline: float | None, now: float, step: float) -> float:
    return step if deadline is None else max(0.0, min(step, deadline - now))
