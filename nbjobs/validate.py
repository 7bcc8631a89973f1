"""Checks of user input: each names the argument, the bad value and what is accepted."""

from __future__ import annotations

import contextlib
import datetime
import math
import numbers
import os
import re
import sys
import warnings
from collections.abc import Iterable
from typing import Any

from . import states
from .errors import InvalidArgument, InvalidArgumentType


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def timeout(value: Any, name: str = "timeout") -> float | None:
    """None (wait for ever) or a number of seconds >= 0."""
    return _seconds(value, name, zero=True)


def limit(value: Any, name: str) -> float | None:
    """None (no limit) or a number of seconds > 0."""
    return _seconds(value, name, zero=False)


def _seconds(value: Any, name: str, zero: bool) -> float | None:
    if value is None:
        return None
    # A wait may be endless; a job's limit may not (None is "no limit"; its record stays JSON).
    accepted = (
        "a number of seconds >= 0 or None" if zero else "a finite number of seconds > 0 or None"
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # NumPy's too
        raise InvalidArgumentType(
            f"{name} must be {accepted}, not {type(value).__name__} {_show(value)}"
        )
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or (not zero and seconds in (0, math.inf)):
        raise InvalidArgument(f"{name} must be {accepted}, not {value!r}")
    return seconds


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)([smhdw]))", re.ASCII)
LONGEST = 1000 * 365.25 * 86400  # seconds
DURATION_FORMS = (
    "seconds (a number > 0), a datetime.timedelta, or a str such as '30s', '5m', '1h30m', '7d'"
)


def duration(value: Any, name: str) -> float:
    """A length of time in seconds > 0: seconds, a `timedelta`, or "30s", "5m", "1h30m",
    "7d", "2w" (units s, m, h, d, w; a bare number is seconds).

    >>> duration("1h30m", "every")
    5400.0
    """
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, str):
        seconds = _parse_duration(value.strip().lower(), name)
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidArgumentType(
            f"{name} must be {DURATION_FORMS}, not {type(value).__name__} {_show(value)}"
        )
    if math.isnan(seconds) or math.isinf(seconds) or seconds <= 0:
        raise InvalidArgument(f"{name} must be {DURATION_FORMS}, not {_show(value)}")
    if seconds > LONGEST:  # past it, a date after it cannot be shown (datetime's year 9999)
        raise InvalidArgument(f"{name} must be at most 1000 years, not {_show(value)}")
    return seconds


def _parse_duration(text: str, name: str) -> float:
    with contextlib.suppress(ValueError):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(f"{name} must be {DURATION_FORMS}, not {_show(text)}")
    return sum(float(n) * _UNITS[u] for n, u in parts)


def key(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentType(
            f"key must be a str (an idempotency key such as 'fit-10k') or None, not "
            f"{type(value).__name__} {_show(value)}"
        )
    if not value:
        raise InvalidArgument("key must be a non-empty str or None, not ''")
    return value


def name(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not value:
        raise InvalidArgumentType(
            f"name must be a non-empty str or None, not {type(value).__name__} {_show(value)}"
        )
    return value


def tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, Iterable):
        out = (value,) if isinstance(value, str) else tuple(value)
        if all(isinstance(t, str) and t for t in out):
            return out
    raise InvalidArgumentType(
        f"tags must be a str or a list of non-empty str, not {type(value).__name__} {_show(value)}"
    )


def executor(value: Any, known: Iterable[str]) -> Any:
    """One of the executor names `known`, or a `dask.distributed.Client` (returned as is)."""
    names = tuple(known)
    if isinstance(value, str) and value in names:
        return value
    if is_dask_client(value):
        return value
    accepted = ", ".join(repr(n) for n in names)
    raise InvalidArgument(
        f"executor must be one of {accepted} or a dask.distributed.Client, not {_show(value)}"
    )


def is_dask_client(value: Any) -> bool:
    """Whether `value` is a `dask.distributed.Client`, told without importing dask."""
    return any(
        cls.__name__ == "Client" and cls.__module__.startswith("distributed.")
        for cls in type(value).__mro__
    )


def statuses(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = (value,) if isinstance(value, str) else value
    if isinstance(items, Iterable):
        items = tuple(items)
        bad = [s for s in items if s not in states.STATES]
        if not bad and items:
            return items
    else:
        bad = [value]
    raise InvalidArgument(
        f"status must be one of {', '.join(states.STATES)} (or a list of them), "
        f"not {_show(bad[0] if bad else value)}"
    )


def positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name} must be an int >= 1, not {type(value).__name__}")
    if value < 1:
        raise InvalidArgument(f"{name} must be an int >= 1, not {value}")
    return int(value)


def flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentType(f"{name} must be True or False, not {_show(value)}")
    return value


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn, pointing at the user's line (the first caller outside nbjobs)."""
    level = 1
    frame = sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level)
