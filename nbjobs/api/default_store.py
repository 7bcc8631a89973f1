"""The default store and the module-level functions that use it (`nbjobs.submit`, ...)."""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Unpack, overload

from nbjobs.api.job import Job
from nbjobs.api.schedules import Schedule
from nbjobs.api.store import STORES, Store
from nbjobs.calls.options import SCHEDULE_NAMES, JobOptions, ScheduleOptions, entry
from nbjobs.records import Group
from nbjobs.store.folder import default_path
from nbjobs.validate import Duration
from nbjobs.worker.control import STOP_GRACE, WorkerInfo

if TYPE_CHECKING:
    from nbjobs.widgets.panel_view import Panel

_default: Store | None = None
_default_lock = threading.Lock()
_opened_here: weakref.WeakSet[Store] = weakref.WeakSet()  # default stores opened here


def default_store() -> Store:
    """The store module functions use: `$NBJOBS_STORE`, else `./.nbjobs`."""
    global _default
    store = _default  # read once, without the lock: every module-level submit comes here
    if store is not None:
        return store
    with _default_lock:
        if _default is None:
            _default = Store(default_path())
            _opened_here.add(_default)
        return _default


def configure(
    store: str | os.PathLike[str] | Store | None = None,
    executor: str | Any = None,
    workers: int | None = None,
) -> Store:
    """Choose the default store, executor and number of workers; returns the default store.

    `executor`: "thread" (the default), "process", "worker", or a `dask.distributed.Client`.

    >>> nbjobs.configure(store="~/jobs", workers=4)   # doctest: +SKIP
    nbjobs.Store('/home/me/jobs')
    >>> nbjobs.configure(executor=Client("tcp://scheduler:8786"))   # doctest: +SKIP
    """
    global _default
    if store is not None:
        new = store if isinstance(store, Store) else Store(store)
        with _default_lock:
            old, _default = _default, new
            if not isinstance(store, Store):
                _opened_here.add(new)
        if old is not None and old is not new:
            _retire(old)
    target = default_store()
    target.configure(executor=executor, workers=workers)
    return target


def _retire(old: Store) -> None:
    """A default store that was replaced: one opened here (from a path) is closed once the
    jobs this process runs in it are done (its threads and files are not left behind); one
    the caller opened is theirs to close, and is only flushed."""
    with _default_lock:
        if old not in _opened_here:
            old.flush()
            return
        _opened_here.discard(old)
    if not old._running_here():
        old.close()
        return
    threading.Thread(target=old._close_when_done, name="nbjobs-retire", daemon=True).start()


@overload
def submit(
    fn: Callable[..., Any],
    /,
    *args: Any,
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[JobOptions],
) -> Job: ...
@overload
def submit(
    fn: Callable[..., Any], /, *args: Any, kwargs: dict[str, Any] | None = None, **fn_kwargs: Any
) -> Job: ...
@entry()
def submit(
    fn: Callable[..., Any], /, *args: Any, kwargs: dict[str, Any] | None = None, **fn_kwargs: Any
) -> Job:
    """Run `fn(*args, **kwargs)` in the background and record it in the default store.

    Returns a `Job` at once. Keywords that are not job options (listed below) go to `fn`;
    arguments whose names clash with the options go through `kwargs={...}`. See `Store.submit`.

    >>> def fit(n, alpha=0.1):
    ...     return sum(i * alpha for i in range(n))
    >>> job = nbjobs.submit(fit, 10_000, alpha=0.5, key="fit-10k")   # doctest: +SKIP
    >>> job.result(timeout=60)                                       # doctest: +SKIP
    2499750.0
    """
    return default_store().submit(fn, *args, kwargs=kwargs, **fn_kwargs)


