"""`Submitter`: from a checked call to a stored, started job, and back again for a re-run.

The submit path, top to bottom: `prepare` (pickle the call, build the record; nothing
written) -> a keyless job is `_enqueue`d for the writer thread, a keyed one `_claim`s its
key in this thread's own transaction -> `_started` (held until its dependencies are done or
its `retry_at` comes). `rerun` takes a stored job down the same last step (`resume`,
`retry`). The `Store` facade validates and turns the records returned here into `Job`s.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from nbjobs import codec, shorten, states, validate
from nbjobs.api.job import Job
from nbjobs.calls import refs
from nbjobs.calls.autokey import arguments_digest
from nbjobs.calls.call import (
    MapKey,
    Payload,
    fn_name,
    map_calls,
    map_keys,
    new_id,
    pickle_call,
    set_apart,
)
from nbjobs.calls.options import Options
from nbjobs.errors import InvalidArgument, PayloadNotPicklable, StoreClosed
from nbjobs.executors import Backend
from nbjobs.executors.processes import ProcessExecutor
from nbjobs.executors.threads import ThreadExecutor
from nbjobs.executors.worker import WorkerBackend
from nbjobs.records import JobRecord, transition
from nbjobs.running.local import LocalJobs
from nbjobs.running.local_job import LocalJob
from nbjobs.store.group_table import KEYED
from nbjobs.store.writer import Insert, Sql

if TYPE_CHECKING:
    from nbjobs.executors.dask import DaskExecutor


_GROUP: ContextVar[str | None] = ContextVar("nbjobs_group", default=None)


@contextlib.contextmanager
def grouping(group_id: str | None = None) -> Iterator[str]:
    """Jobs submitted inside (in this thread or task) form one group (`Store.groups()`);
    yields its id (a new one unless given).

    >>> with grouping() as gid:                        # doctest: +SKIP
    ...     jobs = [store.submit(fit, a) for a in alphas]
    """
    gid = group_id or new_id()
    token = _GROUP.set(gid)
    try:
        yield gid
    finally:
        _GROUP.reset(token)


def _default_workers() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


class Submitter:
    """Stores and starts this process's submits to one store, on the store's executors."""

    def __init__(self, jobs: LocalJobs, executor: str | Any, workers: int | None) -> None:
        self.jobs = jobs
        self.storage = jobs.storage
        self.owner = jobs.owner
        self.runner = jobs.runner
        self.default_executor = executor  # checked by the caller: a name or a Dask client
        self.backends = jobs.backends
        self.backends.update(
            thread=ThreadExecutor(self.runner, workers or _default_workers()),
            process=ProcessExecutor(self.runner, workers or os.cpu_count() or 1),
            worker=WorkerBackend(self.storage),
        )
        self.dask: dict[int, DaskExecutor] = {}  # one backend per dask.distributed.Client
        self._dask_lock = threading.Lock()

    # ------------------------------------------------------------------ submit
    def submit(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        opts: Options,
        on_start: Callable[[], bool] | None = None,
    ) -> JobRecord:
        """Store and start one call; `on_start` is called as the job starts running."""
        rec, local, blobs = self.prepare(fn, args, kwargs, opts)
        if blobs is None:
            validate.warn(
                f"job {rec.name!r} runs in this kernel but cannot be resumed after a restart: "
                f"{rec.not_resumable_reason}",
            )
        elsewhere = not self.jobs.backend_of(local).kernel_owned  # a detached worker's job
        if on_start is not None and not elsewhere:
            local.on_start.append(on_start)
        stored = self._write(rec, local, blobs, opts.force)
        if on_start is not None and elsewhere:
            self.jobs.on_started(stored.id, on_start)
        return stored

    def map(
        self,
        fn: Callable[..., Any],
        iterables: tuple[Iterable[Any], ...],
        key: MapKey,
        shared: dict[str, Any],
        opts: Options,
    ) -> list[JobRecord]:
        """Store and start `fn(*items_i, **shared)` for the zipped iterables, in input order;
        every item is checked (keyed by the checked `key`) before the first job is written."""
        calls = map_calls(iterables)
        keys = map_keys(key, fn, shared, calls)
        # One function object for every job: pickled, hashed and stored once.
        bound = functools.partial(fn, **shared) if shared else fn
        # A map keyed by a prefix is the same group each time its cell runs.
        with grouping(KEYED + key if isinstance(key, str) else None):
            prepared = self._prepare_map(bound, calls, keys, opts)
        return [self._write(rec, local, blobs, opts.force) for rec, local, blobs in prepared]

    def prepare(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], opts: Options
    ) -> tuple[JobRecord, LocalJob, Payload]:
        """The job's record, its in-memory run and its pickled call (None: not resumable)."""
        self._check_open()
        backend = self.backend(opts.executor)
        key = opts.key
        rec = JobRecord(
            id=new_id(),
            key=key,
            name=opts.name or fn_name(fn),
            tags=opts.tags,
            executor=backend.name,
            owner=self.owner if backend.kernel_owned else None,
            timeout=opts.timeout,
            soft_timeout=opts.soft_timeout,
            address=backend.address,
            group=_GROUP.get(),
        )
        now = self.storage.clock.now()
        rec.created_at = rec.updated_at = now
        rec.deps = self._dependencies(fn, args, kwargs)
        rec.summary = shorten.arguments(args, kwargs)
        payload = pickle_call(fn, args, kwargs, backend.needs_pickle)
        pickled = None if isinstance(payload, str) else payload
        local = LocalJob(
            rec, fn, args, kwargs,
            (pickled[1], pickled[2]) if pickled is not None and backend.needs_pickle else None,
        )  # fmt: skip
        local.policy = opts.policy
        local.backend = backend
        if isinstance(payload, str):  # runs here, but cannot be resumed: nothing to store
            rec.resumable = False
            rec.not_resumable_reason = payload
            return rec, local, None
        fn_digest, fn_bytes, args_bytes = payload
        rec.fn_digest = fn_digest
        if key is not None:  # only keyed resubmits compare arguments
            rec.args_digest = arguments_digest(fn, args, kwargs)
        stored, values = set_apart(fn, args, kwargs, args_bytes)
        return rec, local, ((fn_digest, stored, opts.policy), fn_bytes, values)

    def _prepare_map(
        self,
        fn: Callable[..., Any],
        calls: list[tuple[Any, ...]],
        keys: list[tuple[str | None, str | None]],
        opts: Options,
    ) -> list[tuple[JobRecord, LocalJob, Payload]]:
        """Every job of a map, pickled and keyed, nothing written but the shared function."""
        if not calls:
            return []
        backend = self.backend(opts.executor)
        pickle_call(fn, (), {}, backend.needs_pickle)  # a bad function is named once, not per item
        prepared = []
        lost = []
        for i, (args, (key, digest)) in enumerate(zip(calls, keys, strict=True)):
            try:
                rec, local, blobs = self.prepare(fn, args, {}, opts)
            except PayloadNotPicklable as exc:
                raise PayloadNotPicklable(f"item {i}: {exc}") from exc
            rec.key, rec.args_digest = key, digest
            if blobs is None:
                lost.append(f"item {i}: {rec.not_resumable_reason}")
            prepared.append((rec, local, blobs))
        if lost:
            validate.warn(
                f"{len(lost)} of the {len(calls)} jobs of this map run in this kernel but "
                f"cannot be resumed after a restart; the first: {lost[0]}",
            )
        stored = next((blobs for _, _, blobs in prepared if blobs is not None), None)
        if stored is not None and f"f:{stored[0][0]}" not in self.storage.fn_written:
            self._write_function(stored[0][0], stored[1])
        return prepared

    def _write(self, rec: JobRecord, local: LocalJob, blobs: Payload, force: bool) -> JobRecord:
        """Store a prepared job and start it: a keyless one is queued for the writer, a keyed
        one claims its key first (and may return the job that holds it)."""
        if self.storage.writer.full is not None:  # the disk was full: is there room now?
            self.storage.writer.check_room()  # (StoreFull if not: no new job is taken)
        if rec.key is None and (blobs is None or not blobs[2]):
            return self._enqueue(rec, local, blobs)
        return self._claim(rec, local, blobs, force)

    def _enqueue(self, rec: JobRecord, local: LocalJob, blobs: Payload) -> JobRecord:
        op = Insert(rec)
        written = None
        if blobs is not None:
            op.call, fn_bytes, _ = blobs  # the writer thread encodes the call
            key = f"f:{blobs[0][0]}"
            op.once.append((key, fn_bytes))  # (stored again if a purge removed it)
            if key not in self.storage.fn_written:
                written = self._function_written(key)
        if self.jobs.backend_of(local).kernel_owned:
            self.jobs.keep(local)
        self.storage.writer.put_bounded(op, written)
        self.jobs.start(local)
        return rec

    def _claim(self, rec: JobRecord, local: LocalJob, blobs: Payload, force: bool) -> JobRecord:
        """Store a keyed job, or one with large arguments (whose files are written first,
        then named in this thread's transaction: `Storage.stage_values`)."""
        storage = self.storage
        now = rec.created_at
        key = rec.key
        values = [] if blobs is None else blobs[2]

        call = None if blobs is None else codec.payload_blob(*blobs[0])
        # The common case, a new key whose function is stored already, is one INSERT of
        # the job with its call: each SQLite call is a chance to wait for the GIL under
        # load, and a row is fewer pages than a row and a blob. A taken key is read: only
        # a job to run again needs the transaction below.
        fn_key = None if blobs is None else f"f:{blobs[0][0]}"
        if (
            key is not None
            and not values
            and storage.claims_at_once(rec, call)
            and (fn_key is None or fn_key in storage.fn_written)
        ):
            if storage.claim(rec, call):
                return self._started(local, rec, now)
            old = storage.record_by_key(key)
            if old is not None and not _rerun_wanted(old, force):
                return _existing(rec, old)
            if old is None and fn_key is not None:  # a free key: the function was purged
                storage.fn_written.discard(fn_key)

        def claim(sql: Sql) -> tuple[str, JobRecord]:
            if storage.insert(sql, rec, call, staged):  # the key was free: it is ours now
                self._store_function(sql, blobs)
                return "new", rec
            assert key is not None, "a job without a key is always inserted"
            old = storage.record_by_key(key, sql)
            assert old is not None, "a taken key has a job"
            if not _rerun_wanted(old, force):
                return "existing", old
            # An interrupted job is resumed: its remaining attempts and retry_at are kept.
            fresh = force or old.status != states.INTERRUPTED
            new = transition(
                old,
                states.PENDING,
                now,
                fresh=fresh,
                executor=rec.executor,
                owner=rec.owner,
                fn_digest=rec.fn_digest,
                args_digest=rec.args_digest,
                resumable=rec.resumable,
                not_resumable_reason=rec.not_resumable_reason,
            )
            if fresh:
                storage.drop_blobs(sql, (f"r:{old.id}", f"e:{old.id}"))
            self._store_function(sql, blobs)
            storage.set_call(sql, old.id, call, rec.fn_digest, staged)
            if not storage.update(sql, new, old.status):
                raise InvalidArgument(f"job with key {rec.key!r} changed while resubmitting")
            return "rerun", new

        # In this thread, not the writer's: one short transaction, no thread hand-offs.
        staged = storage.stage_values(values)
        try:
            outcome, stored = storage.transact_here(claim, f"job {key or rec.name!r}")
        finally:
            storage.unstage(staged)
        if fn_key is not None:  # committed: later submits try the single INSERT
            storage.fn_written.add(fn_key)
        if outcome == "existing":
            return _existing(rec, stored)
        return self._started(local, stored, now)

    def _started(self, local: LocalJob, stored: JobRecord, now: float) -> JobRecord:
        """Start (or hold until its `retry_at`) a job this process just stored."""
        local.rec = stored
        if self.jobs.backend_of(local).kernel_owned:
            self.jobs.keep(local)
        self._start_when_due(local, now)
        return stored

    def _start_when_due(self, local: LocalJob, now: float) -> None:
        """Start a job now, or at its `retry_at`: a resumed job that was waiting for its
        next attempt keeps waiting."""
        retry_at = local.rec.retry_at
        if retry_at is not None and retry_at > now:
            backend = self.jobs.backend_of(local)
            self.runner.alarms.at(retry_at, lambda: backend.start(local))
        else:
            self.jobs.start(local)

    # ------------------------------------------------------------------ functions
    def _write_function(self, digest: str, data: bytes) -> None:
        """Store a function blob now (committed), so the jobs that follow only refer to it."""
        key = f"f:{digest}"
        self.storage.writer.call(lambda sql: self.storage.put_blob_once(sql, key, data))
        self.storage.fn_written.add(key)

    def _store_function(self, sql: Sql, blobs: Payload) -> None:
        """Store the call's function unless it is stored (a purge may have removed it since
        this process stored it)."""
        if blobs is not None:
            self.storage.put_blob_once(sql, f"f:{blobs[0][0]}", blobs[1])

    def _function_written(self, key: str) -> Callable[[Any, BaseException | None], None]:
        """A writer callback: once the function's blob is committed, a keyed submit of it
        may be a single INSERT."""
        written = self.storage.fn_written

        def done(_result: Any, error: BaseException | None) -> None:
            if error is None:
                written.add(key)

        return done

    def _dependencies(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[str, ...]:
        """Ids of the jobs among the call's arguments (see `refs`); they must be this store's."""
        found = refs.call_dependencies(fn, args, kwargs)
        if not found:
            return ()
        for dep in found:
            if isinstance(dep, Job) and dep.store.storage is not self.storage:
                raise InvalidArgument(
                    f"job {dep.id} ({dep.name}) is in another store ({dep.store.path}); a job "
                    f"can only depend on jobs of its own store ({self.storage.path})"
                )
        return tuple(refs.ref_of(dep).id for dep in found)  # type: ignore[union-attr]

    # ------------------------------------------------------------------ executors
    def backend(self, executor: str | Any) -> Backend:
        """The backend of a checked `executor=` (a name or a Dask client; None: the default)."""
        choice = self.default_executor if executor is None else executor
        if isinstance(choice, str):
            return self.backends[choice]
        with self._dask_lock:
            backend = self.dask.get(id(choice))
            if backend is None:
                from nbjobs.executors.dask import DaskExecutor  # imports dask: only when used

                backend = self.dask[id(choice)] = DaskExecutor(self.runner, choice)
        if not backend.connected:
            raise InvalidArgument(f"executor: the Dask client {choice!r} is closed")
        return backend

    def _rerun_backend(self, rec: JobRecord) -> Backend:
        """Where a job runs again: its own executor; a Dask job on this store's newest Dask
        client that is still connected, else (none, or a terminal) the default executor."""
        if rec.executor == "dask":
            live = [b for b in self.dask.values() if b.connected]
            return live[-1] if live else self.backend(None)
        return self.backends.get(rec.executor) or self.backend(None)

    def resize(self, workers: int) -> None:
        """Run up to `workers` jobs at once on each executor of the store (not Dask's)."""
        for backend in self.backends.values():
            backend.resize(workers)

    def _check_open(self) -> None:
        """Raise `StoreClosed` once the store is closed: its executors take no more jobs, and
        a job handed to them would wait forever."""
        if self.jobs.closed:
            raise StoreClosed(
                f"the job store at {self.storage.path} is closed; open it again with "
                "nbjobs.Store(path) (or nbjobs.configure(store=path)) to submit jobs"
            )

    def shutdown(self) -> None:
        """Stop every executor, Dask's included."""
        for backend in (*self.backends.values(), *self.dask.values()):
            backend.shutdown()

    # ------------------------------------------------------------------ re-runs
    def rerun(self, rec: JobRecord, fresh: bool) -> JobRecord | None:
        """Run a finished job again under its id (`fresh`: with a new set of attempts);
        None, with a warning, when its call is not stored or it changed meanwhile."""
        self._check_open()
        stored = self.stored_call(rec)
        if isinstance(stored, str):
            validate.warn(f"job {rec.id} ({rec.name}) cannot be resumed: {stored}")
            return None
        fn_blob, payload = stored
        fn, args, kwargs = codec.load_payload(payload, fn_blob, self.storage.values)
        backend = self._rerun_backend(rec)
        now = self.storage.clock.now()
        new = transition(
            rec,
            states.PENDING,
            now,
            fresh=fresh,
            owner=self.owner if backend.kernel_owned else None,
            executor=backend.name,
        )

        def write(sql: Sql) -> bool:
            if fresh:
                self.storage.drop_blobs(sql, (f"r:{rec.id}", f"e:{rec.id}"))
            return self.storage.update(sql, new, rec.status)

        if not self.storage.writer.call(write):
            return None
        local = LocalJob(new, fn, args, kwargs, (fn_blob, codec.payload_args(payload)))
        local.policy = codec.payload_policy(payload)
        local.backend = backend
        local.log_state = self.jobs.log_state(rec.id)
        if backend.kernel_owned:
            self.jobs.keep(local)
        self._start_when_due(local, now)
        return new

    def stored_call(self, rec: JobRecord) -> tuple[bytes, bytes] | str:
        """The job's stored function and payload blobs, or why it has none."""
        if not rec.resumable or rec.fn_digest is None:
            return rec.not_resumable_reason or "its call was not stored"
        fn_blob = self.storage.blob(f"f:{rec.fn_digest}")
        payload = self.storage.call(rec.id)
        if fn_blob is None or payload is None:
            return "its stored function or arguments are missing"
        return fn_blob, payload


def _existing(rec: JobRecord, stored: JobRecord) -> JobRecord:
    """The job that holds the key `rec` asked for (a warning if its arguments differ)."""
    if rec.args_digest and stored.args_digest and rec.args_digest != stored.args_digest:
        validate.warn(
            f"a job with key {rec.key!r} already exists with different arguments; "
            "returning the existing job (use force=True to run it again with these, "
            "or another key)",
        )
    return stored


def _rerun_wanted(rec: JobRecord, force: bool) -> bool:
    """Resubmitting a key re-runs a failed, cancelled or interrupted job (any finished one
    with force=True); a pending, running or retrying one is returned as it is."""
    if force:
        return rec.status in states.FINISHED
    return rec.status in states.RERUN_ON_RESUBMIT
