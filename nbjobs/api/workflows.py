"""`chain`, `group` and `chord`: the familiar shapes, built on jobs passed as arguments.

Passing a `Job` to `submit` makes it a dependency (see `nbjobs.submit`); these helpers only
submit the steps in the right order and wire each one's inputs:

>>> last = nbjobs.chain(partial(fetch, url), parse, summarize)    # doctest: +SKIP
>>> jobs = nbjobs.group(partial(fetch, u) for u in urls)          # doctest: +SKIP
>>> total = nbjobs.chord((partial(count, f) for f in files), sum) # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from nbjobs.api.default_store import default_store
from nbjobs.api.job import Job
from nbjobs.api.store import Store
from nbjobs.api.submitting import grouping
from nbjobs.api.tasks import Task
from nbjobs.calls.autokey import auto
from nbjobs.errors import InvalidArgument, InvalidArgumentType

Step = Job | Callable[..., Any]


def chain(*steps: Step, store: Store | None = None, **options: Any) -> Job:
    """Run `steps` one after another; each gets the previous one's result as its first
    argument. Returns the last step's job; if a step fails, the ones after it fail with
    `nbjobs.DependencyFailed` without running.

    The first step is a `Job` already submitted or a callable called with no arguments
    (use `functools.partial` to give it some); the others are callables (functions,
    partials, `@nbjobs.task`s). `options` are `submit` options for every step.

    >>> job = nbjobs.chain(partial(load, "data.csv"), clean, fit)   # doctest: +SKIP
    >>> job.result(timeout=600)                                      # doctest: +SKIP
    """
    if not steps:
        raise InvalidArgument("chain needs at least one step")
    _check_steps(steps[:1], "chain step")
    then: list[Callable[..., Any]] = []
    for i, step in enumerate(steps[1:], 1):
        if isinstance(step, Job) or not callable(step):
            raise InvalidArgumentType(
                f"chain step {i} must be a callable that takes the previous result, "
                f"not {type(step).__name__}"
            )
        then.append(step)
    _check_key(options, "chain")
    target = store or default_store()
    job = _start(target, steps[0], options)
    for step in then:
        job = _submit(target, step, (job,), options)
    return job


def group(*calls: Step | Iterable[Step], store: Store | None = None, **options: Any) -> list[Job]:
    """Start every call now (in parallel); returns their jobs in order.

    `calls` are callables called with no arguments (use `functools.partial`) or jobs already
    submitted, given one by one or as one iterable. `options` are `submit` options for each.
    The jobs it submits form one group (one row in `nbjobs.panel()`, see `Store.groups()`).

    >>> jobs = nbjobs.group(partial(fetch, u) for u in urls)    # doctest: +SKIP
    >>> nbjobs.wait(jobs)                                         # doctest: +SKIP
    """
    items = _calls(calls)
    _check_steps(items, "group item")
    _check_key(options, "group")
    target = store or default_store()
    with grouping():
        return [_start(target, call, options) for call in items]


def chord(
    header: Iterable[Step], body: Callable[..., Any], store: Store | None = None, **options: Any
) -> Job:
    """Start the `header` calls (as `group` does), then `body(results)` once they all
    succeeded, with their results in a list in header order. Returns the body's job; it
    fails with `nbjobs.DependencyFailed` if one of the header's jobs does not succeed.

    >>> total = nbjobs.chord([partial(count, f) for f in files], sum)   # doctest: +SKIP
    """
    if isinstance(body, Job) or not callable(body):
        raise InvalidArgumentType(
            f"body must be a callable that takes the list of results, not {type(body).__name__}"
        )
    items = _calls((header,))
    _check_steps(items, "chord header item")
    _check_key(options, "chord")
    target = store or default_store()
    with grouping():
        jobs = [_start(target, call, options) for call in items]
    return _submit(target, body, (jobs,), options)


def _calls(calls: tuple[Any, ...]) -> list[Any]:
    """One iterable of calls, or the calls themselves."""
    if len(calls) == 1 and not callable(calls[0]) and not isinstance(calls[0], Job):
        try:
            return list(calls[0])
        except TypeError:
            pass
    return list(calls)


def _check_steps(steps: Iterable[Any], what: str) -> None:
    for i, step in enumerate(steps):
        if not isinstance(step, Job) and not callable(step):
            raise InvalidArgumentType(
                f"{what} {i} must be a job or a callable (a function, a functools.partial or "
                f"an @nbjobs.task), not {type(step).__name__}"
            )


def _check_key(options: dict[str, Any], shape: str) -> None:
    key = options.get("key")
    if key is not None and key is not auto:
        raise InvalidArgument(
            f"key must be None or nbjobs.auto for a {shape} (one key cannot name several "
            f"jobs), not {key!r:.60}"
        )


def _start(store: Store, step: Step, options: dict[str, Any]) -> Job:
    return step if isinstance(step, Job) else _submit(store, step, (), options)


def _submit(
    store: Store, step: Callable[..., Any], args: tuple[Any, ...], options: dict[str, Any]
) -> Job:
    if isinstance(step, Task):
        return step.submit(*args, **options)
    return store.submit(step, *args, **options)
