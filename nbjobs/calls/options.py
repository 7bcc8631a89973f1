"""The job options, defined once: their names, types, defaults, checks and documentation.

Every entry point that takes job options reads them from here: `Store.submit`, `Store.map`,
`nbjobs.task` and a task's `submit`/`map`, `Store.schedule`, the module-level
`nbjobs.submit`/`map`/`schedule`, and the near-miss hints of `arguments`. Each takes them as
`**options` (typed `Unpack[JobOptions]` for type checkers and completion), so an option
added here reaches all of them; `entry` gives each the same runtime signature and
documentation. Adding an option is: a line in `JobOptions`, its entry in `OPTIONS`, its
field and check in `Options`/`resolve`, and its use.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypedDict, TypeVar

from nbjobs import validate
from nbjobs.calls import retrying
from nbjobs.calls.autokey import AutoKey
from nbjobs.calls.retrying import Policy, Retry
from nbjobs.errors import InvalidArgument
from nbjobs.validate import Duration


class ScheduleOptions(TypedDict, total=False):
    """The job options a schedule gives each of its firings (see `OPTIONS` for each)."""

    name: str | None
    tags: str | list[str] | tuple[str, ...] | None
    retries: int | Retry | Any
    retry_on: type[BaseException] | tuple[type[BaseException], ...] | Any
    backoff: Duration | Any
    timeout: Duration | None
    soft_timeout: Duration | None


class JobOptions(ScheduleOptions, total=False):
    """Every job option, as keyword arguments of `submit`, `map` and `task` take them."""

    key: str | AutoKey | Callable[..., str] | None
    executor: str | Any
    force: bool


@dataclass(frozen=True, slots=True)
class Option:
    """One job option: its default (what giving none means) and what it does."""

    default: Any
    doc: str


#: The executors `executor=` names (it also takes a `dask.distributed.Client`).
EXECUTORS: tuple[str, ...] = ("thread", "process", "worker")

#: The job options in the order the documentation shows them. Durations are seconds, a
#: `timedelta`, or a str such as "30s", "5m", "1h30m", "7d".
OPTIONS: dict[str, Option] = {
    "key": Option(
        None,
        "an idempotency key: when a job with this key exists it is returned instead (run "
        "again only if it failed, was cancelled or was interrupted, or with force=True); "
        "nbjobs.auto derives it from the function's name and source and the arguments, so "
        "re-running an unchanged cell, even after a kernel restart, finds the stored job. "
        "map: also a str prefix P (keys 'P/0', 'P/1', ...) or a function of a job's "
        "arguments that returns its key; task: nbjobs.auto or such a function",
    ),
    "name": Option(None, "the job's name in listings (default: the function's name)"),
    "tags": Option(None, "a tag or a list of tags, to filter listings by (jobs(tag=...))"),
    "retries": Option(
        0,
        "how many retries after the first attempt: an int, a tenacity stop strategy, or "
        "nbjobs.Retry(...) (default 0: none)",
    ),
    "retry_on": Option(
        None,
        "the exception types (or a tenacity retry strategy) worth retrying; others fail at "
        "once (default: any Exception)",
    ),
    "backoff": Option(
        None,
        "the wait before a retry: a duration or a tenacity wait strategy (default: "
        "exponential with full jitter)",
    ),
    "timeout": Option(None, "the hard time limit of an attempt (a duration)"),
    "soft_timeout": Option(
        None,
        "a duration shorter than timeout after which nbjobs.SoftTimeout is raised inside the job",
    ),
    "executor": Option(
        None,
        f"{', '.join(map(repr, EXECUTORS))} or a dask.distributed.Client (default: the store's)",
    ),
    "force": Option(False, "run the job again even if a job with its key succeeded"),
}

#: The option names, in documentation order.
NAMES: tuple[str, ...] = tuple(OPTIONS)
_NAMES = frozenset(NAMES)
_TYPES = {n: t.__forward_arg__ for n, t in JobOptions.__annotations__.items()}  # as written
#: What giving no option means, per option.
DEFAULTS: dict[str, Any] = {name: option.default for name, option in OPTIONS.items()}
#: The keyword names `submit` and `map` take for themselves; a function's own arguments
#: with these names go through `kwargs={...}`.
RESERVED: tuple[str, ...] = (*NAMES, "kwargs")
#: The options a schedule takes (its firings are worker jobs keyed by their slot).
SCHEDULE_NAMES: tuple[str, ...] = tuple(n for n in NAMES if n in ScheduleOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class Options:
    """A submit's validated options."""

    key: str | None = None
    name: str | None = None
    tags: tuple[str, ...] = ()
    executor: str | Any = None  # a name, a dask.distributed.Client, or None (the default)
    force: bool = False
    policy: Policy | None = None
    timeout: float | None = None
    soft_timeout: float | None = None


