"""Runs one attempt of a job held in this process: start, call, store the outcome."""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable
from typing import Any

from . import codec, states
from .errors import ResultNotPicklable
from .records import ErrorInfo, JobRecord, transition
from .store import Storage
from .writer import Blob, Cas


class LocalJob:
    """A job this process is responsible for: its callable, and its latest record.

    `rec` is the newest state this process has queued for the store; the lock orders
    state changes made here (start, cancel) so that they reach the writer in order.
    """

    __slots__ = ("args", "cancel_requested", "done", "fn", "kwargs", "lock", "rec")

    def __init__(
        self,
        rec: JobRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.rec = rec
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.cancel_requested = False


Finished = Callable[[LocalJob, BaseException | None], None]


class Runner:
    """Executes `LocalJob`s for the executors of one store, in whatever thread calls `run`."""

    def __init__(self, storage: Storage, owner: str, on_finished: Finished) -> None:
        self.storage = storage
        self.owner = owner
        self.on_finished = on_finished

    def run(self, local: LocalJob) -> None:
        """Run one attempt of `local` to completion and queue its outcome for the store."""
        if not self._begin(local):
            return
        try:
            value = local.fn(*local.args, **local.kwargs)
            if inspect.iscoroutine(value):
                value = asyncio.run(value)
        except BaseException as exc:
            self._fail(local, exc)
            return
        self._succeed(local, value)

    def _begin(self, local: LocalJob) -> bool:
        with local.lock:
            if local.cancel_requested or local.rec.status != states.PENDING:
                return False
            rec = transition(local.rec, states.RUNNING, self.storage.clock.now(), owner=self.owner)
            local.rec = rec
            self.storage.writer.put(
                Cas(rec, states.PENDING), lambda _r, err: _lost_start(local, err)
            )
        return True

    def _succeed(self, local: LocalJob, value: Any) -> None:
        key = f"r:{local.rec.id}"
        try:
            frames = codec.dumps(value)
        except Exception as exc:
            err = ResultNotPicklable(
                f"the job returned a {type(value).__name__} that cannot be pickled, so it cannot "
                f"be stored ({type(exc).__name__}: {exc}); return plain data instead"
            )
            self._fail(local, err)
            return
        data, file = self.storage.prepare_value(key, frames)
        self._finish(local, states.SUCCEEDED, {"has_result": True}, (key, data, file))

    def _fail(self, local: LocalJob, exc: BaseException) -> None:
        type_name, message, blob = codec.encode_error(exc)
        changes = {"error": ErrorInfo(type_name, message)}
        self._finish(local, states.FAILED, changes, (f"e:{local.rec.id}", blob, None))

    def _finish(
        self,
        local: LocalJob,
        status: str,
        changes: dict[str, Any],
        blob: Blob,
    ) -> None:
        with local.lock:
            rec = transition(local.rec, status, self.storage.clock.now(), **changes)
            local.rec = rec
            self.storage.writer.put(
                Cas(rec, states.RUNNING, [blob]), lambda _r, err: self.on_finished(local, err)
            )


def _lost_start(local: LocalJob, err: BaseException | None) -> None:
    # Someone else (another process) changed the job before it started here: stop at
    # the next cooperative point; its outcome will be dropped by the final compare-and-set.
    if err is not None:
        local.cancel_requested = True
