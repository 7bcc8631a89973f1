"""Why a pending job waits and when a retrying one runs again: the job widget's line.

Only what the store knows cheaply is read: statuses of dependencies, counts, the workers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nbjobs import render, states
from nbjobs.records import JobRecord
from nbjobs.worker.control import list_workers

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoredData

#: How far down the workers' queue a job's place is counted (one read of this many records).
QUEUE_LOOKAHEAD = 100


def why_pending(store: StoredData, rec: JobRecord, now: float) -> str:
    """What a pending job waits for: its dependencies, its next attempt's time, a worker,
    or the jobs queued before it.

    >>> why_pending(store, store.get("report").record(), time.time())   # doctest: +SKIP
    'waiting for a dependency (running)'
    """
    if rec.deps:
        found = store.storage.statuses(list(rec.deps))
        waiting = [s for d in rec.deps if (s := found.get(d)) and s not in states.FINISHED]
        if len(rec.deps) == 1 and waiting:
            return f"waiting for a dependency ({waiting[0]})"
        if waiting:
            return f"waiting for {len(waiting)} of {len(rec.deps)} dependencies"
    if rec.retry_at is not None and rec.retry_at > now:
        return f"next attempt in {render.duration(rec.retry_at - now)}"
    if rec.executor == "worker":
        return _worker_queue(store, rec)
    store.flush()
    counts = store.storage.counts()
    ahead = counts.get(states.PENDING, 1) - 1
    return (
        f"queued in the {rec.executor} pool of its kernel"
        f" ({ahead:,} other pending, {counts.get(states.RUNNING, 0):,} running)"
    )


def _worker_queue(store: StoredData, rec: JobRecord) -> str:
    workers = [w for w in list_workers(store.storage) if w.alive]
    if not workers:
        return "waiting for a worker: none is running (store.start_worker() starts one)"
    queue = [r.id for r in store.storage.worker_queue(QUEUE_LOOKAHEAD)]
    busy = sum(w.running for w in workers)
    slots = sum(w.workers for w in workers)
    load = f"workers busy {busy}/{slots}"
    if rec.id not in queue:
        return f"queued behind {QUEUE_LOOKAHEAD}+ jobs · {load}"
    ahead = queue.index(rec.id)
    if ahead == 0:
        return f"next in the queue · {load}"
    return f"queued behind {ahead:,} · {load}"


def why_retrying(rec: JobRecord, now: float) -> str:
    """The last error of a retrying job and the countdown to its next attempt.

    >>> from nbjobs.records import ErrorInfo
    >>> why_retrying(JobRecord(id="a", name="f", status="retrying", attempts=2, retry_at=9.0,
    ...                        error=ErrorInfo("OSError", "busy")), 5.0)
    'attempt 2 failed: OSError: busy · next attempt in 4.0s'
    """
    error = render.error_line(rec, 160) or "(no error recorded)"
    when = "now" if rec.retry_at is None else f"in {render.duration(rec.retry_at - now)}"
    return f"attempt {rec.attempts} failed: {error} · next attempt {when}"
