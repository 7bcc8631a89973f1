"""`nbjobs.watch(jobs)` in a notebook: one live stacked bar per group, like Dask's progress."""

from __future__ import annotations

import html
from typing import Any

from nbjobs.clock import SYSTEM, Clock
from nbjobs.records import Group
from nbjobs.widgets import ui
from nbjobs.widgets.group_markup import bar_html, counts_html, line
from nbjobs.widgets.polling import Tick, patient
from nbjobs.widgets.registry import REGISTRY
from nbjobs.widgets.tally import Tally


class WatchView:
    """Live bars of a `Tally`, one line per group, polled from a thread until every job
    finished (or the view is closed or its cell re-run).

    >>> view = WatchView(Tally(recs, store.storage.statuses))   # doctest: +SKIP
    >>> view.show(); display(view.widget)                        # doctest: +SKIP
    """

    def __init__(self, tally: Tally, *, interval: float = 0.5, clock: Clock = SYSTEM) -> None:
        self.tally = tally
        self.lines: list[ui.HTML] = []
        self.box = ui.VBox()
        self.widget = ui.root("nbjobs-watch", [self.box])
        self.poller = patient(self.tick, interval=interval, clock=clock, name="nbjobs-watch")
        self.updates = 0
        self._seen: list[Group] = []

    def tick(self) -> Tick:
        """Read the jobs still active and redraw; "done" once all are finished."""
        if self.widget.comm is None:
            return "done"
        groups = self.tally.poll()
        changed = [g.counts for g in groups] != [g.counts for g in self._seen]
        self._seen = groups
        self.updates += self.draw(groups)
        if self.tally.done:
            return "done"
        return "changed" if changed else "same"

    def draw(self, groups: list[Group]) -> int:
        """Show these groups, one line each; returns the number of traits set."""
        n = 0
        if len(groups) > len(self.lines):
            self.lines += [ui.HTML() for _ in range(len(groups) - len(self.lines))]
            self.box.children = tuple(self.lines)
            n += 1
        for i, widget in enumerate(self.lines):
            n += ui.set_traits(widget, value=_line_html(groups[i]) if i < len(groups) else "")
        return n

    def show(self) -> None:
        """Register in this cell (closing views of an earlier run of it), display, poll."""
        REGISTRY.add(self, *ui.cell_context())
        self.tick()
        ui.display(self)
        self.poller.start()

    def close(self) -> None:
        """Stop polling and close the widgets."""
        self.poller.stop()
        ui.close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = repr(self)
        return bundle

    def __repr__(self) -> str:
        return f"<nbjobs watch of {len(self.tally.status)} jobs>"


def _line_html(group: Group) -> str:
    return (
        f"<div class='nbjobs-line'><span class='nbjobs-c nbjobs-name'><b>"
        f"{html.escape(group.name)}</b></span>{bar_html(group, '260px')}"
        f"<span class='nbjobs-c nbjobs-gline'>{html.escape(line(group))}</span>"
        f"<span class='nbjobs-c nbjobs-out'>{counts_html(group)}</span></div>"
    )
