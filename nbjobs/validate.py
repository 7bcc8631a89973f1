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

from nbjobs import states
from nbjobs.errors import InvalidArgument, InvalidArgumentType


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
        amount = _float(value)
    else:
        raise InvalidArgumentType(
            f"{name} must be {_forms(zero, none)}, not {type(value).__name__} {_show(value)}"
        )
    if math.isnan(amount) or amount < 0 or (amount == 0 and not zero):
        raise InvalidArgument(f"{name} must be {_forms(zero, none)}, not {_show(value)}")
    # Only an explicit math.inf waits for ever; an int too large for a float is refused.
    if endless and value == math.inf:
        return amount
    if amount > LONGEST:  # past it, a date after it cannot be shown (datetime's year 9999)
        also = " (or None)" if none else ""
        raise InvalidArgument(f"{name} must be at most 1000 years{also}, not {_show(value)}")
    return amount


def _forms(zero: bool, none: bool) -> str:
    text = f"a duration {'>= 0' if zero else '> 0'}: {DURATION_FORMS}"
    return text + " (or None)" if none else text


def _float(value: Any) -> float:
    """`float(value)`; an int too large for a float is infinite (then refused as too long)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _parse_duration(text: str) -> float:
    """The seconds in `text`; NaN when it is not a duration (the caller says what is)."""
    with contextlib.suppress(ValueError):
        return float(text)
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return math.nan
    return sum(float(n) * _UNITS[u] for n, u in parts)


#: The longest key, name or tag, in characters: each is shown in listings and panel rows,
#: and a key is written with every write of its job (a 10 MB key made a 60 MB WAL).
TEXT_MAX = 1000
#: The most tags a job may carry (each is a row of the tag index).
TAGS_MAX = 100
#: The shape of a generated job id (`calls.new_id`). A key of this shape is refused, so
#: no string is ever both a job's key and another job's id, without a lookup at submit.
_ID_SHAPE = re.compile(r"[0-9a-f]{16}", re.ASCII)
_TEXT_RULE = f"a non-empty str of at most {TEXT_MAX:,} characters, without NUL characters"


def _unstorable(value: str) -> str | None:
    """Why `value` cannot be stored as a key, name or tag (None: it can)."""
    if len(value) > TEXT_MAX:
        return f"it is {len(value):,} characters long"
    if "\0" in value:
        return "it contains a NUL character"
    return _unencodable(value)


def _unencodable(value: str) -> str | None:
    """Why `value` cannot be written as UTF-8 (None: it can): a lone surrogate."""
    if value.isascii():
        return None
    try:
        value.encode()
    except UnicodeEncodeError as exc:
        return (
            f"it contains a lone surrogate ({value[exc.start]!r} at position {exc.start}), "
            "which UTF-8 cannot encode"
        )
    return None


def text(value: Any, name: str) -> str:
    """A non-empty str that can be stored and shown: a job's name, a tag, a schedule's name.

    >>> text("fit", "name")
    'fit'
    """
    if not isinstance(value, str) or not value:  # "a non-empty str" is the type asked for
        raise InvalidArgumentType(
            f"{name} must be {_TEXT_RULE}, not {type(value).__name__} {_show(value)}"
        )
    problem = _unstorable(value)
    if problem:
        raise InvalidArgument(f"{name} must be {_TEXT_RULE}, not {_show(value)}: {problem}")
    return value


def key(value: Any) -> str | None:
    """An idempotency key (None: no key): `text`, and not of the shape of a job id.

    >>> key("fit-10k")
    'fit-10k'
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentType(
            f"key must be a str (an idempotency key such as 'fit-10k') or None, not "
            f"{type(value).__name__} {_show(value)}"
        )
    if not value:
        raise InvalidArgument("key must be a non-empty str or None, not ''")
    problem = _unstorable(value)
    if problem:
        raise InvalidArgument(f"key must be {_TEXT_RULE} or None, not {_show(value)}: {problem}")
    if len(value) == 16 and _ID_SHAPE.fullmatch(value):
        raise InvalidArgument(
            f"key {value!r} has the shape of a job id (16 lowercase hex digits), so get() "
            f"and forget() could not tell it from one; give it a prefix, such as 'run-{value}'"
        )
    return value


