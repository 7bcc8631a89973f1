"""The only place nbjobs reads time, so tests can inject a fake clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Wall-clock seconds since the epoch (persisted in records)."""

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, for measuring intervals."""


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that only moves when told to.

    >>> clock = FakeClock(1000.0)
    >>> clock.advance(5)
    >>> clock.now()
    1005.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = start
        self._mono = 0.0

    def now(self) -> float:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._mono += seconds


SYSTEM = SystemClock()
