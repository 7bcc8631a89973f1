"""The Dask executor: `executor=<dask.distributed.Client>` runs jobs on a Dask cluster.

The only module that imports dask; `Store` imports it when it first sees a client. The
store, the records, retries, idempotency and time limits stay with nbjobs: this kernel
moves a job to `running`, hands one Dask task per attempt to the cluster
(`client.submit(run_attempt, ..., pure=False, key="nbjobs-<id>-<attempt>")`, never Dask's
`retries=`), and the runner decides what follows an attempt (retry with backoff, fail,
succeed), exactly as for a process job. A task receives the job's payload bytes, pickled
once by nbjobs, and runs the call like a process child (`current_job()`, `async def`,
captured output); what a task does with the store is in nbjobs/executors/dask_task.py.

Where the outcome is written. Dask drops the result of a task whose client went away, so a
task that can reach the store writes the attempt's end itself (result blob, then the state,
in one compare-and-set transaction that also checks the job is still running this attempt
for this kernel: a job cancelled or timed out meanwhile keeps its state and the late result
is dropped). "Reach" means a worker on this machine (SQLite locking is not safe across
machines on a network file system) that sees the same store folder (same path, same format
file). The kernel then takes the record from the store. Otherwise (a remote cluster) the
outcome travels back through the future and the kernel writes it.

Progress and logs. A task that reaches the store writes them to the store directly
(throttled as for threads), so they keep flowing when the client disconnects or the kernel
dies. Every task also sends its progress as Dask events (`Worker.log_event`; Dask's Pub/Sub
is gone) on this kernel's own topic, at most 4 a second per job: the kernel keeps its view
of the job current with them, and writes them to the store for a remote task. Logs are not
sent as events (a log snapshot is up to 1 MB and the scheduler keeps its events): a remote
task's output is stored when its attempt ends.

Cancel and time limits. A job still queued in Dask is cancelled there (`client.cancel`) and
never runs. Its hard time limit counts from when its task starts on a Dask worker (the task's
first event says so), not from its hand-off: waiting in the cluster's queue does not use it up.
A running task cannot be killed (it is a thread of a Dask worker): the job is
marked cancelled (or failed with `JobTimeout`) at once, and the task stops at its next
`progress()`/`track()` when it reaches the store (it looks at its record there at most every
0.25 s); otherwise it runs to its end. Either way its late result is dropped.

A client that closes or disconnects while a task runs: when the cluster's workers reach the
store (checked once per client), the job stays `running` until the task writes its
outcome (a `timeout=` bounds that); otherwise it fails with `JobCrashed`. A kernel that
dies: its Dask jobs are marked `interrupted` by the next process that opens the store, like
its thread jobs, unless their task wrote its outcome first (that compare-and-set wins and
the result is kept; resubmitting the key returns it). A task that ends after the marking
finds the job interrupted and drops its result; `resume()` runs the job again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import pickle
import queue
import threading
from pathlib import Path
from typing import Any

import distributed

from nbjobs import codec, states
from nbjobs.errors import (
    InvalidArgument,
    JobCancelled,
    JobCrashed,
    JobTimeout,
    StoreFull,
)
from nbjobs.executors.dask_task import (
    Task,
    checkpoint,
    ours,
    progress_op,
    stored_log,
    write_outcome,
)
from nbjobs.executors.processes import with_results
from nbjobs.running import capture, reporting
from nbjobs.running.calling import Outcome, call_job, failure, load_failure
from nbjobs.running.local_job import LocalJob
from nbjobs.running.runner import Runner, store_log
from nbjobs.store.blobs import INLINE_LIMIT, spill
from nbjobs.store.folder import folder_identity
from nbjobs.store.storage import Storage, open_storage
from nbjobs.store.writer import Call

#: Seconds between two looks at the store for the outcome of a task whose client went away.
POLL = 0.5
#: Large functions scattered to the cluster kept referenced (the most recent ones).
KEEP_SCATTERED = 8


class DaskExecutor:
    """One Dask client's jobs for one store (see the module docstring)."""

    name = "dask"
    needs_pickle = True
    kernel_owned = True  # this kernel holds the futures and decides what follows each attempt
    workers = 0  # the cluster's size is Dask's business

    def __init__(self, runner: Runner, client: Any) -> None:
        """`client`: a `distributed.Client` (typed Any: several of its methods are untyped)."""
        self._runner = runner
        self._client = client
        storage = runner.storage
        self.address: str | None = getattr(client.scheduler, "address", None)
        self._identity = folder_identity(storage.path)
        self._topic = f"nbjobs:{runner.owner}:{storage.path}:{id(self)}"
        self._running: dict[str, tuple[LocalJob, int, Any]] = {}  # id -> (job, attempt, future)
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[LocalJob | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()
        self._scattered: dict[str, Any] = {}  # function digest -> future of its bytes
        if getattr(client, "asynchronous", False):
            raise InvalidArgument(
                "executor: an asynchronous Dask client cannot run nbjobs jobs; pass a "
                "synchronous one (distributed.Client(address))"
            )
        try:
            reach = client.run(_reaches, str(storage.path), self._identity, runner.owner)
        except Exception as exc:  # closed, or its workers cannot run nbjobs
            raise InvalidArgument(
                f"executor: the Dask client {client!r} cannot run nbjobs tasks "
                f"({type(exc).__name__}: {exc}); nbjobs must be installed on its workers"
            ) from exc
        self.shared = bool(reach) and all(reach.values())  # every worker reaches the store
        client.subscribe_topic(self._topic, self._on_event)

    @property
    def connected(self) -> bool:
        return not self._closed.is_set() and self._client.status == "running"

    def start(self, job: LocalJob) -> None:
        """Queue the job; the submitting thread moves it to running and hands it to Dask."""
        self._queue.put(job)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="nbjobs-dask", daemon=True)
                self._thread.start()

    def resize(self, workers: int) -> None:
        """The size of a Dask cluster is chosen with Dask (`cluster.scale`, adaptive)."""

    def shutdown(self) -> None:
        """Cancel this store's tasks (their jobs were marked interrupted by the store)."""
        self._closed.set()
        self._queue.put(None)
        with self._lock:
            futures = [future for _, _, future in self._running.values() if future is not None]
            self._running.clear()
        self._scattered.clear()
        with contextlib.suppress(Exception):  # the client may be closed
            self._client.unsubscribe_topic(self._topic)
        self._cancel(futures)

    def expire(self, job: LocalJob, attempt: int) -> None:
        """Time limit reached: fail the job now; the task's late result is dropped."""
        job.timed_out = True
        self._stop(
            job,
            attempt,
            JobTimeout(
                f"job {job.rec.id} ({job.rec.name}) ran past its time limit of "
                f"{job.rec.timeout} s; its Dask task was cancelled (a running one stops at "
                "its next progress() or track()) and its late result is dropped"
            ),
        )

    def cancel_running(self, job: LocalJob) -> bool:
        """Cancel the job now (called under its lock, so done on the alarm thread)."""
        job.cancel_requested = True
        attempt = job.attempt
        error = JobCancelled(f"job {job.rec.id} was cancelled while running on Dask")
        clock = self._runner.storage.clock
        self._runner.alarms.at(clock.now(), lambda: self._stop(job, attempt, error))
        return True

    def _stop(self, job: LocalJob, attempt: int, error: BaseException) -> None:
        self._runner.end(job, failure(error), attempt)
        with self._lock:
            entry = self._running.pop(job.rec.id, None)
        if entry is not None and entry[2] is not None:
            self._cancel([entry[2]])

    def _cancel(self, futures: list[Any]) -> None:
        """Cancel Dask futures without waiting: `client.cancel` waits for the scheduler,
        which may be unreachable, and this runs on the alarm thread (or at close)."""

        def cancel() -> None:
            with contextlib.suppress(Exception):  # the client may be closed
                self._client.cancel(futures)

        if futures:
            threading.Thread(target=cancel, name="nbjobs-dask-cancel", daemon=True).start()

    # ---------------------------------------------------------------- submitting
    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < 512:
                    batch.append(self._queue.get_nowait())
            begun = []
            for job in batch:
                if job is None:
                    return
                attempt = self._runner.begin(job, limit_later=True)  # armed as its task starts
                if attempt is not None:
                    begun.append((job, attempt))
            if begun and self._committed():  # a task reads its `running` record
                for job, attempt in begun:
                    self._submit(job, attempt)

    def _committed(self) -> bool:
        """Wait until the writes queued so far are committed; on a full disk, until there
        is room (tried every `POLL` s: the jobs start then). False if closed meanwhile."""
        while not self._closed.is_set():
            try:
                self._runner.storage.writer.flush()
            except StoreFull:
                self._closed.wait(POLL)
            else:
                return True
        return False

    def _submit(self, job: LocalJob, attempt: int) -> None:
        rec = job.rec
        if job.cancel_requested or rec.status != states.RUNNING:
            return  # cancelled since it began: it already ended here
        payload = job.payload
        assert payload is not None, "Dask jobs always carry their pickled payload"
        try:
            (fn_bytes, args_bytes), digest = with_results(self._runner, job, payload)
            task = Task(
                str(self._runner.storage.path), self._identity, self._runner.owner,
                reporting.CurrentJob(rec.id, rec.key, rec.name, rec.attempts),
                args_bytes, job.log_state, rec.soft_timeout, self._topic,
            )  # fmt: skip
            fn = self._function(digest, fn_bytes)
            with self._lock:  # before the task can start and say so (`_on_event`)
                self._running[rec.id] = (job, attempt, None)
            future = self._client.submit(
                run_attempt, task, fn, key=f"nbjobs-{rec.id}-{rec.attempts}", pure=False
            )
        except Exception as exc:  # a closed client, a result it depends on that cannot load
            with self._lock:
                self._running.pop(rec.id, None)
            self._runner.end(job, failure(exc), attempt)
            return
        with self._lock:
            if rec.id in self._running:  # (not stopped meanwhile)
                self._running[rec.id] = (job, attempt, future)
        future.add_done_callback(lambda f: self._done(job, attempt, f))

    def _function(self, digest: str | None, fn_bytes: bytes) -> Any:
        """The function's bytes, or for a large one (a partial carrying a big array, as
        `map` makes) a future of them scattered once: every task of a map refers to it and
        each worker fetches it once, instead of the scheduler holding a copy per task."""
        if digest is None or len(fn_bytes) <= INLINE_LIMIT:
            return fn_bytes
        ref = self._scattered.pop(digest, None)
        if ref is None:
            ref = self._client.scatter(fn_bytes, hash=False)
        self._scattered[digest] = ref  # the most recent last
        while len(self._scattered) > KEEP_SCATTERED:
            del self._scattered[next(iter(self._scattered))]
        return ref

    # ---------------------------------------------------------------- outcomes
    def _done(self, job: LocalJob, attempt: int, future: Any) -> None:
        """A task ended (Dask's callback thread)."""
        with self._lock:
            entry = self._running.get(job.rec.id)
            if entry is not None and entry[1] == attempt:
                del self._running[job.rec.id]
        if self._closed.is_set():
            return
        if future.status == "finished":
            if self._runner.adopt(job, attempt):
                return  # the task wrote the outcome itself: its (None) result is not fetched
            try:
                reply = future.result()
            except Exception as exc:
                reply = failure(exc)
            if reply is None:  # written or dropped by the task: wait for the store to say
                self._adopt(job, attempt)
            else:
                self._runner.end(job, self._landed(job, reply), attempt)
        elif future.status == "error":
            self._runner.end(job, failure(future.exception()), attempt)
        elif not (job.cancel_requested or job.timed_out or job.attempt != attempt):
            self._lost(job, attempt)

    def _lost(self, job: LocalJob, attempt: int) -> None:
        """The client dropped the task (closed, disconnected) while it ran or waited."""
        if self.shared:
            self._adopt(job, attempt)
            return
        note = (
            f"job {job.rec.id} ({job.rec.name}): the Dask client was closed or disconnected "
            "and its workers cannot reach the store to write the outcome themselves"
        )
        self._runner.end(job, failure(JobCrashed(note)), attempt)

    def _adopt(self, job: LocalJob, attempt: int) -> None:
        """Take the outcome the task wrote to the store; until it is there, look again."""
        if self._closed.is_set() or self._runner.adopt(job, attempt):
            return
        clock = self._runner.storage.clock
        self._runner.alarms.at(clock.now() + POLL, lambda: self._adopt(job, attempt))

    def _landed(self, job: LocalJob, outcome: Outcome) -> Outcome:
        """A remote task's outcome, its large result moved to a file of the store (one that
        does not fit fails the job with `StoreFull`)."""
        if not outcome.ok or outcome.data is None or outcome.file is not None:
            return outcome
        try:
            data, file = spill(self._runner.storage.blob_dir, f"r:{job.rec.id}", outcome.data)
        except Exception as exc:
            return failure(exc)
        return dataclasses.replace(outcome, data=data, file=file)

    def _on_event(self, event: tuple[float, Any]) -> None:
        """A task started (progress None: its time limit starts now, not when it was handed
        to Dask, where it may have waited in the queue), or its progress (in the client's
        event loop): for this kernel's view of the job, and for the store when the task
        could not write it there itself."""
        job_id, attempts, progress, stored = event[1]
        entry = self._running.get(job_id)
        if entry is None or entry[0].rec.attempts != attempts:
            return
        if progress is None:
            self._runner.arm_limit(entry[0], entry[1], self._runner.storage.clock.now())
        else:
            self._runner.report_progress(entry[0], progress, stored)


