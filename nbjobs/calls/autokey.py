"""Automatic idempotency keys: ``key=nbjobs.auto`` names a job after the call itself.

The key hashes a canonical form of the call, never raw pickle bytes: cloudpickle bytes of a
notebook function embed the cell's file name (``/tmp/ipykernel_<pid>/...``) and pickles of sets
follow PYTHONHASHSEED, so both change across a kernel restart. Re-running an unchanged cell after
a restart gives the same key; editing the function or changing an argument gives another.

The canonical form itself (and the lazy imports of NumPy, pandas and joblib it needs) is
nbjobs/calls/canonical.py; this module builds keys and argument digests from it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, final

from nbjobs.calls.canonical import LEN, Canon, Unhashable
from nbjobs.errors import InvalidArgumentType

# Hashed into every key, so it never follows the module: it still names where 0.1 kept it.
_SCHEME: Final = b"nbjobs.autokey/1"


@final
class AutoKey:
    """The type of `auto`, for annotations (``key: str | AutoKey | None``).

    Its one instance, `auto`, survives pickling and copying as itself.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "nbjobs.auto"

    def __reduce__(self) -> str:
        return "auto"


#: Pass ``key=nbjobs.auto`` to `submit` to derive the key from the call (see `auto_key`).
auto: Final = AutoKey()


def auto_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The idempotency key that ``key=nbjobs.auto`` gives the call ``fn(*args, **kwargs)``.

    Returns ``"auto:<qualname>:<32 hex digits>"``. The digest covers the function's module,
    qualified name, source text (its bytecode when there is no source), defaults, closure and
    the notebook functions it calls by name; and the arguments, bound to the function's
    parameters (so ``f(1, b=2)`` and ``f(1, 2)`` agree), hashed by value: dict and set order
    do not matter, a list differs from a tuple, NumPy arrays and pandas objects hash their
    data. The values of global variables the function reads are not part of the key: pass
    them as arguments. The key is the same in every process and after a kernel restart.

    Raises `InvalidArgumentType`, naming the argument, when a value cannot be hashed (it can
    be neither traversed nor pickled); pass an explicit ``key=`` then.

    >>> def fit(rows, alpha=0.1):
    ...     return sum(rows) * alpha
    >>> auto_key(fit, ([1, 2, 3],), {})  # doctest: +ELLIPSIS
    'auto:fit:...'
    >>> auto_key(fit, ([1, 2, 3],), {}) == auto_key(fit, ([1, 2, 3],), {"alpha": 0.1})
    True
    """
    canon = Canon()
    canon.token(b"scheme", _SCHEME)
    try:
        canon.callable_(fn)
    except Unhashable as exc:
        raise InvalidArgumentType(_cannot_hash("the function", exc)) from exc
    for name, value in _arguments(fn, args, kwargs):
        canon.text(b"arg", name)
        try:
            canon.value(value)
        except Unhashable as exc:
            raise InvalidArgumentType(_cannot_hash(f"argument {name!r}", exc)) from exc
    return f"auto:{_label(fn)}:{canon.hexdigest()}"


def arguments_digest(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> str | None:
    """A restart-stable digest of the call's arguments only, or None if one cannot be hashed.

    Used to warn when a key is resubmitted with other arguments.

    >>> arguments_digest(max, (1, 2), {}) == arguments_digest(max, (1, 2), {})
    True
    """
    canon = _ARGUMENTS.copy()
    try:
        for name, value in _arguments(fn, args, kwargs):
            canon.text(b"arg", name)
            canon.value(value)
    except Unhashable:
        return None
    return canon.hexdigest()


class CallDigests:
    """Keys and argument digests of many calls of one function (the items of a map).

    The function and the keyword arguments every call shares are hashed once, here; each
    call then hashes only its own positional arguments, continuing from a copy of that
    state. A map over 1,000 items that share a 100 MB array hashes the array once.

    >>> digests = CallDigests(pow, {})
    >>> digests.key((2, 10), "item 0")[0]  # doctest: +ELLIPSIS
    'auto:pow:...'
    """

    def __init__(self, fn: Callable[..., Any], shared: dict[str, Any]) -> None:
        self._fn = fn
        self._function: Canon | None = None  # hashed on the first automatic key
        self._args = Canon()
        self._args.token(b"scheme", _SCHEME)
        self._args.token(b"map call")
        self._shared_error: Unhashable | None = None
        try:
            self._args.value(shared)
        except Unhashable as exc:
            self._shared_error = exc

    def arguments(self, args: tuple[Any, ...]) -> str | None:
        """The digest of one call's arguments (shared and own), or None if one cannot be hashed."""
        try:
            return self._arguments(args)
        except Unhashable:
            return None

    def key(self, args: tuple[Any, ...], where: str) -> tuple[str, str]:
        """(automatic key, arguments digest) of one call; `where` names the call in errors.

        Raises `InvalidArgumentType` naming the value that cannot be hashed.
        """
        if self._function is None:
            self._function = Canon()
            self._function.token(b"scheme", _SCHEME)
            try:
                self._function.callable_(self._fn)
            except Unhashable as exc:
                raise InvalidArgumentType(_cannot_hash("the function", exc)) from exc
        if self._shared_error is not None:
            what = "the keyword arguments shared by every item"
            raise InvalidArgumentType(_cannot_hash(what, self._shared_error))
        try:
            digest = self._arguments(args)
        except _UnhashableArgument as exc:
            what = f"argument {exc.index}"
            raise InvalidArgumentType(f"{where}: {_cannot_hash(what, exc)}") from exc
        canon = self._function.copy()
        canon.text(b"call", digest)
        return f"auto:{_label(self._fn)}:{canon.hexdigest()}", digest

    def _arguments(self, args: tuple[Any, ...]) -> str:
        if self._shared_error is not None:
            raise self._shared_error
        canon = self._args.copy()
        canon.token(b"args", LEN.pack(len(args)))
        for i, value in enumerate(args):
            try:
                canon.value(value)
            except Unhashable as exc:
                raise _UnhashableArgument(i, exc) from exc
        return canon.hexdigest()


