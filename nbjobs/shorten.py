"""Short texts of values for one line of a view: argument summaries, previews, hover texts.

Built on `reprlib` with two changes: dicts keep their insertion order (reprlib sorts
their keys), and NumPy scalars read as the numbers they hold (`0.1`, not `np.float64(0.1)`).
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable
from itertools import islice
from typing import Any

#: The whole value shown on hover is cut at this many characters.
HOVER_LIMIT = 4000


class _Repr(reprlib.Repr):
    def repr_dict(self, x: dict[Any, Any], level: int) -> str:
        if not x:
            return "{}"
        if level <= 0:
            return "{...}"
        pieces = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in islice(x.items(), self.maxdict)
        ]
        if len(x) > self.maxdict:
            pieces.append("...")
        return "{" + ", ".join(pieces) + "}"

    def repr_instance(self, x: Any, level: int) -> str:
        if _numpy_scalar(x):
            return self.repr1(x.item(), level)
        return str(super().repr_instance(x, level))


def _numpy_scalar(x: Any) -> bool:
    return type(x).__module__ == "numpy" and getattr(x, "ndim", None) == 0


def _make(text: int, items: int, level: int) -> _Repr:
    r = _Repr()  # keyword arguments to Repr() need Python 3.12
    r.maxstring = r.maxother = text
    r.maxlist = r.maxdict = r.maxtuple = r.maxset = r.maxfrozenset = r.maxdeque = items
    r.maxarray = items
    r.maxlevel = level
    return r


_ARG = _make(24, 4, 2)  # one argument of a row's summary
_PREVIEW = _make(60, 6, 6)  # a result in a row
_HOVER = _make(HOVER_LIMIT, 200, 6)  # a result's hover text


def cut(text: str, limit: int) -> str:
    """`text`, ending in `…` when it had to be cut to `limit` characters.

    >>> cut("ValueError: the file is missing", 16), cut("short", 16)
    ('ValueError: the…', 'short')
    """
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


def _safe(r: _Repr, value: Any) -> str:
    try:
        return str(r.repr(value))
    except Exception as exc:  # a user object whose __repr__ raises
        return f"<{type(value).__name__}: repr failed ({type(exc).__name__})>"


def short_repr(value: Any, limit: int = 80) -> str:
    """`repr(value)`, abbreviated (long containers and strings are cut), at most `limit` chars.

    >>> short_repr(list(range(100)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> short_repr({"b": 1, "a": 2})
    "{'b': 1, 'a': 2}"
    """
    return cut(_safe(_PREVIEW, value), limit)


def hover_repr(value: Any) -> str:
    """The longer `repr(value)` shown on hover: up to 200 items, `HOVER_LIMIT` characters.

    >>> hover_repr(list(range(8)))
    '[0, 1, 2, 3, 4, 5, 6, 7]'
    """
    return cut(_safe(_HOVER, value), HOVER_LIMIT)


def arguments(args: Iterable[Any], kwargs: dict[str, Any], limit: int = 60) -> str:
    """A short summary of a call's arguments, to tell the jobs of a sweep apart.

    Jobs among the arguments show as `<job NAME>` (their repr would read the store).

    >>> arguments((0.1,), {"window": 20})
    '0.1, window=20'
    >>> arguments(("x" * 100,), {})
    "'xxxxxxxxx...xxxxxxxxxx'"
    """
    shown = [_argument(a) for a in args]
    shown += [f"{k}={_argument(v)}" for k, v in kwargs.items()]
    return cut(", ".join(shown), limit)


_PLAIN = frozenset({int, float, bool, str, type(None)})


def _argument(value: Any) -> str:
    if type(value) in _PLAIN:  # most arguments of a sweep: reprlib's dispatch costs 3x more
        text = repr(value)
        if len(text) <= _ARG.maxstring:
            return text
    if getattr(type(value), "__job_ref__", None) is not None:  # a Job handle
        return f"<job {getattr(value, 'name', '?')}>"
    return _safe(_ARG, value)
