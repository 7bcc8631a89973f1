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


#: A length of time as users may give it: seconds, a `timedelta`, or a str such as "5m".
Duration = float | datetime.timedelta | str
#: The forms every duration option takes (timeout, soft_timeout, backoff, idle_timeout,
#: older_than, every, and the timeouts of waits), read by one parser, `seconds`.
DURATION_FORMS = "seconds, a datetime.timedelta, or a str such as '30s', '5m', '1h30m', '7d'"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)([smhdw]))", re.ASCII)
LONGEST = 1000 * 365.25 * 86400  # seconds


def timeout(value: Any, name: str = "timeout") -> float | None:
    """How long a wait may last: None (for ever) or a duration >= 0 (0 polls once)."""
    return None if value is None else seconds(value, name, zero=True, endless=True, none=True)


def limit(value: Any, name: str) -> float | None:
    """A time limit: None (no limit) or a duration > 0.

    >>> limit("5m", "timeout")
    300.0
    """
    return None if value is None else seconds(value, name, none=True)


def duration(value: Any, name: str) -> float:
    """A length of time > 0 (a schedule's interval, a purge's age).

    >>> duration("1h30m", "every")
    5400.0
    """
    return seconds(value, name)


def delay(value: Any, name: str) -> float:
    """A wait between attempts: a duration >= 0."""
    return seconds(value, name, zero=True)


def seconds(
    value: Any, name: str, *, zero: bool = False, endless: bool = False, none: bool = False
) -> float:
    """The one reader of durations: seconds (int or float), a `timedelta`, or a str of a
    number of seconds or of amounts with units s, m, h, d, w ("30s", "5m", "1h30m", "7d",
    "2w"). It must be > 0 (>= 0 with `zero`) and finite (unless `endless`), and at most 1000
    years; errors name `name`, the value and the accepted forms (`none`: None too).

    >>> seconds(datetime.timedelta(minutes=2), "backoff")
    120.0
    """
    if isinstance(value, datetime.timedelta):
        amount = value.total_seconds()
    elif isinstance(value, str):
        amount = _parse_duration(value.strip().lower())
    elif isinstance(value, numbers.Real) and not isinstance(value, bool):  # NumPy's too
        amount = float(value)
    else:
        raise InvalidArgumentType(
            f"{name} must be {_forms(zero, none)}, not {type(value).__name__} {_show(value)}"
        )
    if math.isnan(amount) or amount < 0 or (amount == 0 and not zero):
        raise InvalidArgument(f"{name} must be {_forms(zero, none)}, not {_show(value)}")
    if math.isinf(amount) and endless:
        return amount
    if amount > LONGEST:  # past it, a date after it cannot be shown (datetime's year 9999)
        raise InvalidArgument(f"{name} must be at most 1000 years, not {_show(value)}")
    return amount


def _forms(zero: bool, none: bool) -> str:
    text = f"a duration {'>= 0' if zero else '> 0'}: {DURATION_FORMS}"
    return text + " (or None)" if none else text


def _parse_duration(text: str) -> float:
    """The seconds in `text`; NaN when it is not a duration (the caller says what is)."""
    with contextlib.suppress(ValueError):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return math.nan
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