@overload
def map_jobs(
    fn: Callable[..., Any],
    /,
    *iterables: Iterable[Any],
    kwargs: dict[str, Any] | None = None,
    **options: Unpack[JobOptions],
) -> list[Job]: ...
@overload
def map_jobs(
    fn: Callable[..., Any],
    /,
    *iterables: Iterable[Any],
    kwargs: dict[str, Any] | None = None,
    **fn_kwargs: Any,
) -> list[Job]: ...
@entry()
def map_jobs(
    fn: Callable[..., Any],
    /,
    *iterables: Iterable[Any],
    kwargs: dict[str, Any] | None = None,
    **fn_kwargs: Any,
) -> list[Job]:
    """`nbjobs.map`: one job per item in the default store, in input order. See `Store.map`.

    Job i runs `fn(*items_i, **kwargs)`; the function and the keyword arguments are stored
    once for all the jobs. The job options (below) apply to every job. The iterables must
    have one length.

    >>> jobs = nbjobs.map(fit, [0.1, 0.2, 0.5], data=df, key="fit")   # doctest: +SKIP
    >>> [job.result() for job in jobs]                                  # doctest: +SKIP
    """
    return default_store().map(fn, *iterables, kwargs=kwargs, **fn_kwargs)


def get(id_or_key: str) -> Job:
    """The job with this id or key in the default store; raises `JobNotFound` (a KeyError)."""
    return default_store().get(id_or_key)


def jobs(
    status: str | list[str] | tuple[str, ...] | None = None,
    name: str | None = None,
    tag: str | None = None,
    limit: int = 100,
) -> list[Job]:
    """Jobs of the default store, newest first. See `Store.jobs`."""
    return default_store().jobs(status=status, name=name, tag=tag, limit=limit)


def stats() -> dict[str, int]:
    """Counts per status in the default store."""
    return default_store().stats()


def forget(key: str) -> bool:
    """Remove the job with this key (or id) from the default store."""
    return default_store().forget(key)


def purge(
    older_than: Duration | None = None,
    status: str | list[str] | tuple[str, ...] | None = None,
) -> int:
    """Remove finished jobs of the default store; returns how many. See `Store.purge`.

    >>> nbjobs.purge(older_than="7d", status="succeeded")   # doctest: +SKIP
    1520
    """
    return default_store().purge(older_than=older_than, status=status)


def resume() -> list[Job]:
    """Run the default store's interrupted jobs again (they keep their remaining attempts)."""
    return default_store().resume()


def retry(id_or_key: str) -> Job:
    """Run a failed, cancelled or interrupted job of the default store again. See `Store.retry`."""
    return default_store().retry(id_or_key)


def dead_letters(limit: int = 100) -> list[Job]:
    """Failed jobs of the default store, newest first. See `Store.dead_letters`."""
    return default_store().dead_letters(limit)


def start_worker(
    workers: int | None = None,
    idle_timeout: Duration | None = 600,
    store: str | os.PathLike[str] | Store | None = None,
    *,
    lease: float = 30.0,
    new: bool = False,
) -> WorkerInfo:
    """A detached worker process for `executor="worker"` jobs (default store, or `store`).

    It survives kernel restarts, runs up to `workers` jobs at once, each in its own process,
    with this kernel's working directory and `sys.path`, and exits after `idle_timeout`
    seconds with nothing to do. Re-running the cell returns the worker already serving the
    store rather than starting another (a warning says when it was started with other
    `workers=`); `new=True` starts one more. See `Store.start_worker`.

    >>> nbjobs.start_worker(workers=4)                     # doctest: +SKIP
    >>> job = nbjobs.submit(fit, df, executor="worker")     # doctest: +SKIP
    """
    with _store(store) as target:
        return target.start_worker(workers, idle_timeout, lease=lease, new=new)


def workers(store: str | os.PathLike[str] | Store | None = None) -> list[WorkerInfo]:
    """The live detached workers of the default store (or `store`), oldest first.

    >>> [(w.pid, w.workers, w.running) for w in nbjobs.workers()]   # doctest: +SKIP
    [(4242, 4, 1)]
    """
    with _store(store) as target:
        return target.workers()


def stop_worker(
    worker: str | WorkerInfo | None = None,
    *,
    wait: bool = True,
    timeout: float | None = 60.0,
    grace: float = STOP_GRACE,
    store: str | os.PathLike[str] | Store | None = None,
) -> list[WorkerInfo]:
    """Stop a detached worker of the default store (or all of them). See `Store.stop_worker`.

    >>> nbjobs.stop_worker()        # doctest: +SKIP
    """
    with _store(store) as target:
        return target.stop_worker(worker, wait=wait, timeout=timeout, grace=grace)


