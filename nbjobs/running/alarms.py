"""One thread per store that calls functions at wall-clock times of the store's clock.

Used for retries (a job waiting for its next attempt occupies no worker) and for time
limits. While an alarm is set it re-reads a fake clock at least every `TICK` seconds, so a
clock moved by a test is noticed at once, and the real one every `REAL_TICK`; nothing here
sleeps until a far deadline. With no alarm set the thread sleeps until one is (an idle
kernel does not wake 20 times a second), and `close()` ends it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable

from nbjobs.clock import Clock, SystemClock

TICK = 0.05
REAL_TICK = 1.0
log = logging.getLogger("nbjobs")


class Alarms:
    """`at(when, fn)` calls `fn()` once the clock reaches `when` (at once if it has).

    >>> alarms = Alarms(SYSTEM)                               # doctest: +SKIP
    >>> alarms.at(SYSTEM.now() + 1, lambda: print("ring"))    # doctest: +SKIP
    >>> alarms.close()          # alarms not yet due are dropped  # doctest: +SKIP
    """

    def __init__(self, clock: Clock, release: Callable[[], None] = lambda: None) -> None:
        self._clock = clock
        self._release = release  # called by the thread as it ends: closes its connection
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        # The real clock is read again every second only (a far time limit must not wake
        # the thread 20 times a second), still often enough to notice the wall clock jump.
        self._tick = REAL_TICK if isinstance(clock, SystemClock) else TICK

    def at(self, when: float, fn: Callable[[], None]) -> None:
        """Call `fn()` at `when`; dropped once the alarms are closed."""
        with self._cond:
            if self._closed:
                return
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

    def close(self) -> None:
        """Drop the alarms not yet due and end the thread (idempotent)."""
        with self._cond:
            self._closed = True
            self._heap.clear()
            thread, self._thread = self._thread, None
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)

    def _loop(self) -> None:
        try:
            self._ring()
        finally:
            self._release()

    def _ring(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0][0] > self._clock.now()):
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = min(self._tick, self._heap[0][0] - self._clock.now())
                    self._cond.wait(max(wait, 0.001))
                if self._closed:
                    return
                _, _, fn = heapq.heappop(self._heap)
            try:
                fn()
            except Exception:
                log.exception("nbjobs: a scheduled action failed")
