"""`@nbjobs.task`: a function with default job options, submitted or mapped by name.

>>> @nbjobs.task(retries=3, timeout=600)          # doctest: +SKIP
... def fit(df, alpha): ...
>>> fit.submit(df, alpha=0.1), fit.map([df1, df2], alpha=0.1)   # doctest: +SKIP
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Generic, ParamSpec, TypeVar, Unpack, overload

from nbjobs.api.default_store import default_store
from nbjobs.api.job import Job
from nbjobs.api.store import STORES, Store
from nbjobs.calls import arguments
from nbjobs.calls.autokey import auto
from nbjobs.calls.call import called_key, fn_name, merge_kwargs
from nbjobs.calls.options import (
    DEFAULTS,
    NAMES,
    RESERVED,
    JobOptions,
    entry,
    resolve,
    split,
    unknown,
)
from nbjobs.errors import InvalidArgumentType

P = ParamSpec("P")
R = TypeVar("R")


class Task(Generic[P, R]):
    """A function with default job options (made by `@nbjobs.task`).

    Calling it calls the function here, as if it were not decorated. `submit(...)` and
    `map(...)` take the function's arguments and, as keywords, any job option, which
    overrides the task's default for that call (`retries=0` also drops the task's
    `retry_on` and `backoff`).

    >>> fit(df, 0.1)                              # doctest: +SKIP
    >>> job = fit.submit(df, alpha=0.1, key="fit-0.1")    # doctest: +SKIP
    >>> jobs = fit.map([0.1, 0.2], timeout=60)    # doctest: +SKIP
    """

    def __init__(
        self, fn: Callable[P, R], defaults: dict[str, Any], store: Store | str | None
    ) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.defaults = defaults
        self._store = store  # a path once unpickled: opened again on first use

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.fn(*args, **kwargs)

    @overload
    def submit(
        self, *args: Any, kwargs: dict[str, Any] | None = None, **options: Unpack[JobOptions]
    ) -> Job: ...
    @overload
    def submit(self, *args: Any, kwargs: dict[str, Any] | None = None, **fn_kwargs: Any) -> Job: ...
    @entry()
    def submit(self, *args: Any, kwargs: dict[str, Any] | None = None, **fn_kwargs: Any) -> Job:
        """Submit `fn(*args, **kwargs)` with the task's options (see `nbjobs.submit`); an
        option given here overrides the task's for this call.

        A key function given to the task receives the call's arguments.
        """
        opts = self._options(fn_kwargs)
        key = opts.get("key")
        if callable(key):
            call_kwargs = merge_kwargs(fn_kwargs, kwargs)
            # Before the key function sees them (the submit below warns about near misses).
            arguments.check(self.fn, len(args), call_kwargs, fn_kwargs, RESERVED, warn=False)
            opts["key"] = called_key(key, args, call_kwargs, None)
        return self.store.submit(self.fn, *args, kwargs=kwargs, **opts, **fn_kwargs)

    @overload
    def map(
        self,
        *iterables: Iterable[Any],
        kwargs: dict[str, Any] | None = None,
        **options: Unpack[JobOptions],
    ) -> list[Job]: ...
    @overload
    def map(
        self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None, **fn_kwargs: Any
    ) -> list[Job]: ...
    @entry()
    def map(
        self, *iterables: Iterable[Any], kwargs: dict[str, Any] | None = None, **fn_kwargs: Any
    ) -> list[Job]:
        """One job per item with the task's options (see `nbjobs.map`); an option given
        here overrides the task's for this call."""
        opts = self._options(fn_kwargs)
        return self.store.map(self.fn, *iterables, kwargs=kwargs, **opts, **fn_kwargs)

    @property
    def store(self) -> Store:
        """The store this task submits to: its own, or the default store at call time."""
        if self._store is None:
            return default_store()
        if isinstance(self._store, str):
            path = self._store
            self._store = next((s for s in STORES if str(s.path) == path), None) or Store(path)
        return self._store

    def _options(self, fn_kwargs: dict[str, Any]) -> dict[str, Any]:
        """The job options of one call (taken out of `fn_kwargs`): the task's, overridden by
        those the call gives."""
        given = split(fn_kwargs, defaults=True)
        opts = dict(self.defaults)
        if given.get("retries", 1) in (0, None):  # retries turned off for this call
            opts.pop("retry_on", None)
            opts.pop("backoff", None)
        opts.update(given)
        return opts

    def __repr__(self) -> str:
        shown = [fn_name(self.fn)]
        shown += [f"{k}={v!r}" for k, v in self.defaults.items()]
        if isinstance(self._store, Store):
            shown.append(f"store={self._store!r}")
        return f"nbjobs.Task({', '.join(shown)})"

    def __getstate__(self) -> dict[str, Any]:
        # A Store holds threads and connections: a pickled task keeps its path.
        state = dict(self.__dict__)
        if isinstance(self._store, Store):
            state["_store"] = str(self._store.path)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@overload
def task(fn: Callable[P, R], /) -> Task[P, R]: ...


@overload
def task(
    fn: None = None, /, *, store: Store | None = None, **options: Unpack[JobOptions]
) -> Callable[[Callable[P, R]], Task[P, R]]: ...


@entry()
def task(
    fn: Callable[P, R] | None = None,
    /,
    *,
    store: Store | None = None,
    **options: Unpack[JobOptions],
) -> Task[P, R] | Callable[[Callable[P, R]], Task[P, R]]:
    """Make a function a reusable job definition: `@nbjobs.task` or `@nbjobs.task(...)`.

    The options are those of `submit` (checked here, at decoration time) and become the
    defaults of the task's `submit()` and `map()`; `key` is `nbjobs.auto` or a callable
    that receives the call's arguments and returns the key. `store` binds the task to a
    `Store` (default: the default store at the time of each call). Calling the task calls
    the function directly.

    >>> @nbjobs.task(retries=3, timeout=600, name="fit")     # doctest: +SKIP
    ... def fit(df, alpha):
    ...     ...
    >>> job = fit.submit(df, alpha=0.1)                      # doctest: +SKIP
    >>> jobs = fit.map([df1, df2, df3], alpha=0.1)           # doctest: +SKIP
    """
    unknown(options, ("store", *NAMES), "nbjobs.task()")
    key = options.get("key")
    if not (key is None or key is auto or callable(key)):
        raise InvalidArgumentType(
            f"a task's key must be nbjobs.auto, a callable that takes the call's arguments "
            f"and returns the key, or None, not {type(key).__name__} {key!r:.60}; give a "
            "fixed key to .submit(key=...) or a prefix to .map(key=...) instead"
        )
    if store is not None and not isinstance(store, Store):
        raise InvalidArgumentType(
            f"store must be an nbjobs.Store or None (the default store), not {type(store).__name__}"
        )
    given: dict[str, Any] = dict(options)
    defaults = {k: given[k] for k in NAMES if given.get(k, DEFAULTS[k]) is not DEFAULTS[k]}

    def decorate(fn: Callable[P, R]) -> Task[P, R]:
        if not callable(fn):
            raise InvalidArgumentType(f"@nbjobs.task decorates a function, not {type(fn).__name__}")
        resolve(options, None, fn_name(fn))  # bad options raise here, not at the first call
        return Task(fn, defaults, store)

    return decorate if fn is None else decorate(fn)