#: The options of a submit that gives none.
PLAIN = Options()


def split(given: dict[str, Any], defaults: bool = False) -> dict[str, Any]:
    """Take the job options out of `given` (a call's keywords), which keeps the function's
    own; returns those not left at their default (`key=None` is no option given), or all
    of them with `defaults` (a task's call overrides its options with defaults too).

    >>> kw = {"alpha": 0.1, "retries": 3, "key": None}
    >>> split(kw), kw
    ({'retries': 3}, {'alpha': 0.1})
    """
    opts = {}
    for name in given.keys() & _NAMES:
        value = given.pop(name)
        if defaults or value is not DEFAULTS[name]:
            opts[name] = value
    return opts


def unknown(given: Mapping[str, Any], takes: tuple[str, ...], where: str) -> None:
    """Refuse keywords of `given` that are not among `takes` (TypeError, as Python would
    raise, with the name that was meant)."""
    wrong = sorted(set(given) - set(takes))
    if wrong:
        from nbjobs.calls.arguments import closest  # arguments reads NAMES from here

        meant = closest(wrong[0], takes)
        raise TypeError(
            f"{where} got unknown option(s) {wrong}; it takes {', '.join(takes)}"
            + ("" if meant is None else f" (did you mean {meant}=?)")
        )


def resolve(given: Mapping[str, Any], key: str | None, default_name: str) -> Options:
    """Check the options of one call (`given`: those it gives, `key` already resolved by
    the entry point, whose forms differ); `executor` left out stays None (the store's
    default executor at the time of the call)."""
    if len(given) == 1 and "key" in given:
        return Options(key=key)  # the usual keyed call: nothing else to check
    get = given.get
    retries, retry_on, backoff = get("retries", 0), get("retry_on"), get("backoff")
    plain = type(retries) is int and retries == 0 and retry_on is None and backoff is None
    executor = get("executor")
    opts = Options(
        key=key,
        name=validate.name(get("name"), default_name),
        tags=validate.tags(get("tags")),
        executor=None if executor is None else validate.executor(executor, EXECUTORS),
        force=validate.flag(get("force", False), "force"),
        policy=None if plain else retrying.policy(retries, retry_on, backoff),
        timeout=validate.limit(get("timeout"), "timeout"),
        soft_timeout=validate.limit(get("soft_timeout"), "soft_timeout"),
    )
    if opts.timeout and opts.soft_timeout and opts.soft_timeout >= opts.timeout:
        raise InvalidArgument(
            f"soft_timeout ({opts.soft_timeout} s) must be shorter than timeout "
            f"({opts.timeout} s): it is the warning before the hard limit"
        )
    return opts


def doc(names: tuple[str, ...] = NAMES) -> str:
    """The documentation of the options `names`, one paragraph each."""
    lines = ["Job options (keywords; durations are seconds, a timedelta, or '30s', '5m', '7d'):"]
    for name in names:
        lines += textwrap.wrap(
            f"{name}: {OPTIONS[name].doc}.", 88, initial_indent="    ", subsequent_indent="        "
        )
    return "\n".join(lines)


F = TypeVar("F", bound=Callable[..., Any])


def entry(names: tuple[str, ...] = NAMES) -> Callable[[F], F]:
    """Mark a function that takes the job options `names` as `**options`: its signature (for
    `help()`, `inspect` and a notebook's completion) lists them with their defaults, before
    the `**` of the function's own keywords if it has one, and its documentation ends with
    theirs."""

    def mark(fn: F) -> F:
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        varkw = [p for p in params if p.kind is inspect.Parameter.VAR_KEYWORD]
        rest = [p for p in params if p.kind is not inspect.Parameter.VAR_KEYWORD]
        opts = [
            inspect.Parameter(
                n, inspect.Parameter.KEYWORD_ONLY, default=OPTIONS[n].default, annotation=_TYPES[n]
            )
            for n in names
        ]
        # A `**options` only for options disappears; one that also takes the function's
        # own keywords (`**fn_kwargs`) stays, after them.
        own = [p for p in varkw if p.name != "options"]
        fn.__signature__ = sig.replace(parameters=[*rest, *opts, *own])  # type: ignore[attr-defined]
        fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\n{doc(names)}"
        return fn

    return mark
