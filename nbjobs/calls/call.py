"""A submitted call, before it becomes a job: its options, its id, its pickled payload."""

from __future__ import annotations

import functools
import os
import random
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

from nbjobs import codec, validate
from nbjobs.calls.autokey import AutoKey, CallDigests, auto
from nbjobs.errors import InvalidArgument, InvalidArgumentType, PayloadNotPicklable

#: What `map(..., key=...)` accepts: no keys, automatic keys, a prefix, or a function of
#: the job's arguments (as the function gets them) that returns the key.
MapKey = str | AutoKey | Callable[..., str] | None

_MAP_KEY_FORMS = (
    "None, nbjobs.auto, a str prefix P (keys 'P/0', 'P/1', ... in input order) or a "
    "callable that takes a job's arguments (its item and the shared keyword arguments) and "
    "returns its key (a str)"
)


def map_key(key: Any) -> MapKey:
    """Check the form of a map's `key` (its values are computed per item by `map_keys`)."""
    if key is None or key is auto or callable(key):
        return key  # type: ignore[no-any-return]
    if isinstance(key, str):
        return validate.key(key)
    raise InvalidArgumentType(f"key must be {_MAP_KEY_FORMS}, not {type(key).__name__}")


def map_keys(
    key: MapKey, fn: Callable[..., Any], shared: dict[str, Any], calls: list[tuple[Any, ...]]
) -> list[tuple[str | None, str | None]]:
    """(key, arguments digest) of each call `fn(*call, **shared)` of a map.

    `key` is checked by `map_key` first. The function and `shared` are hashed once for
    the whole map, not once per item. Two items with one key are one job: they must be
    the same call (`InvalidArgument` otherwise, naming both).
    """
    if key is None:
        return [(None, None)] * len(calls)
    digests = CallDigests(fn, shared)
    out: list[tuple[str | None, str | None]] = []
    first: dict[str, int] = {}
    digest: str | None
    for i, args in enumerate(calls):
        if isinstance(key, AutoKey):
            name, digest = digests.key(args, f"item {i}")
        else:
            name = (
                _item_key(f"{key}/{i}", i)
                if isinstance(key, str)
                else called_key(key, args, shared, i)
            )
            digest = digests.arguments(args)
        seen = first.setdefault(name, i)
        if seen != i and out[seen][1] != digest:
            raise InvalidArgument(
                f"key: item {seen} and item {i} both have the key {name!r:.80} but different "
                "arguments; each job of a map needs its own key"
            )
        out.append((name, digest))
    return out


def _item_key(name: str, item: int) -> str:
    try:
        checked = validate.key(name)
    except InvalidArgument as exc:
        raise type(exc)(f"item {item}: {exc}") from None
    assert checked is not None
    return checked


def called_key(
    key: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], item: int | None
) -> str:
    """The key a user's key function gives a call, checked (a non-empty str)."""
    where = "" if item is None else f"item {item}: "
    try:
        value = key(*args, **kwargs)
    except Exception as exc:
        exc.add_note(f"nbjobs: {where}raised by the key function {fn_name(key)}")
        raise
    if not isinstance(value, str) or not value:
        raise InvalidArgumentType(
            f"{where}the key function {fn_name(key)} returned {type(value).__name__} "
            f"{value!r:.60}; it must return a non-empty str"
        )
    try:
        validate.key(value)
    except InvalidArgument as exc:
        raise type(exc)(
            f"{where}the key function {fn_name(key)} returned a bad key: {exc}"
        ) from None
    return value


_ids = random.Random(os.urandom(16))


def _reseed() -> None:
    _ids.seed(os.urandom(16))  # a forked child must not repeat its parent's ids


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """16 hex digits from a generator seeded per process (os.urandom per job would drop the
    GIL on every submit, which costs a thread switch under load)."""
    return f"{_ids.getrandbits(64):016x}"


