"""Retry policies: the only module that imports tenacity.

A policy is driven one step at a time: after each failed attempt, `Policy.next_delay`
rebuilds a tenacity `RetryCallState` from what the store persisted (attempt number, start
of the first attempt, time already spent waiting), asks tenacity's own strategies, and
returns the seconds to wait or None. Times come from our clock, never tenacity's
`time.monotonic()`, so decisions survive a restart and tests use a fake clock.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import numbers
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from nbjobs import validate
from nbjobs.errors import InvalidArgument, InvalidArgumentType, JobCancelled, RetryPolicyFailed


def _tenacity() -> ModuleType:
    """tenacity, imported on first use: it pulls in tornado when that is installed, which
    would slow every `import nbjobs` and every process-executor child by ~70 ms."""
    import tenacity

    return tenacity


#: Default cap on one wait between attempts, in seconds.
DEFAULT_MAX_WAIT = 180.0


@dataclass(frozen=True)
class Policy:
    """When to retry (`retry`), when to stop (`stop`), how long to wait (`wait`)."""

    stop: Any
    wait: Any
    retry: Any

    def next_delay(
        self, attempt: int, error: BaseException, first_start: float, now: float, idle: float
    ) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None to give up now.

        Raises `RetryPolicyFailed` when one of the policy's strategies (user code) raises.

        >>> p = policy(retries=2, retry_on=None, backoff=0)
        >>> p.next_delay(1, ValueError(), 0.0, 1.0, 0.0)
        0.0
        >>> p.next_delay(3, ValueError(), 0.0, 1.0, 0.0) is None
        True
        """
        if isinstance(error, JobCancelled):
            return None
        tenacity = _tenacity()
        retrying = tenacity.Retrying(stop=self.stop, wait=self.wait, retry=self.retry)
        state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.start_time = first_start
        state.idle_for = idle
        outcome = tenacity.Future(attempt)
        outcome.set_exception(error)
        state.outcome, state.outcome_timestamp = outcome, now
        retrying.begin()
        try:
            action = retrying.iter(state)
        except tenacity.RetryError:  # the stop strategy gives up
            return None
        except BaseException as bug:
            if bug is error:  # the retry strategy gives up: tenacity raises the error again
                return None
            raise RetryPolicyFailed(
                f"the job's retry policy ({self.describe()}) raised "
                f"{type(bug).__name__}: {bug}{_where(bug)}"
            ) from bug
        return float(action) if isinstance(action, tenacity.DoSleep) else None

    def describe(self) -> str:
        """The policy in words, as `submit()` was given it.

        >>> print(policy(2, ValueError, 5).describe())  # doctest: +ELLIPSIS
        retries=stop_after_attempt(3), retry_on=retry_if_exception_type(ValueError), ...
        """
        return (
            f"retries={_describe(self.stop)}, retry_on={_describe(self.retry)}, "
            f"backoff={_describe(self.wait)}"
        )


def _describe(strategy: Any) -> str:
    """A strategy as its class and what it was given (tenacity's have no useful repr)."""
    if isinstance(strategy, functools.partial):
        strategy = strategy.func
    if isinstance(strategy, type) or inspect.isroutine(strategy):
        return str(getattr(strategy, "__qualname__", strategy))
    given = [
        _given(value)
        for value in getattr(strategy, "__dict__", {}).values()
        if not (inspect.ismethod(value) and value.__self__ is strategy)  # its own check
    ]
    return f"{type(strategy).__name__}({', '.join(given)})"


def _given(value: Any) -> str:
    if isinstance(value, tuple | list):
        inner = ", ".join(_given(item) for item in value)
        return inner if len(value) == 1 else f"({inner})"
    return _describe(value) if callable(value) else repr(value)