# -------------------------------------------------------------------- on the Dask worker
def _reaches(path: str, identity: tuple[int, int] | None, owner: str) -> bool:
    """Whether this Dask worker can write the store itself (see the module docstring)."""
    return (
        identity is not None
        and owner.partition(":")[0] == os.uname().nodename
        and folder_identity(Path(path)) == identity
    )


def run_attempt(task: Task, fn_bytes: bytes) -> Outcome | None:
    """The body of every Dask task: run one attempt of a job, like a process child.

    Returns None when the outcome was written to the store here (or dropped: the job was
    cancelled, timed out or interrupted meanwhile), else the `Outcome` for the kernel.
    """
    # Say that it starts: the kernel's time limit for this attempt counts from now.
    distributed.get_worker().log_event(task.topic, [task.info.id, task.info.attempt, None, False])
    storage = None
    if _reaches(task.store, task.identity, task.owner):
        storage = open_storage(Path(task.store))
        rec = storage.record_by_id(task.info.id)
        if rec is None:
            storage = None  # another store at the same path: the kernel writes
        elif not ours(rec, task):
            return None  # cancelled or timed out before it started
    try:
        fn = pickle.loads(fn_bytes)
        args, kwargs = codec.load_args(task.args, None if storage is None else storage.values)
    except Exception as exc:
        outcome = load_failure(exc, "the Dask worker")
    else:
        outcome = _call(fn, args, kwargs, task, storage)
    if storage is None:
        return outcome
    try:
        write_outcome(storage, task, outcome)
    except Exception:  # the store cannot be written from here after all: the kernel writes
        return outcome
    return None


def _call(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], task: Task, storage: Storage | None
) -> Outcome:
    info = task.info
    worker = distributed.get_worker()  # in this thread: the job's own threads may report

    def progress(body: dict[str, Any]) -> None:
        if storage is not None:
            storage.writer.put(Call(progress_op(storage, task, body)))
        worker.log_event(task.topic, [info.id, info.attempt, body, storage is not None])

    ctx = reporting.JobContext(info, progress, checkpoint(task, storage))
    if storage is None:  # the output so far travels with the outcome
        ctx.log = capture.LogBuffer(lambda snap: None, task.log_state)
    else:
        log = functools.partial(store_log, storage, info.id)
        ctx.log = capture.LogBuffer(log, stored_log(storage, info.id))
    if info.attempt > 1:
        ctx.log.write(f"--- attempt {info.attempt} ---\n")
    capture.install(reporting.current_log)
    return call_job(fn, args, kwargs, None if storage is None else storage.blob_dir, ctx)