def fn_name(fn: Callable[..., Any]) -> str:
    """The name a job gets by default: the function's (a `functools.partial`'s function's)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return str(
        getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or type(fn).__name__
    )


def merge_kwargs(fn_kwargs: dict[str, Any], kwargs: Any) -> dict[str, Any]:
    if kwargs is None:
        return fn_kwargs
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise InvalidArgumentType(
            "kwargs must be a dict of the function's keyword arguments, "
            f"not {type(kwargs).__name__}"
        )
    clash = sorted(set(fn_kwargs) & set(kwargs))
    if clash:
        raise InvalidArgument(f"keyword argument(s) {clash} given both directly and in kwargs=")
    return {**fn_kwargs, **kwargs}


def pickle_call(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], required: bool
) -> tuple[str, bytes, bytes] | str:
    """(fn digest, fn bytes, args bytes), or why they cannot be pickled."""
    try:
        fn_digest, fn_bytes = codec.dump_function(fn)
    except Exception as exc:
        why = f"the function {fn_name(fn)} cannot be pickled ({type(exc).__name__}: {exc})"
        if required:
            raise PayloadNotPicklable(why + _ELSEWHERE) from exc
        return why
    try:
        args_bytes = codec.dump_call(args, kwargs)
    except Exception as exc:
        why = f"{culprit(args, kwargs)} cannot be pickled ({type(exc).__name__}: {exc})"
        if required:
            raise PayloadNotPicklable(why + _ELSEWHERE) from exc
        return why
    return fn_digest, fn_bytes, args_bytes


_ELSEWHERE = (
    "; this executor runs the job in another process, so the function and its arguments must "
    "be picklable (cloudpickle): pass plain data, or use executor='thread'"
)


def culprit(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Name the first argument that cannot be pickled."""
    named = [(f"argument {i}", a) for i, a in enumerate(args)]
    named += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    for label, value in named:
        try:
            codec.dump_call((value,), {})
        except Exception:
            return f"{label} ({type(value).__name__})"
    return "an argument"


Payload = tuple[codec.CallParts, bytes, list[codec.Value]] | None
"""(the call's parts, the function's bytes, its arguments stored apart), or None if
unpicklable."""

#: A call whose arguments pickle to more than this stores each argument larger than this
#: apart, by its content: once per store however many jobs pass it (`codec.dump_apart`).
LARGE_CALL = 1 << 20
#: An argument that pickles to more than this is warned about, once per line of the caller.
LARGE_ARGUMENT_WARNING = 100 << 20


def set_apart(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], pickled: bytes
) -> tuple[bytes, list[codec.Value]]:
    """The call's arguments to store (`pickled`, or a version with its large arguments set
    apart) and the arguments set apart; warns about a huge one (`LARGE_ARGUMENT_WARNING`)."""
    if len(pickled) <= LARGE_CALL:
        return pickled, []
    stored, values = codec.dump_apart(args, kwargs, LARGE_CALL)
    huge = [(what, v[1].size) for what, v in values if v[1].size > LARGE_ARGUMENT_WARNING]
    if huge:
        what, size = max(huge, key=lambda h: h[1])
        name = fn_name(fn)
        validate.warn_once_per_line(
            f"{what} of {name} pickles to {size / 1e6:,.0f} MB, and every submit pickles "
            "it again in this process (the store keeps one copy of identical arguments). "
            f"Pass it once for many jobs: as a keyword argument shared by every job of a "
            f"map, nbjobs.map({name}, items, data=...), or bound into the function, "
            f"functools.partial({name}, ...), which is pickled once per function object"
        )
    return stored, [v for _, v in values]


_END = object()


def map_calls(iterables: tuple[Iterable[Any], ...]) -> list[tuple[Any, ...]]:
    """The calls of a map: item i of every iterable, which must all have one length (the
    builtin `zip` would drop the extra items without a word). Lengths known up front are
    compared before any item is read; the others are read in step, so an endless iterable
    beside a finite one is refused once the finite one ends, before anything is stored."""
    sizes = [len(items) if isinstance(items, Sized) else None for items in iterables]
    if len({n for n in sizes if n is not None}) > 1:
        lengths = ", ".join(f"iterable {i} has {n}" for i, n in enumerate(sizes) if n is not None)
        raise InvalidArgument(
            f"map's iterables must have the same length (job i takes item i of each), but "
            f"{lengths} items{_SAME_LENGTH}"
        )
    iterators = [_iterate(items, i) for i, items in enumerate(iterables)]
    if None not in sizes:
        return list(zip(*iterators, strict=False))  # one length, told: the fast builtin
    calls = []
    while True:
        row = tuple([next(it, _END) for it in iterators])
        if _END not in row:
            calls.append(row)
            continue
        ended = [v is _END for v in row]
        if all(ended):
            return calls
        n = len(calls)
        raise InvalidArgument(
            f"map's iterable {ended.index(True)} ran out after {n} item{'' if n == 1 else 's'}, "
            f"but iterable {ended.index(False)} has more; the iterables must have the same "
            f"length (job i takes item i of each){_SAME_LENGTH}"
        )


_SAME_LENGTH = (
    "; cut them to one length first (such as itertools.islice(items, n)); nothing was stored"
)


def _iterate(items: Any, position: int) -> Iterator[Any]:
    try:
        return iter(items)
    except TypeError:
        raise InvalidArgumentType(
            f"map's iterable {position} must be iterable (a list, range, generator, ...), "
            f"not {type(items).__name__}"
        ) from None
