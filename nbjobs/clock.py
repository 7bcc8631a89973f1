"""The time nbjobs stores and decides by, read in one place so tests can inject a fake clock.

Every time written into the store or compared with one (records, leases, backoff, deadlines
of retries, schedules, purge ages, the elapsed times shown for a job) comes from a store's
`Clock`. Code that waits in real time reads `time` itself: a sleep, the runner's wait for
an attempt's end, the writer's pause before retrying a checkpoint, the retry loop of a
locked connection, the refresh of the list of watcher sockets (a fake clock cannot make a
thread wait less), and the local time zone of a timestamp shown.
"""

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