class _UnhashableArgument(Unhashable):
    """Positional argument `index` of a call cannot be hashed."""

    def __init__(self, index: int, cause: Unhashable) -> None:
        super().__init__(str(cause))
        self.index = index


def _cannot_hash(what: str, exc: Unhashable) -> str:
    return (
        f"key=nbjobs.auto cannot hash {what}: {exc}; pass an explicit key='...' instead, "
        "or make the value picklable"
    )


def _label(fn: Callable[..., Any]) -> str:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(getattr(fn, "__qualname__", None) or type(fn).__qualname__)


def _arguments(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Iterable[tuple[str, Any]]:
    """(parameter, value) pairs in the signature's order (defaults filled in, as
    `inspect.BoundArguments.apply_defaults` gives them); the raw call when there is none."""
    sig, params = _shape(fn)
    if not kwargs and params is not None and len(args) <= len(params):
        # The usual keyed submit: positional arguments of a plain signature. Binding them
        # here gives the same pairs as `sig.bind` at a tenth of its cost.
        pairs = [(name, value) for (name, _), value in zip(params, args, strict=False)]
        for name, default in params[len(args) :]:
            if default is inspect.Parameter.empty:
                break  # a required argument is missing: let `bind` say so
            pairs.append((name, default))
        else:
            return pairs
    if sig is None:
        return _raw_call(args, kwargs)
    try:
        bound = sig.bind(*args, **kwargs)
    except (TypeError, ValueError):
        return _raw_call(args, kwargs)
    bound.apply_defaults()
    return bound.arguments.items()


def _raw_call(args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, Any]]:
    return [("*args", tuple(args)), ("**kwargs", dict(kwargs))]


_Shape = tuple[inspect.Signature | None, tuple[tuple[str, Any], ...] | None]
_SHAPES: weakref.WeakKeyDictionary[Callable[..., Any], _Shape] = weakref.WeakKeyDictionary()
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _shape(fn: Callable[..., Any]) -> _Shape:
    """The function's signature (None if it has none) and, when every parameter can be
    passed by position, their (name, default) pairs; once per function object
    (`inspect.signature` costs tens of µs)."""
    try:
        return _SHAPES[fn]
    except (KeyError, TypeError):
        pass
    try:
        sig: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    params = None
    if sig is not None and all(p.kind in _POSITIONAL for p in sig.parameters.values()):
        params = tuple((p.name, p.default) for p in sig.parameters.values())
    shape = (sig, params)
    with contextlib.suppress(TypeError):  # not weak-referenceable
        _SHAPES[fn] = shape
    return shape


_ARGUMENTS = Canon()  # every argument digest starts with the scheme
_ARGUMENTS.token(b"scheme", _SCHEME)