@entry(SCHEDULE_NAMES)
def schedule(
    fn: Callable[..., Any],
    /,
    *,
    every: Duration | None = None,
    cron: str | None = None,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    tz: str | None = None,
    missed: str = "once",
    **options: Unpack[ScheduleOptions],
) -> Schedule:
    """Run `fn` on a schedule in the default store: `every=` or `cron=`. See `Store.schedule`.

    Detached workers fire it (`nbjobs.start_worker()` or `nbjobs worker`); each firing is a
    worker job keyed `schedule:<name>:<slot>`. Missed slots: one firing for the latest
    (`missed="once"`, the default) or none (`missed="skip"`). Calling it again with the same
    name replaces the schedule in place. The job options (below) apply to every firing.

    >>> nbjobs.schedule(refresh_prices, every="30m")                       # doctest: +SKIP
    >>> nbjobs.schedule(report, cron="0 2 * * *", tz="Europe/Berlin")      # doctest: +SKIP
    """
    return default_store().schedule(
        fn, every=every, cron=cron, args=args, kwargs=kwargs, tz=tz, missed=missed, **options
    )


def schedules() -> list[Schedule]:
    """The schedules of the default store, by name, with their next fire times.

    >>> nbjobs.schedules()      # doctest: +SKIP
    [<Schedule refresh_prices every 30m tz=UTC next=2026-11-24T10:30:00+00:00>]
    """
    return default_store().schedules()


def get_schedule(name: str) -> Schedule:
    """The default store's schedule called `name`; raises `ScheduleNotFound` (a KeyError)."""
    return default_store().get_schedule(name)


def unschedule(name: str) -> bool:
    """Remove the default store's schedule called `name`; False if there is none.

    >>> nbjobs.unschedule("refresh_prices")      # doctest: +SKIP
    True
    """
    return default_store().unschedule(name)


def pause_schedule(name: str) -> Schedule:
    """Stop a schedule of the default store firing until `resume_schedule(name)`."""
    return default_store().pause_schedule(name)


def resume_schedule(name: str) -> Schedule:
    """Let a paused schedule of the default store fire again, from its next slot."""
    return default_store().resume_schedule(name)


@contextlib.contextmanager
def _store(store: str | os.PathLike[str] | Store | None) -> Iterator[Store]:
    """The store to use for one call: the default, the one given, or one opened from a
    path for the call and closed after it (its threads and files are not left behind)."""
    if store is None:
        yield default_store()
    elif isinstance(store, Store):
        yield store
    else:
        with Store(store) as opened:
            yield opened


def panel(
    store: Store | None = None,
    *,
    page_size: int = 20,
    status: str | None = None,
    tag: str | None = None,
    name: str | None = None,
    group: str | Group | None = None,
    group_by: str | None = "map",
    sort: str = "active",
) -> Panel:
    """A live table of the store's jobs (ipywidgets), updated from a background thread.

    One row per group of jobs (each `map`, `Task.map` or `nbjobs.group`) comes first: its
    size, counts per status, a stacked bar, progress and ETA; its button shows only its
    jobs. `group_by`: "map" (default), "tag", "name" or None (no group rows). The jobs
    follow in `sort` order: "active" (running, retrying, failed, pending, then the other
    finished jobs, newest first within each), "newest", "oldest" or "name". `status`,
    `tag`, `name` and `group` (a `Group` or its id) open it filtered.

    Imports ipywidgets on first call only. After a kernel restart, run it again.

    >>> nbjobs.panel()                                   # doctest: +SKIP
    >>> nbjobs.panel(status="failed", name="fit")        # doctest: +SKIP
    """
    from nbjobs.widgets.panel_view import panel as show_panel

    return show_panel(
        default_store() if store is None else store, page_size=page_size, status=status,
        tag=tag, name=name, group=group, group_by=group_by, sort=sort,
    )  # fmt: skip


@atexit.register
def _close_all() -> None:
    for store in list(STORES):
        with contextlib.suppress(Exception):
            store._interrupt_all()
