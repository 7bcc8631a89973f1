"""What a job can say about itself while it runs: `progress()`, `track()`, `current_job()`.

Inside a job these write (throttled) to the job's record; outside a job they do nothing
and cost next to nothing. `progress()` and `track()` are also the cooperative points at
which a thread job that was cancelled stops.
"""

from __future__ import annotations

import contextvars
import math
import numbers
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple, TypeVar

from nbjobs import validate
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import InvalidArgument, InvalidArgumentType
from nbjobs.running.capture import LogBuffer

T = TypeVar("T")

#: Seconds between two progress writes of one job (the last value is always written).
MIN_INTERVAL = 0.25


class CurrentJob(NamedTuple):
    """Who is running: give `key` and `attempt` to external services as idempotency keys."""

    id: str
    key: str | None
    name: str
    attempt: int


class JobContext:
    """The running job's side of reporting; one per attempt, set by the runner."""

    __slots__ = (
        "_checkpoint",
        "_clock",
        "_first",
        "_last_write",
        "_send",
        "info",
        "latest",
        "log",
        "make_log",
    )

    def __init__(
        self,
        info: CurrentJob,
        send: Callable[[dict[str, Any]], None],
        checkpoint: Callable[[], None] = lambda: None,
        clock: Clock = SYSTEM,
    ) -> None:
        self.info = info
        self._send = send
        self._checkpoint = checkpoint
        self._clock = clock
        self._first: tuple[float, float] | None = None
        self._last_write = float("-inf")
        self.latest: dict[str, Any] | None = None
        self.log: LogBuffer | None = None
        # Made on the first write when set (most jobs print nothing: no buffer for them).
        self.make_log: Callable[[], LogBuffer] | None = None

    def report(
        self, current: float, total: float | None, message: str | None, unit: str | None = None
    ) -> None:
        self._checkpoint()
        now = self._clock.now()
        mono = self._clock.monotonic()
        if self._first is None:
            self._first = (mono, current)
        start_t, start_v = self._first
        rate = (current - start_v) / (mono - start_t) if mono > start_t else None
        self.latest = {
            "current": current,
            "total": total,
            "message": message,
            "rate": rate,
            "updated_at": now,
            "unit": unit,
        }
        if mono - self._last_write >= MIN_INTERVAL:
            self._last_write = mono
            self._send(self.latest)


_CONTEXT: contextvars.ContextVar[JobContext | None] = contextvars.ContextVar(
    "nbjobs_job", default=None
)


def enter(ctx: JobContext) -> contextvars.Token[JobContext | None]:
    return _CONTEXT.set(ctx)


def leave(token: contextvars.Token[JobContext | None]) -> None:
    _CONTEXT.reset(token)


def current_log() -> LogBuffer | None:
    """The log of the job running in this thread (or task), if any."""
    ctx = _CONTEXT.get()
    if ctx is None:
        return None
    if ctx.log is None and ctx.make_log is not None:
        ctx.log = ctx.make_log()
    return ctx.log


def current_job() -> CurrentJob | None:
    """The job this code runs in (id, key, name, attempt), or None outside a job.

    >>> def charge(order):
    ...     me = nbjobs.current_job()
    ...     payments.charge(order, idempotency_key=f"{me.key}-{me.attempt}")  # doctest: +SKIP
    """
    ctx = _CONTEXT.get()
    return ctx.info if ctx is not None else None


def progress(current: float, total: float | None = None, message: str | None = None) -> None:
    """Report how far the running job is; shown as `job.progress` and in the panel.

    Writes are throttled (a few per second at most, the last value always kept), so it is
    fine to call in a tight loop. Outside a job it does nothing.

    >>> for i, row in enumerate(rows):          # doctest: +SKIP
    ...     nbjobs.progress(i + 1, len(rows), message=f"row {i + 1}")
    """
    ctx = _CONTEXT.get()
    if ctx is None:
        return
    value = _number(current, "current")
    if not math.isfinite(value):
        raise InvalidArgument(f"current must be a finite number, not {current!r}")
    if message is not None:
        message = validate.message(message if isinstance(message, str) else str(message), "message")
    ctx.report(value, _total(total), message)


def track(
    iterable: Iterable[T],
    total: float | None = None,
    description: str | None = None,
    unit: str = "it",
) -> Iterator[T]:
    """Iterate like tqdm, reporting progress: `for x in nbjobs.track(items): ...`.

    `total` defaults to `len(iterable)` when it has one; `unit` names what is counted in
    the rate the job's widget shows (`2.2 file/s`). Outside a job it just iterates.

    >>> for path in nbjobs.track(paths, unit="file"):   # doctest: +SKIP
    ...     convert(path)
    """
    ctx = _CONTEXT.get()
    if ctx is None:
        yield from iterable
        return
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    total = _total(total)
    if description is not None:
        description = validate.message(str(description), "description")
    shown = None if unit == "it" else validate.message(str(unit), "unit")
    ctx.report(0, total, description, shown)
    for done, item in enumerate(iterable, 1):
        yield item
        ctx.report(done, total, description, shown)


def _number(value: Any, name: str) -> float:
    """A plain int or float (a NumPy number becomes one: records hold plain values only)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentType(f"{name} must be a number, not {type(value).__name__}")
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _total(total: Any) -> float | None:
    """The total as a plain number; an endless or NaN total is unknown (None), as in tqdm."""
    if total is None:
        return None
    value = _number(total, "total")
    return value if math.isfinite(value) else None
