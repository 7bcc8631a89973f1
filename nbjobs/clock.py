"""The time nbjobs stores and decides by, read in one place so tests can inject a fake clock.

Every time written into the store or compared with one (records, leases, backoff, deadlines
of retries, schedules, purge ages, the elapsed times shown for a job) comes from a store's
`Clock`, and every read of the current time goes through this module, with these exceptions,
which are all waits in real time (a fake clock cannot make a thread wait less):
`time.monotonic()` in running/runner.py (the wait for an attempt's end), store/writer.py (the
pause before retrying a checkpoint), store/connections.py (the retry loop of a locked
connection) and store/wakeups.py (the refresh of the list of watcher sockets); `time.sleep`
in api/job.py (`logs(follow=True)`) and store/connections.py. `SYSTEM` is the real clock
for what a store's clock must not decide: deadlines of waits (api/waiting.py,
executors/worker.py), a Dask task's soft time limit (executors/dask_task.py), and the age of
blob files, whose times are the real clock's (store/storage.py). Converting a stored time to
the local time zone (render.py, cli/output.py, scheduling/) reads no clock.
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