def lookup(value: Any, name: str, what: str) -> str:
    """A str to look up (a job's id or key, a name, a tag): any str UTF-8 can encode.

    >>> lookup("fit-10k", "id_or_key", "a job id or key")
    'fit-10k'
    """
    if not isinstance(value, str):
        raise InvalidArgumentType(
            f"{name} must be {what} (a str), not {type(value).__name__} {_show(value)}"
        )
    problem = _unencodable(value)
    if problem:
        raise InvalidArgument(f"{name} must be {what} (a str), not {_show(value)}: {problem}")
    return value


def filters(name: Any, tag: Any) -> None:
    """Check the name and tag filters of a listing (None: any).

    >>> filters("fit", None)
    """
    if name is not None:
        lookup(name, "name", "a job name or None")
    if tag is not None:
        lookup(tag, "tag", "a tag or None")


def message(value: str, name: str) -> str:
    """A progress message: any text UTF-8 can encode (the panel and the terminal show it),
    its first `TEXT_MAX` characters kept.

    >>> message("row 3", "message")
    'row 3'
    """
    problem = _unencodable(value)
    if problem:
        raise InvalidArgument(
            f"{name} must be text UTF-8 can encode, not {_show(value)}: {problem}"
        )
    return value if len(value) <= TEXT_MAX else value[: TEXT_MAX - 1] + "…"


def name(value: Any, default: str) -> str:
    if value is None:
        return default
    return text(value, "name")


def tags(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, Iterable):
        out = (value,) if isinstance(value, str) else tuple(value)
        if len(out) > TAGS_MAX:
            raise InvalidArgument(f"tags must be at most {TAGS_MAX} tags, not {len(out):,}")
        if all(isinstance(t, str) for t in out):
            for t in out:
                text(t, "tags")
            return out
    raise InvalidArgumentType(
        f"tags must be a str or a list of non-empty str, not {type(value).__name__} {_show(value)}"
    )


def folder(value: Any, name: str = "store") -> str | os.PathLike[str]:
    """A folder path a file system can take: a str or PathLike, no NUL, encodable."""
    if not isinstance(value, str | os.PathLike):
        raise InvalidArgumentType(
            f"{name} must be a folder path (str or pathlib.Path) or an nbjobs.Store, "
            f"not {type(value).__name__}"
        )
    path = os.fspath(value)
    if not isinstance(path, str):
        raise InvalidArgumentType(f"{name} must be a folder path as str, not {_show(path)}")
    try:
        os.fsencode(path)  # a surrogate escape (a file name that is not UTF-8) is fine
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{name} must be a folder path the file system can take, not {_show(path)}: "
            f"it contains a lone surrogate at position {exc.start}"
        ) from None
    if "\0" in path:
        raise InvalidArgument(
            f"{name} must be a folder path the file system can take, not {_show(path)}: "
            "it contains a NUL character"
        )
    return value


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


#: The largest count SQLite stores (a `limit=` or `offset=` beyond it cannot be asked for).
INT_MAX = 2**63 - 1
#: The most threads or processes a pool may have: past it a machine runs out of threads
#: (`configure(workers=10**20)` left every later submit unable to start one).
WORKERS_MAX = 1024


def positive_int(value: Any, name: str, most: int = INT_MAX) -> int:
    """An int from 1 to `most`.

    >>> positive_int(4, "workers", WORKERS_MAX)
    4
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(
            f"{name} must be an int from 1 to {most:,}, not {type(value).__name__} {_show(value)}"
        )
    count = int(value)
    if not 1 <= count <= most:
        raise InvalidArgument(f"{name} must be an int from 1 to {most:,}, not {_show(value)}")
    return count


def choice(value: Any, name: str, accepted: Iterable[Any]) -> Any:
    """`value` if it is one of `accepted`, else `InvalidArgument` naming them.

    >>> choice("map", "group_by", ("map", "tag", "name", None))
    'map'
    """
    options = tuple(accepted)
    if isinstance(value, str | None) and value in options:
        return value
    shown = ", ".join(repr(o) for o in options)
    raise InvalidArgument(f"{name} must be one of {shown}, not {_show(value)}")


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


def warn_once_per_line(message: str) -> None:
    """`warn`, but only the first time for the user's line that called nbjobs: Python's
    own once-per-line filter compares the text too, and this one names sizes."""
    frame = sys._getframe(0)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
    site = ("", 0) if frame is None else (frame.f_code.co_filename, frame.f_lineno)
    if site in _WARNED_LINES:
        return
    _WARNED_LINES.add(site)
    warn(message)


_WARNED_LINES: set[tuple[str, int]] = set()
