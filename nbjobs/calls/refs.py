"""Jobs given as arguments of other jobs: finding them, and putting their results in place.

A `Job` handle passed to `submit` (directly, or inside a list, tuple, dict or set) makes
that job a dependency. It is pickled as a `JobRef` (just the id), so a stored call can be
run again after a restart; when the dependent job starts, every reference is replaced by
the dependency's result, loaded from the store. Containers of other types (a dataclass, a
namedtuple, a NumPy array of objects) are not searched.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from nbjobs import states
from nbjobs.records import JobRecord


class JobRef(NamedTuple):
    """A job named by id inside a stored call; replaced by its result when the call runs."""

    id: str


_CONTAINERS = (list, tuple, dict, set, frozenset)


def ref_of(x: Any) -> JobRef | None:
    """The reference `x` stands for: a `JobRef`, a `Job` handle, or None."""
    if type(x) is JobRef:
        return x
    make = getattr(type(x), "__job_ref__", None)
    return make(x) if make is not None else None


def call_dependencies(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> list[Any]:
    """The jobs (handles or references) among a call's arguments, each once, in order,
    including the arguments bound in a `functools.partial` (a map's shared arguments)."""
    if type(fn) is not functools.partial:  # the usual call: plain values, nothing to walk
        for value in args:
            if type(value) not in _SCALARS:
                break
        else:
            for value in kwargs.values():
                if type(value) not in _SCALARS:
                    break
            else:
                return []
    seen: set[str] = set()
    found = []
    for x in _walk((_bound(fn), args, kwargs), set()):
        ref = ref_of(x)
        if ref is not None and ref.id not in seen:
            seen.add(ref.id)
            found.append(x)
    return found


_SCALARS = frozenset({int, float, str, bytes, bool, complex, type(None)})


def _walk(x: Any, active: set[int]) -> Iterator[Any]:
    if type(x) not in _CONTAINERS:
        if ref_of(x) is not None:
            yield x
        return
    if id(x) in active:  # a container that holds itself
        return
    active.add(id(x))
    for item in x.values() if type(x) is dict else x:
        yield from _walk(item, active)
    active.discard(id(x))


def _bound(fn: Callable[..., Any]) -> tuple[Any, ...]:
    """The arguments bound in (nested) partials: (args, keywords) pairs."""
    out: list[Any] = []
    while isinstance(fn, functools.partial):
        out += [fn.args, fn.keywords]
        fn = fn.func
    return tuple(out)


Call = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]


def resolve_call(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    result: Callable[[str], Any],
) -> Call:
    """The call with every job replaced by `result(job_id)`, loaded once per job
    (containers and partials are copied only where they hold a job)."""
    cache: dict[str, Any] = {}

    def value(job_id: str) -> Any:
        if job_id not in cache:
            cache[job_id] = result(job_id)
        return cache[job_id]

    out_args, out_kwargs = _replace((args, kwargs), value)
    return _replace_partial(fn, value), out_args, out_kwargs


def _replace_partial(fn: Callable[..., Any], value: Callable[[str], Any]) -> Callable[..., Any]:
    if not isinstance(fn, functools.partial):
        return fn
    inner = _replace_partial(fn.func, value)
    args, keywords = _replace((fn.args, fn.keywords), value)
    if inner is fn.func and args is fn.args and keywords is fn.keywords:
        return fn
    return functools.partial(inner, *args, **keywords)


def _replace(x: Any, value: Callable[[str], Any]) -> Any:
    kind = type(x)
    if kind not in _CONTAINERS:
        ref = ref_of(x)
        return x if ref is None else value(ref.id)
    if kind is dict:
        items = {k: _replace(v, value) for k, v in x.items()}
        return x if all(items[k] is x[k] for k in x) else items
    new = [_replace(item, value) for item in x]
    if all(a is b for a, b in zip(new, x, strict=True)):
        return x
    return new if kind is list else kind(new)


WAITING = "waiting"
_ENDED = {
    states.FAILED: "failed",
    states.CANCELLED: "was cancelled",
    states.INTERRUPTED: "was interrupted (resume it, then retry this one)",
}


def dependency_problem(rec: JobRecord, lookup: Callable[[str], JobRecord | None]) -> str | None:
    """None when every job `rec` depends on succeeded; `WAITING` while one is not finished;
    else why `rec` cannot run (the first dependency that failed, was cancelled or is gone)."""
    waiting = False
    for dep_id in rec.deps:
        dep = lookup(dep_id)
        if dep is not None and dep.status == states.SUCCEEDED:
            continue
        if dep is not None and dep.status not in states.FINISHED:
            waiting = True
            continue
        if dep is None:
            what = f"{dep_id}, which is no longer in the store"
        elif dep.error is not None and dep.error.type.endswith("DependencyFailed"):
            what = f"{dep_id} ({dep.name}), which did not run either"
        else:
            what = f"{dep_id} ({dep.name}), which {_ENDED[dep.status]}"
            if dep.error is not None:
                what += f" with {dep.error.type}: {dep.error.message}"
        return f"job {rec.id} ({rec.name}) did not run: it depends on job {what}"
    return WAITING if waiting else None