def _where(bug: BaseException) -> str:
    """` in fn (file:line)`: where in the policy's code `bug` was raised."""
    frames = traceback.extract_tb(bug.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" in {last.name} ({last.filename}:{last.lineno})"


class Retry:
    """A retry policy for people who do not use tenacity.

    >>> policy = nbjobs.Retry(3, on=ConnectionError, delay=2)
    >>> nbjobs.submit(fetch, url, retries=policy)           # doctest: +SKIP

    `times` retries after the first attempt; `on` the exception types worth retrying
    (default: any `Exception`); waits grow exponentially from `delay` (seconds, a
    `timedelta` or a str such as "2s") with full jitter, capped at `max_delay`
    (`jitter=False` for plain exponential, `backoff="fixed"` for a constant `delay`).
    """

    def __init__(
        self,
        times: int = 3,
        *,
        on: type[BaseException] | tuple[type[BaseException], ...] = Exception,
        delay: float | datetime.timedelta | str = 1.0,
        max_delay: float | datetime.timedelta | str = DEFAULT_MAX_WAIT,
        backoff: str = "exponential",
        jitter: bool = True,
    ) -> None:
        _check_count(times, "times")
        self.delay = validate.delay(delay, "delay")
        self.max_delay = validate.delay(max_delay, "max_delay")
        if backoff not in ("exponential", "fixed"):
            raise InvalidArgument(f"backoff must be 'exponential' or 'fixed', not {backoff!r}")
        self.times = int(times)
        self.on = _exception_types(on, "on")
        self.backoff = backoff
        self.jitter = jitter

    def policy(self) -> Policy:
        tenacity = _tenacity()
        wait: Any
        if self.backoff == "fixed":
            wait = tenacity.wait_fixed(self.delay)
        elif self.jitter:
            wait = tenacity.wait_random_exponential(multiplier=self.delay, max=self.max_delay)
        else:
            wait = tenacity.wait_exponential(multiplier=self.delay, max=self.max_delay)
        return Policy(
            tenacity.stop_after_attempt(self.times + 1),
            wait,
            tenacity.retry_if_exception_type(self.on),
        )

    def __repr__(self) -> str:
        names = ", ".join(t.__name__ for t in self.on)
        return f"Retry({self.times}, on=({names}), delay={self.delay}, backoff={self.backoff!r})"


def policy(retries: Any, retry_on: Any, backoff: Any) -> Policy | None:
    """The policy for `submit(retries=..., retry_on=..., backoff=...)`, or None: no retry.

    `retries`: an int (retries after the first attempt), a tenacity stop strategy, or a
    `Retry`. `retry_on`: exception types or a tenacity retry strategy (default: any
    `Exception`). `backoff`: a tenacity wait strategy or a fixed wait (seconds, a
    `timedelta` or a str such as "30s"; default: exponential with full jitter, capped at a
    few minutes).
    """
    if isinstance(retries, Retry):
        if retry_on is not None or backoff is not None:
            raise InvalidArgument("retries=nbjobs.Retry(...) already says retry_on and backoff")
        return retries.policy()
    if retries is None or (
        isinstance(retries, numbers.Integral) and not isinstance(retries, bool) and retries == 0
    ):
        if retry_on is not None or backoff is not None:
            raise InvalidArgument("retry_on= and backoff= need retries= (how many retries)")
        return None
    return Policy(_stop(retries), _wait(backoff), _retry(retry_on))


def _stop(retries: Any) -> Any:
    tenacity = _tenacity()
    if isinstance(retries, tenacity.stop.stop_base):
        return retries
    _check_count(retries, "retries")
    return tenacity.stop_after_attempt(int(retries) + 1)


def _wait(backoff: Any) -> Any:
    tenacity = _tenacity()
    if backoff is None:
        return tenacity.wait_random_exponential(multiplier=1, max=DEFAULT_MAX_WAIT)
    if isinstance(backoff, tenacity.wait.wait_base):
        return backoff
    try:
        seconds = validate.delay(backoff, "backoff")
    except InvalidArgument as exc:
        raise type(exc)(
            f"{exc}; or a tenacity wait strategy (such as tenacity.wait_exponential(max=60))"
        ) from None
    return tenacity.wait_fixed(seconds)


def _retry(retry_on: Any) -> Any:
    tenacity = _tenacity()
    if retry_on is None:
        return tenacity.retry_if_exception_type(Exception)
    if isinstance(retry_on, tenacity.retry_base):
        return retry_on
    return tenacity.retry_if_exception_type(_exception_types(retry_on, "retry_on"))


def _exception_types(value: Any, name: str) -> tuple[type[BaseException], ...]:
    items = value if isinstance(value, tuple | list) else (value,)
    if items and all(isinstance(t, type) and issubclass(t, BaseException) for t in items):
        return tuple(items)
    raise InvalidArgumentType(
        f"{name} must be an exception type, a tuple of them, or a tenacity retry strategy, "
        f"not {value!r}"
    )


def _check_count(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(
            f"{name} must be an int >= 0 (retries after the first attempt), a tenacity stop "
            f"strategy or nbjobs.Retry(...), not {value!r}"
        )
    if not 0 <= int(value) <= _COUNT_MAX:
        raise InvalidArgument(f"{name} must be an int from 0 to 2**63 - 1, not {value!r:.60}")


_COUNT_MAX = 2**63 - 1  # the largest int SQLite stores
