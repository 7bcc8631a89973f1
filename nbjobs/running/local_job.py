"""A job this process holds (`LocalJob`), and the interface of the executors that run it.

`Backend` is defined here, beside the job it takes, so that the running layer does not
import the executors (which import it): `nbjobs.executors` re-exports it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from nbjobs import states
from nbjobs.calls.retrying import Policy
from nbjobs.records import JobRecord


class OneShot:
    """A cheap one-shot event (a `threading.Event` costs a Condition per job).

    A waiter takes the lock and gives it back; Ctrl-C (a KeyboardInterrupt raised between
    the two) can leave it taken. The flag then still says it is set, and a waiter blocked
    meanwhile looks at the flag every `_RECHECK_S`: nobody waits forever for a set event.
    """

    __slots__ = ("_done", "_lock")

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()
        self._lock.acquire()

    def set(self) -> None:
        self._done = True
        if self._lock.locked():
            with contextlib.suppress(RuntimeError):  # released meanwhile by another set()
                self._lock.release()

    def is_set(self) -> bool:
        return self._done

    def wait(self, timeout: float | None = None) -> bool:
        """True once set; False if `timeout` seconds passed first."""
        if self._done:
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = _RECHECK_S if deadline is None else deadline - time.monotonic()
            if self._lock.acquire(timeout=max(0.0, min(_RECHECK_S, left))):
                self._lock.release()
                return True
            if self._done:
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False


_RECHECK_S = 1.0


class LocalJob:
    """A job this process is responsible for: its callable, and its latest record.

    `rec` is the newest state this process has queued for the store; the lock orders
    state changes made here (start, cancel) so that they reach the writer in order. No
    user code runs under it (a worker's heartbeat takes the lock of every job it holds):
    the retry policy of a failed attempt is asked before it is taken. `on_start` hooks
    (nbjobs' own) run under that lock when the job starts (one returning False cancels
    it); `on_done` hooks run once the outcome is committed. A success is recorded
    by the writer thread (`Runner.run`): between its return and that record, `rec` still
    says running and `returning` is True.
    """

    __slots__ = (
        "args",
        "attempt",
        "backend",
        "cancel_requested",
        "claimed",
        "done",
        "fn",
        "judging",
        "kwargs",
        "lock",
        "log_state",
        "on_done",
        "on_start",
        "payload",
        "policy",
        "prepare",
        "rec",
        "returned",
        "soft_deadline",
        "timed_out",
    )

    def __init__(
        self,
        rec: JobRecord,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        payload: tuple[bytes, bytes] | None = None,
    ) -> None:
        self.rec = rec
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.payload = payload  # (function bytes, argument bytes) for other processes
        self.lock = threading.Lock()
        self.done = OneShot()
        self.cancel_requested = False
        self.claimed = False  # a worker's claim already moved it to running in the store
        self.on_start: list[Callable[[], bool]] = []
        self.on_done: list[Callable[[], None]] = []
        self.policy: Policy | None = None
        # Run (until it succeeds) before an attempt's call, on the thread that starts it:
        # a detached worker's job unpickles its policy and call there (see worker._load).
        self.prepare: Callable[[], None] | None = None
        self.attempt = 0  # which attempt of this process is current; late outcomes are dropped
        self.returned = -1  # the attempt whose call returned (its success is on its way to the
        # store); -1: none, so a job claimed but not begun yet (attempt 0) holds its slot
        self.judging = 0  # the attempt ended by another thread, its retry policy being asked
        self.timed_out = False
        self.soft_deadline: float | None = None
        self.log_state: dict[str, Any] | None = None  # the job's output so far
        self.backend: Backend | None = None  # the executor running it (set by the store)

    @property
    def returning(self) -> bool:
        """Its attempt's call returned successfully and the writer thread is recording that:
        its outcome is decided (no time limit, cancel, interrupt or hand-back ends it now)."""
        return self.returned == self.attempt and self.rec.status == states.RUNNING

    @property
    def still_running(self) -> bool:
        """Running, its outcome not decided yet: it holds its slot, and a time limit, a
        cancel, an interrupt or a hand-back can still end it."""
        return self.rec.status == states.RUNNING and self.returned != self.attempt


class Backend(Protocol):
    """An executor: `name`, whether it `needs_pickle` (it runs the job elsewhere), whether
    it is `kernel_owned` (its jobs die with this process), its `address` (where it runs them
    when not on this machine, or None), and how it starts, resizes, stops and ends jobs."""

    name: str
    needs_pickle: bool
    kernel_owned: bool
    workers: int
    address: str | None

    def start(self, job: LocalJob) -> None: ...

    def resize(self, workers: int) -> None: ...

    def shutdown(self) -> None: ...

    def expire(self, job: LocalJob, attempt: int) -> None:
        """End attempt `attempt` of a job that ran past its time limit."""
        ...

    def cancel_running(self, job: LocalJob) -> bool:
        """Stop a running job of this executor (called with the job's lock held)."""
        ...
