"""`Store`: the public job store; opening it, submitting to it, configuring and closing it.

Thin on purpose: it validates input, then calls the layers below (`submitting` to store and
start jobs, `running.local` for this process's running jobs, `store`, the executors). Its
other methods are in its parts: `reads` (get, jobs, ...), `actions` (forget, purge, resume,
retry), `worker_control` (detached workers) and `schedules`.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Unpack, overload

from nbjobs import validate
from nbjobs.api.access import JobAccess
from nbjobs.api.actions import Actions
from nbjobs.api.job import Job
from nbjobs.api.schedules import ScheduleControl
from nbjobs.api.submitting import Submitter
from nbjobs.api.worker_control import WorkerControl
from nbjobs.calls import arguments
from nbjobs.calls.autokey import auto, auto_key
from nbjobs.calls.call import fn_name, map_key, merge_kwargs
from nbjobs.calls.options import PLAIN, RESERVED, JobOptions, Options, entry, resolve, split
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import InvalidArgumentType
from nbjobs.executors import NAMES as EXECUTOR_NAMES
from nbjobs.running.local import LocalJobs
from nbjobs.store.owners import owner_token
from nbjobs.store.storage import Storage


class Store(Actions, WorkerControl, ScheduleControl):
    """A job store: a folder on disk, shared by every kernel, worker and terminal that opens it.

    >>> store = nbjobs.Store("/tmp/my-jobs")          # doctest: +SKIP
    >>> store.submit(pow, 2, 10, key="2**10").result()  # doctest: +SKIP
    1024
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        executor: str | Any = "thread",
        workers: int | None = None,
        clock: Clock = SYSTEM,
    ) -> None:
        validate.folder(path)
        checked = validate.executor(executor, EXECUTOR_NAMES)
        if workers is not None:
            validate.positive_int(workers, "workers", validate.WORKERS_MAX)
        self.storage = Storage(path, clock)
        self.owner = owner_token()
        self._jobs = LocalJobs(self.storage, self.owner)  # this process's own jobs
        self._submitter = Submitter(self._jobs, checked, workers)
        self._access = JobAccess(self, self._jobs, self._submitter)
        STORES.add(self)
        self._jobs.reap_dead_owners()

    @property
    def default_executor(self) -> str | Any:
        """The executor of jobs submitted without `executor=` (see `configure`)."""
        return self._submitter.default_executor

    def __repr__(self) -> str:
        return f"nbjobs.Store({str(self.path)!r})"

    # ------------------------------------------------------------------ submit
    @overload
    def submit(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> Job: ...
    @overload
    def submit(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        **fn_kwargs: Any,
    ) -> Job: ...
    @entry()
    def submit(
        self,
        fn: Callable[..., Any],
        /,
        *args: Any,
        kwargs: dict[str, Any] | None = None,
        **fn_kwargs: Any,
    ) -> Job:
        """Record a call of `fn(*args, **kwargs)` in the store and start it; returns at once.

        Keywords that are not job options (listed below) go to `fn`; arguments whose
        names clash with the options go through `kwargs={...}`.

        >>> job = store.submit(fit, df, alpha=0.1, key="fit-a0.1")   # doctest: +SKIP
        >>> job = store.submit(fetch, url, retries=5, retry_on=ConnectionError)  # doctest: +SKIP
        """
        if not callable(fn):
            raise InvalidArgumentType(f"fn must be callable, not {type(fn).__name__}")
        given = split(fn_kwargs) if fn_kwargs else fn_kwargs
        call_kwargs = merge_kwargs(fn_kwargs, kwargs)
        arguments.check(fn, len(args), call_kwargs, fn_kwargs, RESERVED)
        if not given:  # the usual case: nothing to check
            return Job(self._access, self._submitter.submit(fn, args, call_kwargs, PLAIN))
        key = given.get("key")
        if key is auto:
            key = auto_key(fn, args, call_kwargs)
        elif key is not None:
            key = validate.key(key)
        opts = resolve(given, key, fn_name(fn))
        return Job(self._access, self._submitter.submit(fn, args, call_kwargs, opts))

    @overload
    def map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> list[Job]: ...
    @overload
    def map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        **fn_kwargs: Any,
    ) -> list[Job]: ...
    @entry()
    def map(
        self,
        fn: Callable[..., Any],
        /,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        **fn_kwargs: Any,
    ) -> list[Job]:
        """One job per item, like `Executor.map` but durable; returns the jobs in input order.

        Job i calls `fn(*items_i, **kwargs)`: item i of each iterable, which must all have
        the same length (read in step before anything is stored; a mismatch raises
        `InvalidArgument` naming the lengths, and an endless iterable beside a finite one is
        refused once the finite one ends). The options
        mean what they mean for `submit` and apply to every job. The function and the
        keyword arguments are shared: they are pickled and stored once for the whole map,
        and each job's payload holds only its own item(s), so 1,000 items sharing a 100 MB
        array store it once (bind big positional data with `functools.partial`).

        `key`: None (no keys); `nbjobs.auto` (each job's key derived from the function and
        its arguments); a str prefix P (keys `"P/0"`, `"P/1"`, ... by position, so running
        the same cell again returns the same jobs); or a callable called with the job's
        arguments as the function gets them (its item(s) and the shared keyword arguments)
        that returns the job's key.

        All or nothing: every item is checked (its key computed, its arguments pickled when
        the executor needs it) before the first job is written; a bad one raises, naming
        the item, and nothing is stored.

        >>> jobs = store.map(fit, [0.1, 0.2, 0.5], data=df, key="fit-alpha")  # doctest: +SKIP
        >>> [job.result() for job in jobs]                                     # doctest: +SKIP
        """
        if not callable(fn):
            raise InvalidArgumentType(f"fn must be callable, not {type(fn).__name__}")
        if not iterables:
            raise InvalidArgumentType("map needs an iterable of items after the function")
        given = split(fn_kwargs)
        shared = merge_kwargs(fn_kwargs, kwargs)
        arguments.check(fn, len(iterables), shared, fn_kwargs, RESERVED)
        opts = resolve(given, None, fn_name(fn))
        key = map_key(
            given.get("key")
        )  # before reading the items: a generator is not consumed in vain
        stored = self._submitter.map(fn, iterables, key, shared, opts)
        return [Job(self._access, rec) for rec in stored]

    # ------------------------------------------------------------------ control
    def configure(self, executor: str | Any = None, workers: int | None = None) -> None:
        if executor is not None:
            self._submitter.default_executor = validate.executor(executor, EXECUTOR_NAMES)
        if workers is not None:
            self._submitter.resize(validate.positive_int(workers, "workers", validate.WORKERS_MAX))

    def close(self) -> None:
        """Stop this store's threads and executors and close its files (idempotent).

        Jobs this process still runs are marked interrupted (a process job's process is
        killed; a thread job's thread, which Python cannot stop, finishes its call and its
        outcome is dropped). Submitting to a closed store raises `nbjobs.StoreClosed`.

        >>> with nbjobs.Store("/tmp/my-jobs") as store:     # doctest: +SKIP
        ...     store.submit(pow, 2, 10).result()
        1024
        """
        if self._jobs.closed:
            return
        self._jobs.close()
        self._submitter.shutdown()
        self._jobs.callbacks.stop()  # runs the callbacks already queued, while the store is open
        self.storage.close()
        STORES.discard(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ for nbjobs' own facades
    def _submit_checked(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: Options,
        on_start: Callable[[], bool] | None = None,
    ) -> Job:
        """Store and start a call its caller checked (`nbjobs.Executor`'s); `on_start` is
        called as the job starts running."""
        return Job(self._access, self._submitter.submit(fn, args, kwargs, opts, on_start))

    def _running_here(self) -> bool:
        """True while this process runs jobs of the store."""
        return bool(self._jobs.active)

    def _close_when_done(self) -> None:
        """Close the store once the jobs this process runs in it are done."""
        while active := list(self._jobs.active):
            for job_id in active:
                self._jobs.wait(job_id, None)
        self.close()

    def _interrupt_all(self) -> None:
        """Mark the jobs this process runs in the store interrupted (the process is ending)."""
        self._jobs.interrupt_all()


STORES: weakref.WeakSet[Store] = weakref.WeakSet()
