"""`JobAccess`: the narrow part of a store that a `Job` handle reads and acts through."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from nbjobs import codec, states
from nbjobs.errors import InvalidArgument, JobNotFound, PayloadLoadError
from nbjobs.records import JobRecord
from nbjobs.running.calling import invoke
from nbjobs.running.local import LocalJobs
from nbjobs.store.storage import Storage
from nbjobs.worker.control import list_workers


class StoreHandle(Protocol):
    """A store as its jobs show it (`job.store`); `nbjobs.Store` is one."""

    storage: Storage

    @property
    def path(self) -> Path: ...

    def flush(self) -> None: ...


class Rerunner(Protocol):
    """What re-runs a stored job (the store's `Submitter`)."""

    def rerun(self, rec: JobRecord, fresh: bool) -> JobRecord | None: ...

    def stored_call(self, rec: JobRecord) -> tuple[bytes, bytes] | str: ...


class JobAccess:
    """What a `Job` may read and do in its store, handed to it by the `Store` (one per store).

    The store's own parts (its local jobs, its submitter) stay behind these few methods, so a
    handle never reaches into the `Store`. The hot reads are the local jobs' bound methods.

    >>> access = store._access                     # doctest: +SKIP
    >>> access.current(job.id).status              # doctest: +SKIP
    'running'
    """

    __slots__ = (
        "_jobs",
        "_rerunner",
        "cancel",
        "current",
        "done",
        "forget_done",
        "log_state",
        "on_done",
        "storage",
        "store",
        "wait",
    )

    def __init__(self, store: StoreHandle, jobs: LocalJobs, rerunner: Rerunner) -> None:
        self.store = store
        self.storage = jobs.storage
        self._jobs = jobs
        self._rerunner = rerunner
        # The record now: this process's own jobs from memory, else from disk (None: gone).
        self.current: Callable[[str], JobRecord | None] = jobs.current
        self.done: Callable[[str], bool] = jobs.done
        self.wait: Callable[[str, float | None], JobRecord | None] = jobs.wait
        self.cancel: Callable[[str], bool] = jobs.cancel
        self.log_state: Callable[[str], dict[str, Any] | None] = jobs.log_state
        # nbjobs' own done hooks (quick, never waiting for the store): see `Job._when_done`.
        self.on_done: Callable[[str, Callable[[], None]], None] = jobs.on_done
        self.forget_done: Callable[[str, Callable[[], None]], None] = jobs.remove_done

    def lookup(self, id_or_key: str) -> JobRecord:
        """The record of the job with this id or key; raises `JobNotFound`."""
        local = self._jobs.active.get(id_or_key)
        if local is not None:
            return local.rec
        try:
            return self.storage.record(id_or_key)
        except JobNotFound:
            self.storage.writer.flush()  # a worker job submitted just now may still be queued
            return self.storage.record(id_or_key)

    def add_done_callback(self, job_id: str, call: Callable[[], None]) -> None:
        """Run `call()` in the store's callback thread once the job is finished (at once,
        here, if it already is)."""
        jobs = self._jobs
        if not jobs.add_done(job_id, functools.partial(jobs.callbacks.run, call)):
            call()

    def result(self, job_id: str) -> Any:
        """The stored value of a succeeded job."""
        return self.storage.load_value(f"r:{job_id}")

    def error_blob(self, job_id: str) -> bytes | None:
        """The stored exception of a failed job (None: not stored)."""
        return self.storage.blob(f"e:{job_id}")

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's ended attempts, oldest first."""
        return self.storage.attempts(job_id)

    def now(self) -> float:
        return self.storage.clock.now()

    def has_workers(self) -> bool:
        """True while a detached worker serves the store."""
        return any(w.alive for w in list_workers(self.storage))

    def retry(self, id_or_key: str) -> JobRecord:
        """Run a failed, cancelled or interrupted job again (`Store.retry`): its new record."""
        rec = self.current(self.lookup(id_or_key).id)
        if rec is None:
            raise JobNotFound(f"job {id_or_key!r} is no longer in the store")
        if rec.status not in states.RERUN_ON_RESUBMIT:
            raise InvalidArgument(
                f"job {id_or_key!r} is {rec.status}; only failed, cancelled or interrupted jobs "
                "can be retried (resubmit with force=True to run a succeeded job again)"
            )
        new = self._rerunner.rerun(rec, fresh=True)
        if new is None:
            raise InvalidArgument(
                f"job {id_or_key!r} cannot be run again: "
                f"{rec.not_resumable_reason or 'its payload is missing or changed meanwhile'}"
            )
        return new

    def rerun_here(self, rec: JobRecord) -> Any:
        """Call a finished job's stored function with its stored arguments, in this thread."""
        stored = self._rerunner.stored_call(rec)
        if isinstance(stored, str):
            raise PayloadLoadError(f"job {rec.id} ({rec.name}) cannot be re-run: {stored}")
        fn, args, kwargs = codec.load_payload(stored[1], stored[0], self.storage.values)
        return invoke(fn, args, kwargs)
