"""`Store`: a job store and everything done to it (submit, read, cancel, resume, ...).

Thin on purpose: it validates input, then calls the layers below (`submitting` to store and
start jobs, `lifecycle` for this process's running jobs, `store`, the executors).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Unpack, overload

from nbjobs import states, validate
from nbjobs.api.job import Job
from nbjobs.api.submitting import Submitter
from nbjobs.calls import arguments
from nbjobs.calls.autokey import auto, auto_key
from nbjobs.calls.call import fn_name, map_key, merge_kwargs, new_id
from nbjobs.calls.options import (
    PLAIN,
    RESERVED,
    SCHEDULE_NAMES,
    JobOptions,
    ScheduleOptions,
    entry,
    resolve,
    split,
)
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import InvalidArgument, InvalidArgumentType, JobNotFound
from nbjobs.executors import NAMES as EXECUTOR_NAMES
from nbjobs.records import Group, JobRecord
from nbjobs.running.local import LocalJobs
from nbjobs.scheduling import manage
from nbjobs.scheduling.manage import Schedule
from nbjobs.store import group_table
from nbjobs.store.job_pages import ORDERS
from nbjobs.store.owners import owner_token
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Sql
from nbjobs.validate import Duration
from nbjobs.worker.control import (
    STOP_GRACE,
    WorkerInfo,
    differences,
    list_workers,
    reuse,
    spawn,
    starting,
    stop,
)


class Store:
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
        STORES.add(self)
        self._jobs.reap_dead_owners()

    @property
    def path(self) -> Path:
        return self.storage.path

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
            return Job(self, self._submitter.submit(fn, args, call_kwargs, PLAIN))
        key = given.get("key")
        if key is auto:
            key = auto_key(fn, args, call_kwargs)
        elif key is not None:
            key = validate.key(key)
        opts = resolve(given, key, fn_name(fn))
        return Job(self, self._submitter.submit(fn, args, call_kwargs, opts))

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
        return [Job(self, rec) for rec in stored]

    # ------------------------------------------------------------------ reads
    def get(self, id_or_key: str) -> Job:
        """The job with this id or key; raises `nbjobs.JobNotFound` (a `KeyError`).

        >>> store.get("fit-10k").status          # doctest: +SKIP
        'succeeded'
        """
        validate.lookup(id_or_key, "id_or_key", "a job id or key")
        local = self._jobs.active.get(id_or_key)
        if local is not None:
            return Job(self, local.rec)
        try:
            return Job(self, self.storage.record(id_or_key))
        except JobNotFound:
            self.flush()  # a worker job submitted just now may still be queued for the disk
            return Job(self, self.storage.record(id_or_key))

    def jobs(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        tag: str | None = None,
        limit: int = 100,
    ) -> list[Job]:
        """Jobs newest first, optionally filtered by status, name and tag.

        >>> [j.name for j in store.jobs(status="failed", limit=5)]   # doctest: +SKIP
        ['fetch']
        """
        statuses = validate.statuses(status)
        _filters(name, tag)
        limit = validate.positive_int(limit, "limit")
        self.flush()
        return [Job(self, r) for r in self.storage.page(statuses, name, tag, limit)]

    def records(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        group: str | None = None,
        order: str = "newest",
    ) -> list[JobRecord]:
        """One page of job records, newest first, in one read (for dashboards and panels).

        Unlike `jobs()`, returns plain `JobRecord` snapshots and does not wait for this
        process's queued writes. `search` matches a substring of the name or key; `group`
        is a group's id (`groups()`). `order`: "newest", "oldest", "name", or "active"
        (running, retrying, failed, pending, then the other finished jobs, newest first
        within each).
        """
        statuses = validate.statuses(status)
        _filters(name, tag)
        if group is not None:
            validate.lookup(group, "group", "a group id (Group.id, see Store.groups())")
        validate.choice(order, "order", ORDERS)
        if search is not None:
            validate.lookup(search, "search", "a part of a job's name or key")
        limit = validate.positive_int(limit, "limit")
        if (
            isinstance(offset, bool)
            or not isinstance(offset, int)
            or not 0 <= offset <= validate.INT_MAX
        ):
            raise InvalidArgument(f"offset must be an int from 0 to 2**63 - 1, not {offset!r:.60}")
        return self.storage.page(statuses, name, tag, limit, offset, search, group, order)

    def groups(self, limit: int = 100, *, ids: Iterable[str] | None = None) -> list[Group]:
        """The groups of jobs (one per `map`, `Task.map` or `nbjobs.group`), newest first,
        or those with these `ids` (`job.record().group`), in that order. Each is read from
        counts kept beside the jobs: one indexed read, however many jobs a group has.

        >>> [(g.name, g.size, g.counts) for g in store.groups(5)]  # doctest: +SKIP
        [('fit', 300, {'succeeded': 120, 'running': 4, 'pending': 176})]
        """
        limit = validate.positive_int(limit, "limit")
        self.flush()  # a map just submitted by this process shows
        now = self.storage.clock.now()
        if ids is None:
            return self.storage.read(lambda sql: group_table.groups(sql, now, limit))
        wanted = [validate.lookup(i, "ids", "group ids (Group.id)") for i in ids]
        return self.storage.read(lambda sql: group_table.by_ids(sql, wanted, now))[:limit]

    def stats(self) -> dict[str, int]:
        """Number of jobs per status (every status present), read from the count index.

        >>> store.stats()["succeeded"]     # doctest: +SKIP
        12
        """
        self.flush()
        return self.storage.counts()

    def forget(self, key: str) -> bool:
        """Remove the job with this key (or id), its payload, result and logs.

        Returns False when there is no such job. A job that is pending, running or retrying
        is not removed (`InvalidArgument`): cancel it first.
        """
        validate.lookup(key, "key", "a job key or id")
        storage = self.storage

        def delete(sql: Sql) -> bool:
            rec = storage.read_in(sql, key)
            if rec is None:
                return False
            if rec.status in states.ACTIVE:  # a queued job would still run
                raise InvalidArgument(
                    f"job {key!r} is {rec.status}; cancel it or wait for it before forgetting it"
                )
            storage.delete(sql, [rec.id])
            return True

        removed: bool = storage.writer.call(delete)
        return removed

    def purge(
        self,
        older_than: Duration | None = None,
        status: str | list[str] | tuple[str, ...] | None = None,
    ) -> int:
        """Remove finished jobs and everything stored for them; returns how many.

        `older_than`: only jobs finished longer ago than this (seconds, a `timedelta`, or
        "30s", "5m", "1h30m", "7d"). `status`: only jobs in this finished state (or list of
        them: succeeded, failed, cancelled, interrupted). Give at least one of the two;
        pending, running and retrying jobs are never removed. A function or large argument
        that other jobs still use stays stored. Works in batches, so other writers are not
        held up. Also removes files under `blobs/` left by processes that died (none that a
        job still needs).

        >>> store.purge(older_than="7d")                      # doctest: +SKIP
        1520
        >>> store.purge(status=["failed", "cancelled"])       # doctest: +SKIP
        12
        """
        if older_than is None and status is None:
            raise InvalidArgument(
                "purge needs older_than= (such as '7d') or status= (such as 'failed'), or both; "
                "to remove every finished job say so: "
                f"status={sorted(states.FINISHED)!r}"
            )
        seconds = None if older_than is None else validate.duration(older_than, "older_than")
        chosen = validate.statuses(status) or tuple(sorted(states.FINISHED))
        active = [s for s in chosen if s not in states.FINISHED]
        if active:
            raise InvalidArgument(
                f"status must name finished states only ({', '.join(sorted(states.FINISHED))}); "
                f"{active[0]!r} jobs are never purged (cancel them first)"
            )
        before = None if seconds is None else self.storage.clock.now() - seconds
        storage = self.storage
        self.flush()
        total = last = 0
        while True:
            # One transaction per batch; the cursor `last` never revisits the kept jobs.
            n, last = storage.writer.call(
                functools.partial(
                    storage.delete_finished,
                    statuses=chosen,
                    before=before,
                    after=last,
                    limit=_PURGE_BATCH,
                )
            )
            if not n:
                break
            total += n
        storage.remove_orphans()
        return total

    def resume(self) -> list[Job]:
        """Run every interrupted job again (those whose kernel died while they ran).

        Returns the jobs that were restarted; jobs that cannot be resumed are skipped
        with a warning that says why.
        """
        self.flush()
        out = []
        # Oldest first: a job's dependencies are older than it, so they are pending again
        # (not interrupted) by the time it looks at them.
        for rec in reversed(self.storage.page((states.INTERRUPTED,), limit=1_000_000)):
            new = self._submitter.rerun(rec, fresh=False)
            if new is not None:
                out.append(Job(self, new))
        return out

    def retry(self, id_or_key: str) -> Job:
        """Run a failed, cancelled or interrupted job again: a fresh set of attempts under
        the same id, its earlier attempts kept in its history.

        >>> store.retry("fetch-prices").result(timeout=60)     # doctest: +SKIP
        """
        rec = self.get(id_or_key).record()
        if rec.status not in states.RERUN_ON_RESUBMIT:
            raise InvalidArgument(
                f"job {id_or_key!r} is {rec.status}; only failed, cancelled or interrupted jobs "
                "can be retried (resubmit with force=True to run a succeeded job again)"
            )
        new = self._submitter.rerun(rec, fresh=True)
        if new is None:
            raise InvalidArgument(
                f"job {id_or_key!r} cannot be run again: "
                f"{rec.not_resumable_reason or 'its payload is missing or changed meanwhile'}"
            )
        return Job(self, new)

    def dead_letters(self, limit: int = 100) -> list[Job]:
        """Failed jobs (their retries exhausted or not retryable), newest first.

        Inspect them with `job.exception()`, `job.attempt_history()`, and run one again
        with `job.retry()`.
        """
        return self.jobs(status=states.FAILED, limit=limit)

    # ------------------------------------------------------------------ detached workers
    def start_worker(
        self,
        workers: int | None = None,
        idle_timeout: Duration | None = 600,
        *,
        lease: float = 30.0,
        new: bool = False,
    ) -> WorkerInfo:
        """A detached worker process for this store's `executor="worker"` jobs: the live one
        if there is one, else a new one. Returns once it is serving.

        A new worker runs up to `workers` jobs at once (default: the number of CPUs), each in
        a child process, with this kernel's working directory and `sys.path`; it survives
        kernel restarts and exits after `idle_timeout` (seconds, a `timedelta`, or "10m",
        "1h30m", ...) with nothing to do (None: only when stopped). `lease`: seconds a job
        stays claimed by a worker that stopped heartbeating before another worker takes it
        over.

        Re-running the cell is idempotent: while a worker of this store is serving (not
        stopping, not dead), it is returned instead of starting another, and it serves at
        least another `idle_timeout` of its own from now. Like a Celery or RQ worker, it
        keeps the settings it was started with: a warning says when it runs another number
        of jobs at once than `workers=` asks (when given), or in another working directory
        (`idle_timeout` and `lease` are not compared). `stop_worker()` then
        `start_worker(...)` replaces it; `new=True` always starts one more worker (the
        workers of a store share its jobs).

        >>> info = store.start_worker(workers=4)                # doctest: +SKIP
        >>> store.submit(fit, df, executor="worker")             # doctest: +SKIP
        >>> store.start_worker(workers=4).id == info.id          # doctest: +SKIP
        True
        """
        if workers is None:
            slots = os.cpu_count() or 1
        else:
            slots = validate.positive_int(workers, "workers", validate.WORKERS_MAX)
        idle = validate.limit(idle_timeout, "idle_timeout")
        lease_s = validate.limit(lease, "lease")
        if lease_s is None:
            raise InvalidArgument("lease must be a number of seconds > 0, not None")
        if validate.flag(new, "new"):
            return spawn(self.storage, new_id(), slots, idle, lease_s)
        with starting(self.storage):
            serving = reuse(self.storage)
            if serving is None:
                return spawn(self.storage, new_id(), slots, idle, lease_s)
        differ = differences(serving, workers)
        if differ:
            validate.warn(
                f"start_worker() reused the live worker {serving.id} (pid "
                f"{serving.pid}) of the store at {self.path}, but {'; '.join(differ)}. "
                "Pass new=True to start another worker as well, or stop_worker() "
                "first to replace it."
            )
        return serving

    def workers(self) -> list[WorkerInfo]:
        """The detached workers of this store that are alive (oldest first).

        >>> [(w.id, w.workers, w.running) for w in store.workers()]   # doctest: +SKIP
        [('9f2c41d07a3b5e11', 4, 1)]
        """
        return [w for w in list_workers(self.storage) if w.alive]

    def stop_worker(
        self,
        worker: str | WorkerInfo | None = None,
        *,
        wait: bool = True,
        timeout: float | None = 60.0,
        grace: float = STOP_GRACE,
    ) -> list[WorkerInfo]:
        """Stop one detached worker (its id or `WorkerInfo`), or all of them (None).

        A stopping worker takes no new jobs, lets its running jobs finish for `grace`
        seconds, then hands the rest back (`pending`, their processes killed) for another
        worker. With `wait`, returns once they are gone (`WaitTimeout` after `timeout` s).
        Returns the workers asked to stop.

        >>> store.stop_worker()          # doctest: +SKIP
        """
        if worker is not None and not isinstance(worker, str | WorkerInfo):
            raise InvalidArgumentType(
                f"worker must be a worker id (str), a WorkerInfo or None, "
                f"not {type(worker).__name__}"
            )
        validate.flag(wait, "wait")
        limit = validate.timeout(timeout)
        grace_s = validate.timeout(grace, "grace")
        return stop(self.storage, worker, wait, limit, STOP_GRACE if grace_s is None else grace_s)

    # ------------------------------------------------------------------ schedules
    @entry(SCHEDULE_NAMES)
    def schedule(
        self,
        fn: Callable[..., Any],
        *,
        every: Duration | None = None,
        cron: str | None = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        tz: str | None = None,
        missed: str = "once",
        **options: Unpack[ScheduleOptions],
    ) -> Schedule:
        """Run `fn(*args, **kwargs)` on a schedule, as a detached-worker job per firing.

        Give exactly one of `every` (seconds, a `timedelta`, or "30s", "5m", "1h", "1d",
        "1h30m": the first firing one interval from now) and `cron` (a croniter expression
        such as "0 2 * * *", computed in `tz`, an IANA zone name; None: this machine's
        zone, or UTC if it cannot be told). Bad timing raises at once and stores nothing.

        Detached workers fire schedules (`start_worker()` or `nbjobs worker`; a warning
        says so when none is running); each firing is an ordinary `executor="worker"` job
        named `name` (default: the function's name), tagged `schedule:<name>`, with the key
        `schedule:<name>:<slot time, UTC ISO>`, so a slot never runs twice however many
        workers serve the store. A worker does not stop for idleness while an active
        schedule is stored. The job options below apply to every firing, as for `submit`.

        Missed slots (no worker was running): `missed="once"` (default) fires one job for
        the latest missed slot, not one per missed slot; `missed="skip"` fires none; both
        then go on from the next slot. DST: a wall-clock time that occurs twice (autumn)
        fires once; one skipped by the clocks (spring) fires once, when the clocks jump.

        Calling `schedule` again with the same name (re-running a cell) replaces the
        definition in place, atomically: its firing history and paused state are kept, and
        its next slot too when the timing is unchanged.

        >>> store.schedule(refresh_prices, every="30m")                     # doctest: +SKIP
        >>> store.schedule(report, cron="0 2 * * *", tz="Europe/Berlin")    # doctest: +SKIP
        """
        return manage.create(
            self,
            fn,
            every=every,
            cron=cron,
            args=args,
            kwargs=kwargs,
            tz=tz,
            missed=missed,
            options=options,
        )

    def schedules(self) -> list[Schedule]:
        """Every schedule of this store, by name (each shows its timing, time zone, next
        fire time, last fired slot and job, and whether it is paused).

        >>> store.schedules()        # doctest: +SKIP
        [<Schedule refresh_prices every 30m tz=UTC next=2026-11-24T10:30:00+00:00>]
        """
        return [Schedule(self, rec) for rec in self.storage.schedules()]

    def get_schedule(self, name: str) -> Schedule:
        """The schedule called `name`; raises `nbjobs.ScheduleNotFound` (a KeyError)."""
        return Schedule(self, manage.find(self.storage, name))

    def unschedule(self, name: str) -> bool:
        """Remove the schedule called `name`; False if there is none. Its past firings stay
        (jobs tagged `schedule:<name>`); a firing already queued still runs.

        >>> store.unschedule("refresh_prices")      # doctest: +SKIP
        True
        """
        return manage.remove(self.storage, name)

    def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule firing until `resume_schedule(name)`; raises `ScheduleNotFound`."""
        return Schedule(self, manage.set_paused(self.storage, name, True))

    def resume_schedule(self, name: str) -> Schedule:
        """Let a paused schedule fire again, from its next slot (the slots that passed while
        it was paused are not fired); raises `ScheduleNotFound`."""
        return Schedule(self, manage.set_paused(self.storage, name, False))

    # ------------------------------------------------------------------ control
    def flush(self) -> None:
        """Wait until every write queued by this process is committed to disk."""
        self.storage.writer.flush()

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


def _filters(name: Any, tag: Any) -> None:
    """Check the name and tag filters of a listing (None: any)."""
    if name is not None:
        validate.lookup(name, "name", "a job name or None")
    if tag is not None:
        validate.lookup(tag, "tag", "a tag or None")


_PURGE_BATCH = 500  # jobs per transaction: a large purge never holds the store for long


STORES: weakref.WeakSet[Store] = weakref.WeakSet()
