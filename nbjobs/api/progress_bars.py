"""`nbjobs.watch(jobs)`: one live bar per group of jobs, in a cell or on stderr.

In a notebook it displays a live view (widgets/watch_view.py) and returns at once, as Dask's
`progress(futures)` does; elsewhere it draws tqdm-like lines on stderr until every job has
finished (redrawn in place on a terminal, a new line now and then in a log).
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

from nbjobs import validate
from nbjobs.clock import SYSTEM
from nbjobs.errors import InvalidArgument, InvalidArgumentType
from nbjobs.records import JobRecord
from nbjobs.widgets.group_markup import text_line
from nbjobs.widgets.tally import Tally

_LOG_EVERY = 10.0  # seconds between lines when stderr is not a terminal


class Job(Protocol):
    """What is watched of a `nbjobs.Job` (this module does not import it)."""

    _snap: JobRecord  # its last record read: id, name and group never change

    @property
    def store(self) -> Any: ...


def watch(jobs: Iterable[Job], *, interval: float = 0.5, file: IO[str] | None = None) -> None:
    """Show the progress of `jobs`, one bar per group (a map, `Task.map` or `nbjobs.group`;
    other jobs grouped by function name): done of all, elapsed, ETA and rate, and the
    counts that failed.

    In a notebook, displays live bars and returns at once (they update from a thread and
    stop once every job finished). Elsewhere, writes tqdm-like lines to `file` (stderr)
    until every job has finished: `fit |####x>....| 16/70 [00:07<00:27, 2.2 jobs/s]`.

    >>> jobs = nbjobs.map(fit, alphas)     # doctest: +SKIP
    >>> nbjobs.watch(jobs)                  # doctest: +SKIP
    """
    tally = _tally(jobs)
    delay = validate.timeout(interval, "interval") or 0.5
    if file is None and _in_kernel():
        _display(tally, delay)
    else:
        draw_text(tally, file or sys.stderr, delay, threading.Event())


def _display(tally: Tally, interval: float) -> None:
    """Display live bars in this cell."""
    from nbjobs.widgets.watch_view import WatchView  # imports ipywidgets: only here

    WatchView(tally, interval=interval).show()


def draw_text(tally: Tally, out: IO[str], interval: float, stop: threading.Event) -> None:
    """Draw the tally's lines on `out` until every job finished or `stop` is set; the last
    state is always drawn."""
    live = out.isatty()
    drawn = 0
    last_log = float("-inf")
    last: list[str] = []
    while True:
        ended = stop.is_set()
        lines = [text_line(g) for g in tally.poll()]
        finished = tally.done or ended
        now = SYSTEM.monotonic()
        if live:
            up = f"\x1b[{drawn}F" if drawn else ""
            out.write(up + "".join(f"\x1b[2K{text}\n" for text in lines))
            drawn = len(lines)
        elif finished or (lines != last and now - last_log >= _LOG_EVERY):
            out.write("".join(f"{text}\n" for text in lines))
            last_log = now
        last = lines
        out.flush()
        if finished:
            return
        stop.wait(interval)


def progress_while(jobs: Iterable[Job]) -> Callable[[], None]:
    """`wait(..., progress=True)`: live bars in a notebook, or lines on stderr from a
    thread; returns what ends them (the lines end with the jobs' state at that moment)."""
    tally = _tally(jobs)
    if _in_kernel():
        _display(tally, 0.5)
        return lambda: None
    stop = threading.Event()
    thread = threading.Thread(
        target=draw_text, args=(tally, sys.stderr, 0.5, stop), daemon=True, name="nbjobs-bars"
    )
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(5.0)

    return finish


def _tally(jobs: Iterable[Job]) -> Tally:
    """The jobs' tally, after checking they are jobs of one store."""
    one = isinstance(getattr(jobs, "_snap", None), JobRecord)
    if not isinstance(jobs, Iterable) and not one:
        raise InvalidArgumentType(
            f"jobs must be an iterable of nbjobs.Job, not {type(jobs).__name__}"
        )
    listed: list[Job] = [jobs] if one else list(jobs)  # type: ignore[list-item]
    for i, job in enumerate(listed):
        if not isinstance(getattr(job, "_snap", None), JobRecord):
            raise InvalidArgumentType(
                f"jobs must be an iterable of nbjobs.Job, but item {i} is {type(job).__name__}"
            )
    stores = {id(j.store) for j in listed}
    if len(stores) > 1:
        raise InvalidArgument("jobs must all be jobs of one store to be watched together")
    if not listed:
        return Tally([], lambda ids: {})
    store = listed[0].store
    store.flush()  # jobs this process just submitted are read from the store
    # Each job's snapshot (id, name, group never change; statuses are read by the tally):
    # no read per job, so a sweep of 100,000 jobs is watched at once.
    return Tally([j._snap for j in listed], store.storage.statuses)


def _in_kernel() -> bool:
    """Inside a Jupyter kernel (told without importing IPython or ipywidgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None
