"""`Job`: a handle on one job in the store (not a future: the result stays on disk)."""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable, Generator
from typing import Any

from nbjobs import codec, render, states, validate
from nbjobs.api.access import JobAccess, StoreHandle
from nbjobs.calls.refs import JobRef
from nbjobs.errors import (
    InvalidArgument,
    InvalidArgumentType,
    JobCancelled,
    JobFailed,
    JobInterrupted,
    JobNotFound,
    WaitTimeout,
)
from nbjobs.records import JobRecord, Progress


class Job:
    """A job in a store. Attributes are read from the store each time you look.

    >>> job = nbjobs.submit(sum, [1, 2, 3], key="six")   # doctest: +SKIP
    >>> job.result(timeout=10)                             # doctest: +SKIP
    6
    """

    __slots__ = ("_access", "_snap")

    def __init__(self, access: JobAccess, rec: JobRecord) -> None:
        self._access = access  # what it may read and do in its store
        self._snap = rec

    def __job_ref__(self) -> JobRef:
        """As an argument of another job, this job is a dependency (see `nbjobs.submit`)."""
        return JobRef(self._snap.id)

    def __reduce__(self) -> tuple[type[JobRef], tuple[str]]:
        # Pickled (in another job's stored call) as a reference, not with its store.
        return JobRef, (self._snap.id,)

    # ---- identity (fixed for the life of the job)
    @property
    def id(self) -> str:
        return self._snap.id

    @property
    def key(self) -> str | None:
        return self._snap.key

    @property
    def name(self) -> str:
        return self._snap.name

    @property
    def tags(self) -> tuple[str, ...]:
        return self._snap.tags

    @property
    def created_at(self) -> float:
        return self._snap.created_at

    @property
    def store(self) -> StoreHandle:
        """The `nbjobs.Store` the job is in."""
        return self._access.store

    # ---- state (re-read from the store)
    def record(self) -> JobRecord:
        """The job's current record; raises `JobNotFound` if it was forgotten."""
        rec = self._access.current(self.id)
        if rec is None:
            raise JobNotFound(f"job {self.id} ({self.name}) is no longer in the store")
        self._snap = rec
        return rec

    @property
    def status(self) -> str:
        return self.record().status

    @property
    def attempts(self) -> int:
        return self.record().attempts

    @property
    def started_at(self) -> float | None:
        return self.record().started_at

    @property
    def finished_at(self) -> float | None:
        return self.record().finished_at

    @property
    def executor(self) -> str:
        return self.record().executor

    @property
    def resumable(self) -> bool:
        return self.record().resumable

    @property
    def progress(self) -> Progress | None:
        """The latest progress the job reported (current, total, fraction, message, rate, eta)."""
        return self.record().progress_info()

    @property
    def error(self) -> dict[str, str] | None:
        """`{'type': ..., 'message': ...}` of a failed job, else None."""
        err = self.record().error
        return err.to_dict() if err else None

    def done(self) -> bool:
        """True once the job succeeded, failed, was cancelled or was interrupted, and its
        outcome is on disk (so `result(timeout=0)` answers at once)."""
        return self._access.done(self.id)

    def wait(self, timeout: float | None = None) -> Job:
        """Block until the job is finished; raises `WaitTimeout` after `timeout` seconds.

        >>> job.wait(timeout=30).status       # doctest: +SKIP
        'succeeded'
        """
        self._wait(validate.timeout(timeout))
        return self

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the job and return its result, loaded from disk (not kept in the handle).

        Raises the job's own exception when it failed (its traceback inside the job is
        attached as a note), `JobFailed` when that exception cannot be re-created here,
        `JobCancelled`, `JobInterrupted`, or `WaitTimeout`. Interrupting the kernel stops
        the wait with a `KeyboardInterrupt` that says so; the job keeps running.
        """
        rec = self._wait(validate.timeout(timeout))
        if rec.status == states.SUCCEEDED:
            return self._access.result(self.id)
        raise self._error(rec)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Wait for the job; return the exception it failed with, or None if it succeeded."""
        rec = self._wait(validate.timeout(timeout))
        return None if rec.status == states.SUCCEEDED else self._error(rec)

    def traceback(self) -> str | None:
        """The traceback text of a failed job, as it was inside the job (None if it has
        no error: those of earlier attempts are in `attempt_history()`)."""
        if self.record().error is None:
            return None
        blob = self._access.error_blob(self.id)
        return codec.error_traceback(blob) if blob is not None else None

    def logs(self, follow: bool = False) -> Any:
        """The job's captured stdout, stderr and log records (the last 1 MB).

        `follow=True` returns an iterator of new text as the job writes it, ending when the
        job is finished (like `tail -f`).

        >>> print(job.logs())                      # doctest: +SKIP
        >>> for chunk in job.logs(follow=True):    # doctest: +SKIP
        ...     print(chunk, end="")
        """
        if follow:
            return self._follow()
        state = self._access.log_state(self.id)
        if state is None:
            return ""
        text: str = state["text"]
        if state.get("truncated"):
            text = "[... earlier output truncated ...]\n" + text
        return text

    def _follow(self) -> Generator[str, None, None]:
        seen = 0
        delay = 0.05
        while True:
            finished = self.done()
            state = self._access.log_state(self.id)
            if state is not None and state["total"] > seen:
                new = state["total"] - seen
                text: str = state["text"]
                yield text[-new:] if new <= len(text) else text
                seen = state["total"]
                delay = 0.05
            if finished:
                return
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def retry(self) -> Job:
        """Run this failed, cancelled or interrupted job again (a fresh set of attempts)."""
        return Job(self._access, self._access.retry(self.id))

    def rerun_here(self) -> Any:
        """Call the job's function with its stored arguments again, here and now, and
        return its value or raise its exception: for `%debug` in a notebook.

        The call runs in this thread, outside the store: no new job, no state change, no
        retries or time limit; `nbjobs.current_job()` is None inside it. The job must be
        finished and its call stored (a job that was not resumable cannot be re-run).

        >>> job.status                 # doctest: +SKIP
        'failed'
        >>> job.rerun_here()           # doctest: +SKIP
        ZeroDivisionError: division by zero
        >>> %debug                     # doctest: +SKIP
        """
        rec = self.record()
        if rec.status not in states.FINISHED:
            raise InvalidArgument(
                f"job {self.id} ({self.name}) is {rec.status}; rerun_here() re-runs finished "
                "jobs only (wait for it, or cancel it first)"
            )
        return self._access.rerun_here(rec)

    def attempt_history(self) -> list[dict[str, Any]]:
        """Every attempt so far: number, run, started_at, finished_at, ok, error (type,
        message, traceback), oldest first."""
        return self.record().attempt_history(self._access.attempts(self.id))

    def add_done_callback(self, fn: Callable[[Job], object]) -> None:
        """Call `fn(job)` once the job is finished (at once, here, if it already is).

        Callbacks run one after the other in the store's callback thread, so `fn` may call
        any nbjobs function (`nbjobs.stats()`, `submit()`, ...); a slow one delays the ones
        after it. An exception it raises is logged (logger "nbjobs").

        >>> job.add_done_callback(lambda j: print(j.name, j.status))   # doctest: +SKIP
        """
        if not callable(fn):
            raise InvalidArgumentType(f"fn must be callable, not {type(fn).__name__}")
        self._access.add_done_callback(self.id, functools.partial(_call_quietly, fn, self))

    def _when_done(self, hook: Callable[[], None]) -> None:
        """nbjobs' own done hook: `hook()` runs at once if the job is finished, else in the
        thread that sees it end (the writer's, the watcher's), so it must be quick and must
        not wait for the store. `_forget_done(hook)` drops it if it has not run."""
        self._access.on_done(self.id, hook)

    def _forget_done(self, hook: Callable[[], None]) -> None:
        self._access.forget_done(self.id, hook)

    def __await__(self) -> Generator[Any, None, Any]:
        """`await job` in a notebook cell: waits without blocking the kernel's event loop."""
        import asyncio  # here: importing it costs every worker ~30 ms at start

        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not finished.done():
                finished.set_result(None)

        def ended() -> None:
            loop.call_soon_threadsafe(wake)

        self._when_done(ended)
        try:
            yield from finished.__await__()
        finally:  # a cancelled await leaves no hook behind
            self._forget_done(ended)
        return self.result()

    def cancel(self) -> bool:
        """Cancel the job: True if this call cancelled it, False if it had already
        finished (cancelled included).

        A pending or retrying job is `cancelled` at once. A job this process runs is
        stopped at once: a process job's process is killed, a Dask job's task cancelled;
        a thread job's thread cannot be stopped: it runs on until its next
        `nbjobs.progress()`/`track()` call or its end (a warning says so), its result is
        dropped and its slot goes to the next job. A running job of another kernel or of
        a detached worker is marked `cancelled` in the store at once; that kernel stops it
        within a fraction of a second, the worker at its next heartbeat (its process is
        killed).

        >>> job.cancel()       # doctest: +SKIP
        True
        """
        return self._access.cancel(self.id)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the record (no result payload), for status polling."""
        return self.record().to_dict()

    # ---- internals
    def _wait(self, timeout: float | None) -> JobRecord:
        try:
            rec = self._access.wait(self.id, timeout)
        except KeyboardInterrupt:
            # The stop button interrupts the wait, never the job: say so, without the
            # frames of the wait's internals.
            raise KeyboardInterrupt(
                f"stopped waiting for job {self.id} ({self.name}); the job keeps running "
                "(job.cancel() stops it)"
            ) from None
        if rec is None:
            now = self.record()
            hint = "it keeps running: call result() again later"
            idle = now.status == states.PENDING and now.executor == "worker"
            if idle and not self._access.has_workers():
                hint = (
                    "no detached worker serves this store to run it: start one with "
                    "nbjobs.start_worker() (or `nbjobs worker` in a terminal)"
                )
            raise WaitTimeout(
                f"job {self.id} ({self.name}) is still {now.status} after {timeout} s; {hint}"
            )
        self._snap = rec
        return rec

    def _error(self, rec: JobRecord) -> BaseException:
        if rec.status == states.CANCELLED:
            return JobCancelled(f"job {self.id} ({self.name}) was cancelled")
        if rec.status == states.INTERRUPTED:
            return JobInterrupted(
                f"job {self.id} ({self.name}) was interrupted: the process running it ended. "
                "nbjobs.resume() or submitting its key again runs it again"
            )
        blob = self._access.error_blob(self.id)
        if blob is None:
            err = rec.error
            return JobFailed(err.type if err else "Error", err.message if err else "unknown")
        return codec.decode_error(blob)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Job) and other.id == self.id and other._access is self._access

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        try:
            rec = self.record()
        except JobNotFound:
            return f"<Job {self.name} id={self.id} (forgotten)>"
        key = f" key={rec.key!r}" if rec.key else ""
        extra = f" error={rec.error.type}" if rec.error else ""
        return (
            f"<Job {rec.name}{key} {rec.status} attempts={rec.attempts}"
            f"{_duration(rec, self._access.now())}{extra} id={rec.id}>"
        )

    def _repr_html_(self) -> str:
        """A static card (nbconvert, plain HTML): status, progress, attempts, elapsed, error."""
        try:
            return render.job_card(self.record(), self._access.now())
        except JobNotFound:
            import html  # here: a forgotten job's card is rare, `import nbjobs` frequent

            return f"<code>{html.escape(repr(self))}</code>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
        """In a Jupyter kernel, a live widget (see `nbjobs.widgets`); elsewhere None, so the
        text and HTML reprs are used. ipywidgets is imported only here, on first display."""
        if "ipykernel" not in sys.modules:
            return None
        from nbjobs.widgets.job_view import job_bundle

        return job_bundle(self, include, exclude)


def _call_quietly(fn: Callable[[Job], object], job: Job) -> None:
    try:
        fn(job)
    except Exception:
        logging.getLogger("nbjobs").exception("nbjobs: a done callback of job %s failed", job.id)


def _duration(rec: JobRecord, now: float) -> str:
    if rec.started_at is None:
        return ""
    end = rec.finished_at if rec.finished_at is not None else now
    return f" {end - rec.started_at:.2f}s"
