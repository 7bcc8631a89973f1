"""The panel's schedules: one line per schedule of the store, each with a pause/resume button."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import TYPE_CHECKING

from nbjobs.records import CORRUPT, ScheduleRecord
from nbjobs.widgets import ui
from nbjobs.widgets.markup import schedule_html, schedule_times

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoreSource

#: A schedule and the status of the job of its last firing (None: never fired, or forgotten).
Shown = tuple[ScheduleRecord, str | None]


class ScheduleStrip:
    """The schedules of a store, hidden while it has none. Lines are reused across refreshes.

    >>> strip = ScheduleStrip(store, wake=lambda: None)     # doctest: +SKIP
    >>> strip.show(strip.read(store.stats()), now=time.time())  # doctest: +SKIP
    """

    def __init__(self, store: StoreSource, wake: Callable[[], None]) -> None:
        self.store = store
        self._wake = wake
        self.note = ui.HTML()
        self.lines: list[ScheduleLine] = []
        self.list = ui.VBox()
        title = ui.HTML("<span class='nbjobs-th'>schedules</span>")
        self.box = ui.VBox(
            [ui.HBox([title, self.note]), self.list],
            layout=ui.Layout(display="none", margin="2px 0 4px 0"),
        )
        self._statuses: tuple[tuple[object, ...], dict[str, str]] = ((), {})

    def read(self, counts: dict[str, int]) -> list[Shown]:
        """The schedules (one read of their small table) and their last firings' statuses.

        The statuses are read again only when a schedule fired or the store's counts per
        status changed (a job changed state): an unchanged store costs no job read.
        """
        storage = self.store.storage
        recs = storage.schedules()
        ids = [rec.last_job_id for rec in recs if rec.last_job_id is not None]
        seen = (tuple(ids), tuple(counts.items()))
        if seen != self._statuses[0]:
            self._statuses = (seen, storage.statuses(ids) if ids else {})
        found = self._statuses[1]
        return [(rec, found.get(rec.last_job_id or "")) for rec in recs]

    def show(self, shown: list[Shown], now: float) -> int:
        """Show these schedules (hide the strip if there are none); returns the traits set."""
        n = ui.show_if(self.box, bool(shown))
        if len(shown) > len(self.lines):
            self.lines += [ScheduleLine(self) for _ in range(len(shown) - len(self.lines))]
            self.list.children = tuple(line.box for line in self.lines)
            n += 1
        for i, line in enumerate(self.lines):
            n += line.show(shown[i] if i < len(shown) else None, now)
        return n

    def act(self, line: ScheduleLine) -> None:
        """A line's button: pause or resume its schedule through the public API."""
        name = line.name
        if name is None:
            return
        try:
            if line.paused:
                self.store.resume_schedule(name)
            else:
                self.store.pause_schedule(name)
            note = ""
        except Exception as exc:
            verb = "resume" if line.paused else "pause"
            text = f"{verb} {name} failed: {exc}"
            note = f" <span class='nbjobs-err'>{html.escape(text)}</span>"
        self.note.value = note
        self._wake()


class ScheduleLine:
    """One line of the strip (reused for whichever schedule it shows) and its button."""

    def __init__(self, strip: ScheduleStrip) -> None:
        self.name: str | None = None
        self.paused = False
        self.button = ui.Button(icon="pause", tooltip="pause this schedule")
        self.button.add_class("nbjobs-toggle")
        self.button.on_click(lambda _b: strip.act(self))
        self.text = ui.HTML(layout=ui.Layout(flex="1 1 0%", min_width="0"))
        self.box = ui.HBox([self.button, self.text], layout=ui.Layout(display="none"))
        self.box.add_class("nbjobs-sched")
        self._shown: tuple[object, ...] = ()

    def show(self, shown: Shown | None, now: float) -> int:
        """Show one schedule (None: hide the line); returns the number of traits set."""
        if shown is None:
            self.name, self._shown = None, ()
            return ui.show_if(self.box, False)
        rec, last_status = shown
        self.name, self.paused = rec.name, rec.paused
        times = schedule_times(rec, now)
        if (rec, last_status, times) == self._shown:
            return 0  # the line shows this already: no HTML built, no trait compared
        self._shown = (rec, last_status, times)
        n = ui.show_if(self.box, True)
        n += ui.set_traits(self.text, value=schedule_html(rec, times, last_status))
        return n + ui.set_traits(
            self.button,
            icon="play" if rec.paused else "pause",
            tooltip="resume this schedule" if rec.paused else "pause this schedule",
            disabled=rec.fn_name == CORRUPT,
        )
