"""A submitted call, before it becomes a job: its options, its id, its pickled payload."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import InvalidArgument, InvalidArgumentType, PayloadNotPicklable
from .retrying import Policy

#: Option names `submit` takes for itself; pass a function's own arguments with these
#: names through `kwargs={...}`.
RESERVED = (
    "key",
    "name",
    "tags",
    "retries",
    "retry_on",
    "backoff",
    "timeout",
    "soft_timeout",
    "executor",
    "force",
    "kwargs",
)


@dataclass(frozen=True, slots=True)
class Options:
    """A submit's validated options."""

    key: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    executor: str | None = None
    force: bool = False
    policy: Policy | None = None
    timeout: float | None = None
    soft_timeout: float | None = None


_ids = random.Random(os.urandom(16))


def _reseed() -> None:
    _ids.seed(os.urandom(16))  # a forked child must not repeat its parent's ids


os.register_at_fork(after_in_child=_reseed)


def new_id() -> str:
    """16 hex digits from a generator seeded per process (os.urandom per job would drop the
    GIL on every submit, which costs a thread switch under load)."""
    return f"{_ids.getrandbits(64):016x}"


def fn_name(fn: Callable[..., Any]) -> str:
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


Payload = tuple[bytes, str, bytes | None] | None
"""(payload blob, function digest, function bytes if not yet stored), or None if unpicklable."""
