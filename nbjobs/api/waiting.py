"""Waiting on many jobs at once: `wait` and `as_completed` (over each job's done hook)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import NamedTuple

from nbjobs import states, validate
from nbjobs.api import progress_bars
from nbjobs.api.job import Job
from nbjobs.clock import SYSTEM
from nbjobs.errors import InvalidArgument, InvalidArgumentType, WaitTimeout


class DoneAndNotDone(NamedTuple):
    done: set[Job]
    not_done: set[Job]


def _failed(job: Job) -> bool:
    return job.status in (states.FAILED, states.INTERRUPTED)


def wait(
    jobs: Iterable[Job],
    timeout: float | None = None,
    return_when: str = ALL_COMPLETED,
    *,
    progress: bool = False,
) -> DoneAndNotDone:
    """Wait for jobs like `concurrent.futures.wait`; returns `(done, not_done)` sets.

    `return_when` is `FIRST_COMPLETED`, `FIRST_EXCEPTION` or `ALL_COMPLETED` (the
    constants of `concurrent.futures`, also available as `nbjobs.FIRST_COMPLETED`, ...).
    `progress=True` shows one live bar per group of the jobs meanwhile (see
    `nbjobs.watch`): in the cell in a notebook, on stderr elsewhere.

    >>> done, pending = nbjobs.wait([a, b], timeout=60)   # doctest: +SKIP
    >>> nbjobs.wait(jobs, progress=True)                   # doctest: +SKIP
    """
    limit = validate.timeout(timeout)
    if return_when not in (ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION):
        raise InvalidArgument(
            "return_when must be nbjobs.ALL_COMPLETED, FIRST_COMPLETED or FIRST_EXCEPTION, "
            f"not {return_when!r}"
        )
    pending = _job_set(jobs)
    bars = progress_bars.progress_while(pending) if validate.flag(progress, "progress") else None
    done: set[Job] = set()
    cond = threading.Condition()
    finished: list[Job] = []

    def enough() -> bool:
        if not pending:
            return True
        if return_when == FIRST_COMPLETED:
            return bool(done)
        return return_when == FIRST_EXCEPTION and any(_failed(j) for j in done)

    hooks = _notify_when_done(pending, cond, finished)
    deadline = None if limit is None else SYSTEM.monotonic() + limit
    try:
        with cond:
            while True:
                for job in finished:
                    pending.discard(job)
                    done.add(job)
                finished.clear()
                if enough():
                    break
                left = None if deadline is None else deadline - SYSTEM.monotonic()
                if left is not None and left <= 0:
                    break
                cond.wait(0.25 if left is None else min(left, 0.25))
    except KeyboardInterrupt:
        raise _stopped(pending) from None
    finally:
        _forget(hooks)
        if bars is not None:
            bars()
    return DoneAndNotDone(done, pending)


def _stopped(jobs: set[Job]) -> KeyboardInterrupt:
    """What Ctrl-C (the kernel's stop button) during a wait stopped: the wait, not the jobs."""
    return KeyboardInterrupt(
        f"stopped waiting for {len(jobs)} unfinished job(s); they keep running "
        "(job.cancel() stops one)"
    )


def as_completed(jobs: Iterable[Job], timeout: float | None = None) -> Iterator[Job]:
    """Yield jobs as they finish, like `concurrent.futures.as_completed`.

    Raises `nbjobs.WaitTimeout` (a `TimeoutError`) if some are still unfinished after
    `timeout` seconds from the call.

    >>> for job in nbjobs.as_completed(jobs, timeout=600):   # doctest: +SKIP
    ...     print(job.name, job.status)
    """
    limit = validate.timeout(timeout)
    todo = _job_set(jobs)
    return _completed(todo, limit, timeout)


def _completed(todo: set[Job], limit: float | None, timeout: object) -> Iterator[Job]:
    deadline = None if limit is None else SYSTEM.monotonic() + limit
    cond = threading.Condition()
    finished: list[Job] = []
    hooks = _notify_when_done(todo, cond, finished)
    try:
        while todo:
            with cond:
                while not finished:
                    left = None if deadline is None else deadline - SYSTEM.monotonic()
                    if left is not None and left <= 0:
                        raise WaitTimeout(f"{len(todo)} (of the jobs) unfinished after {timeout} s")
                    try:
                        cond.wait(0.25 if left is None else min(left, 0.25))
                    except KeyboardInterrupt:
                        raise _stopped(todo) from None
                ready, finished[:] = list(finished), []
            for job in ready:
                if job in todo:
                    todo.discard(job)
                    yield job
    finally:  # also when the caller stops iterating early
        _forget(hooks)


def _job_set(jobs: object) -> set[Job]:
    """The jobs to wait for, checked at the call: an iterable of `Job` handles."""
    if isinstance(jobs, Job | str) or not isinstance(jobs, Iterable):
        hint = "; to wait for one job: job.wait()" if isinstance(jobs, Job) else ""
        raise InvalidArgumentType(
            f"jobs must be an iterable of nbjobs.Job (a list, a set, ...), "
            f"not {type(jobs).__name__}{hint}"
        )
    out = set(jobs)
    for job in out:
        if not isinstance(job, Job):
            raise InvalidArgumentType(
                f"jobs must hold nbjobs.Job handles, not {type(job).__name__} {job!r:.60} "
                "(nbjobs.get(id_or_key) gives the job of an id or key)"
            )
    return out


def _notify_when_done(
    jobs: set[Job], cond: threading.Condition, finished: list[Job]
) -> list[tuple[Job, Callable[[], None]]]:
    """Have each job, once finished, join `finished` and wake `cond`; returns the hooks,
    which the waiter removes when it stops waiting (done or not)."""
    hooks: list[tuple[Job, Callable[[], None]]] = [
        (job, functools.partial(_notify, cond, finished, job)) for job in jobs
    ]
    for job, hook in hooks:
        job._when_done(hook)
    return hooks


def _forget(hooks: list[tuple[Job, Callable[[], None]]]) -> None:
    for job, hook in hooks:
        job._forget_done(hook)


def _notify(cond: threading.Condition, finished: list[Job], job: Job) -> None:
    with cond:
        finished.append(job)
        cond.notify_all()
