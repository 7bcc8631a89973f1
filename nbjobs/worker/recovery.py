"""The requeue of a dead worker's jobs: which held jobs are orphaned, and what a crash makes of
one (back to pending, or failed with `JobCrashed` past `CRASH_CAP`)."""

from __future__ import annotations

from nbjobs import states
from nbjobs.errors import JobCrashed
from nbjobs.records import ErrorInfo, JobRecord, transition
from nbjobs.running.calling import failure
from nbjobs.running.endings import attempt_blob
from nbjobs.store.owners import owner_alive
from nbjobs.store.writer import Blob

#: A job whose worker died is requeued at most this many times, then it fails (JobCrashed).
CRASH_CAP = 3


def orphaned(rec: JobRecord, now: float) -> bool:
    """Held by no live worker: released, its owner dead on this host, or its lease expired."""
    if rec.owner is None:
        return True
    return not owner_alive(rec.owner) or rec.lease_until is None or rec.lease_until < now


def crashed(rec: JobRecord, now: float) -> tuple[JobRecord, list[Blob]]:
    """A running job whose worker died: back to pending (a crash counts as an attempt),
    or failed with `JobCrashed` once it was requeued `CRASH_CAP` times."""
    crashes = rec.crashes + 1
    if crashes <= CRASH_CAP:
        note = f"the worker running it ({rec.owner}) died; requeued ({crashes} of {CRASH_CAP})"
        outcome = failure(JobCrashed(note))
        new = transition(rec, states.PENDING, now, owner=None, lease_until=None, crashes=crashes)
        return new, [attempt_blob(rec, outcome, now)]
    note = (
        f"the worker running it died {crashes} times (it was requeued {CRASH_CAP} times, the "
        "cap); the job may be what kills it (memory, os._exit, a crash in native code): "
        "run it with executor='process' or in this kernel to see, then nbjobs.retry() it"
    )
    outcome = failure(JobCrashed(note))
    new = transition(
        rec, states.FAILED, now, owner=None, lease_until=None, crashes=crashes,
        error=ErrorInfo(outcome.error_type, outcome.error_message),
    )  # fmt: skip
    return new, [(f"e:{rec.id}", outcome.data, None), attempt_blob(rec, outcome, now)]
