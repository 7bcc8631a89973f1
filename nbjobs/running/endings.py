"""The record and blobs that end an attempt (or a job that never ran), and its history entry."""

from __future__ import annotations

import pickle
from typing import Any

from nbjobs import codec, states
from nbjobs.records import ErrorInfo, JobRecord, transition
from nbjobs.running.calling import Outcome, failure
from nbjobs.store.writer import Blob


def attempt_end(
    prev: JobRecord, outcome: Outcome, now: float, delay: float | None = None
) -> tuple[JobRecord, list[Blob]]:
    """The record and blobs that end the running attempt of `prev` with `outcome`: succeeded,
    failed, cancelled, or retrying in `delay` seconds (as `judge` decided, beforehand and
    without any lock: it runs user code)."""
    job_id = prev.id
    changes: dict[str, Any] = {"progress": outcome.progress or prev.progress}
    if outcome.ok:
        status = states.SUCCEEDED
        changes["has_result"] = True
        blobs: list[Blob] = [(f"r:{job_id}", outcome.data, outcome.file)]
    else:
        status = states.CANCELLED if outcome.cancelled else states.FAILED
        changes["error"] = ErrorInfo(outcome.error_type, outcome.error_message)
        blobs = [(f"e:{job_id}", outcome.data, None)]
        if delay is not None:
            status = states.RETRYING
            changes["retry_at"] = now + delay
            changes["idle_for"] = prev.idle_for + delay
    rec = transition(prev, status, now, **changes)
    if not outcome.ok:  # a successful attempt is fully described by the record
        blobs.append(attempt_blob(prev, outcome, now))
    if outcome.log is not None:
        blobs.append((f"l:{job_id}", pickle.dumps(outcome.log, codec.PROTOCOL), None))
    return rec, blobs


def never_ran(rec: JobRecord, error: BaseException, now: float) -> tuple[JobRecord, list[Blob]]:
    """A pending job moved to failed with `error` (and its blob), without an attempt."""
    outcome = failure(error)
    failed = transition(
        rec, states.FAILED, now, error=ErrorInfo(outcome.error_type, outcome.error_message)
    )
    return failed, [(f"e:{rec.id}", outcome.data, None)]


def attempt_blob(rec: JobRecord, outcome: Outcome, now: float) -> Blob:
    """One entry of the attempt history: number, start, end, outcome, error and traceback."""
    entry: dict[str, Any] = {
        "number": rec.attempts,
        "run": rec.runs,
        "started_at": rec.started_at,
        "finished_at": now,
        "ok": outcome.ok,
        "cancelled": outcome.cancelled,
        "error": None,
    }
    if not outcome.ok and outcome.data is not None:
        entry["error"] = {
            "type": outcome.error_type,
            "message": outcome.error_message,
            "traceback": codec.error_traceback(outcome.data),
        }
    key = f"a:{rec.id}:{rec.attempts:06d}"
    return key, pickle.dumps(entry, codec.PROTOCOL), None
