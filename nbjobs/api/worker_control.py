"""`WorkerControl`: the part of `Store` that starts, lists and stops its detached workers."""

from __future__ import annotations

import os

from nbjobs import validate
from nbjobs.api.reads import Reads
from nbjobs.calls.call import new_id
from nbjobs.errors import InvalidArgument, InvalidArgumentType
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


class WorkerControl(Reads):
    """The detached worker processes that serve a store."""

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
