"""One thread per store that calls functions at wall-clock times of the store's clock.

Used for retries (a job waiting for its next attempt occupies no worker) and for time
limits. It re-reads the clock at least every `TICK` seconds, so a fake clock moved by a
test is noticed at once; nothing here sleeps until a far deadline.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from .clock import Clock

TICK = 0.05
log = logging.getLogger("nbjobs")


class Alarms:
    """`at(when, fn)` calls `fn()` once the clock reaches `when` (at once if it has)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def at(self, when: float, fn: Callable[[], None]) -> None:
        with self._cond:
            heapq.heappush(self._heap, (when, next(self._seq), fn))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="nbjobs-alarms", daemon=True
                )
                self._thread.start()
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._heap or self._heap[0][0] > self._clock.now():
                    wait = (
                        TICK if not self._heap else min(TICK, self._heap[0][0] - self._clock.now())
                    )
                    self._cond.wait(max(wait, 0.001))
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("nbjobs: a scheduled action failed")
