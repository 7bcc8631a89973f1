"""Calls a job's function and turns whatever happens into an `Outcome`.

`call_job` runs a function and encodes its result or its exception as plain data that can
cross a pipe; it is shared by the thread executor and the child processes of the process
executor (and Dask's tasks).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import CoroutineType
from typing import Any

from nbjobs import codec
from nbjobs.errors import JobCancelled, PayloadLoadError, ResultNotPicklable
from nbjobs.records import JobRecord
from nbjobs.running import reporting
from nbjobs.store.blobs import write_value


@dataclass(slots=True)
class Outcome:
    """How an attempt ended, ready to store: a result blob or an error blob."""

    ok: bool
    data: bytes | None = None  # inline result bytes, or the error blob
    file: str | None = None  # result written as a file under blobs/
    error_type: str = ""
    error_message: str = ""
    cancelled: bool = False  # stopped at a cooperative point after a cancel
    progress: dict[str, Any] | None = None  # the last progress reported
    log: dict[str, Any] | None = None  # the final snapshot of the job's captured output


def failure(exc: BaseException) -> Outcome:
    type_name, message, blob = codec.encode_error(exc)
    return Outcome(False, blob, None, type_name, message, isinstance(exc, JobCancelled))


def invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """`fn(*args, **kwargs)`; a coroutine (from an `async def`) runs on its own event loop."""
    value = fn(*args, **kwargs)
    if type(value) is CoroutineType:
        import asyncio  # only async jobs need it; importing costs ~30 ms

        value = asyncio.run(value)
    return value


def call_job(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    blob_dir: Path | None,
    ctx: reporting.JobContext,
) -> Outcome:
    """Call `fn(*args, **kwargs)` here, inside `ctx`, and encode the result or the exception.

    A large result is written to a file under `blob_dir`; with None (the store's folder is
    not reachable from here) it stays inline, for the process that owns the job to store.
    """
    token = reporting.enter(ctx)
    try:
        value = invoke(fn, args, kwargs)
        outcome = _store_result(value, blob_dir, ctx.info.id)
    except BaseException as exc:
        if isinstance(exc, NameError):
            _explain_missing_global(fn, exc)
        outcome = failure(exc)
    finally:
        reporting.leave(token)
    log = ctx.log.snapshot() if ctx.log is not None and ctx.log.total else None
    if ctx.latest is None and log is None:
        return outcome
    o = outcome  # (dataclasses.replace costs ~10 µs: it was 5% of a trivial job's CPU)
    return Outcome(
        o.ok, o.data, o.file, o.error_type, o.error_message, o.cancelled, ctx.latest, log
    )


def _explain_missing_global(fn: Callable[..., Any], exc: NameError) -> None:
    """A function pickled by value (defined in the notebook) carries the globals it saw at
    its first submit: a global defined in a later cell is missing where it runs."""
    home = sys.modules.get(getattr(fn, "__module__", None) or "")
    if getattr(fn, "__globals__", None) is getattr(home, "__dict__", None):
        return  # imported from its module here: a NameError of its own
    name = getattr(fn, "__qualname__", "the job's function")
    exc.add_note(
        f"nbjobs: {name} was pickled with the globals it could see when it was first "
        f"submitted, and {exc.name!r} was not among them. If it is defined in a later cell, "
        "submit the job again (nbjobs pickles the function again once the missing global "
        "exists; a failed keyed job re-runs when its key is submitted again, a finished one "
        "with force=True). job.retry() re-runs the call as it was stored and fails the same "
        "way."
    )


def _store_result(value: Any, blob_dir: Path | None, job_id: str) -> Outcome:
    try:
        frames = codec.dumps(value)
    except Exception as exc:
        return failure(
            ResultNotPicklable(
                f"the job returned a {type(value).__name__} that cannot be pickled, so it "
                f"cannot be stored ({type(exc).__name__}: {exc}); return plain data instead"
            )
        )
    if blob_dir is None:
        return Outcome(True, frames.to_bytes())
    data, file = write_value(blob_dir, f"r:{job_id}", frames)
    return Outcome(True, data, file)


def load_failure(exc: Exception, where: str) -> Outcome:
    """The outcome of a job whose function or arguments cannot be loaded `where` it runs."""
    return failure(
        PayloadLoadError(
            f"the job's function or arguments could not be loaded in {where} "
            f"({type(exc).__name__}: {exc}); functions imported from your own modules must "
            "be importable there (from the notebook's folder and sys.path)"
        )
    )


def job_info(rec: JobRecord) -> reporting.CurrentJob:
    return reporting.CurrentJob(rec.id, rec.key, rec.name, rec.attempts)
