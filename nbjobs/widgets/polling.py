"""When a live view polls the store: a daemon thread per view, slowing down and stopping,
and skipping its reads while neither the store nor the view changed.

No ipywidgets here (it can be tested without them). Threads, not asyncio tasks: a task
freezes while another cell runs, a thread keeps updating.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Literal

from nbjobs.clock import SYSTEM, Clock

log = logging.getLogger("nbjobs")
Tick = Literal["changed", "same", "done"]


class Poller:
    """Calls `tick()` from a daemon thread until it says "done", it is stopped, or it idles.

    Polls every `interval` s, every `slow_interval` s once nothing changed for `slow_after` s,
    and stops after `idle_timeout` s without a change; `start()` wakes it again.
    `on_stop(reason)` is called from the thread when it ends ("done", "idle", "stopped",
    "error").

    >>> p = Poller(lambda: "done")
    >>> p.start(); p.join(5); p.running
    False
    """

    def __init__(
        self,
        tick: Callable[[], Tick],
        *,
        interval: float = 0.5,
        slow_interval: float = 3.0,
        slow_after: float = 30.0,
        idle_timeout: float = 900.0,
        clock: Clock = SYSTEM,
        on_stop: Callable[[str], None] | None = None,
        name: str = "nbjobs-view",
    ) -> None:
        self._tick = tick
        self.interval, self.slow_interval = interval, slow_interval
        self.slow_after, self.idle_timeout = slow_after, idle_timeout
        self._clock = clock
        self._on_stop = on_stop
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_thread: threading.Thread | None = None
        self._stopped = False
        self._last_change = clock.monotonic()
        self.ticks = 0

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def start(self) -> None:
        """Start polling, or wake a poller that is waiting or slowed down (poll now)."""
        with self._lock:
            self._stopped = False
            self._last_change = self._clock.monotonic()
            if self._thread is not None:
                self._wake.set()
                return
            self._thread = self._last_thread = threading.Thread(
                target=self._run, name=self._name, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (the thread ends at its next wake-up, at once if waiting)."""
        with self._lock:
            self._stopped = True
            self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the polling thread to end (tests; the thread is a daemon)."""
        thread = self._last_thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        reason, failures = "stopped", 0
        while True:
            outcome, failures = self._safe_tick(failures)
            with self._lock:
                reason = self._exit_reason(outcome, failures)
                if reason:
                    self._thread = None
                    break
                self._wake.clear()
                quiet = self._clock.monotonic() - self._last_change
            self._wake.wait(self.interval if quiet < self.slow_after else self.slow_interval)
        if self._on_stop is not None:
            quietly(self._on_stop, reason)

    def _safe_tick(self, failures: int) -> tuple[Tick, int]:
        try:
            outcome = self._tick()
        except Exception:
            log.debug("nbjobs: a widget refresh failed", exc_info=True)
            return "same", failures + 1
        self.ticks += 1
        return outcome, 0

    def _exit_reason(self, outcome: Tick, failures: int) -> str:
        """Why the thread should end now ('' to go on). Called with the lock held."""
        now = self._clock.monotonic()
        if outcome == "changed":
            self._last_change = now
        if self._stopped:
            return "stopped"
        if outcome == "done":
            return "done"
        if failures >= 5:
            return "error"
        return "idle" if now - self._last_change >= self.idle_timeout else ""


def patient(
    tick: Callable[[], Tick],
    *,
    interval: float,
    clock: Clock,
    name: str,
    on_stop: Callable[[str], None] | None = None,
) -> Poller:
    """A poller for a view of jobs that may run for hours without a word (a job's widget,
    `nbjobs.watch`): it slows to every 5 s and gives up only after 4 hours of quiet (a view
    whose jobs all finished stops at once)."""
    return Poller(
        tick,
        interval=interval,
        slow_interval=5.0,
        idle_timeout=4 * 3600.0,
        clock=clock,
        on_stop=on_stop,
        name=name,
    )


class Redraws:
    """Whether a poll must read the store and redraw, or can stop at one cheap read.

    A poll passes what it saw (`seen`: the store's version and the view's own state); it
    needs a redraw unless that is what the last redraw saw, what is shown does not move
    with the clock (no elapsed time or countdown), and that redraw is less than `every` s
    old (what changes without a write, as a worker that died, still shows).

    >>> redraws = Redraws()
    >>> redraws.needed((7, "page 1")), redraws.done((7, "page 1"), timeless=True)
    (True, None)
    >>> redraws.needed((7, "page 1")), redraws.needed((8, "page 1"))
    (False, True)
    """

    def __init__(self, every: float = 5.0, clock: Clock = SYSTEM) -> None:
        self.every = every
        self._clock = clock
        self._seen: object = None
        self._until = float("-inf")

    def needed(self, seen: object) -> bool:
        """True unless the last redraw saw `seen` and is still fresh."""
        return seen != self._seen or self._clock.monotonic() >= self._until

    def done(self, seen: object, *, timeless: bool) -> None:
        """A redraw of what `seen` describes was made (`timeless`: it shows no clock)."""
        self._seen = seen
        self._until = self._clock.monotonic() + self.every if timeless else float("-inf")

    def forget(self) -> None:
        """The next poll redraws (a click asks for the store as it is now)."""
        self._seen, self._until = None, float("-inf")


def quietly(fn: Callable[..., object], *args: Any) -> None:
    """Call `fn(*args)`; a failure is logged (debug), never raised: views outlive their errors."""
    try:
        fn(*args)
    except Exception:
        log.debug("nbjobs: widget callback failed", exc_info=True)
