"""The rows of the panel's table, each with its details box and action buttons."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from nbjobs import states
from nbjobs.records import JobRecord
from nbjobs.widgets import ui
from nbjobs.widgets.details import details_html
from nbjobs.widgets.markup import Previews, bar_traits, gauge, name_cell, progress_cells

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoreSource


class Owner(Protocol):
    """What rows need from their panel (`Panel`; this module does not import it)."""

    @property
    def store(self) -> StoreSource: ...

    @property
    def previews(self) -> Previews: ...

    def toggle(self, row: Row) -> None: ...

    def act(self, action: str, row: Row) -> None: ...


class Row:
    """One table row (reused across pages) and its details box, built on first open."""

    def __init__(self, panel: Owner) -> None:
        self.panel = panel
        self.job_id: str | None = None
        self.toggle = ui.Button(icon="chevron-right", tooltip="details")
        self.toggle.add_class("nbjobs-toggle")
        self.toggle.on_click(lambda _b: panel.toggle(self))
        self.left = ui.HTML(layout=ui.Layout(width="345px", flex="0 0 auto"))
        self.bar = ui.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=ui.Layout(width="110px", margin="0 10px 0 0")
        )
        # in the bar's place when there is no progress to show
        self.gauge = ui.HTML(layout=ui.Layout(width="110px", margin="0 10px 0 0"))
        self.right = ui.HTML(layout=ui.Layout(flex="1 1 0%", min_width="0"))
        line = ui.HBox([self.toggle, self.left, self.bar, self.gauge, self.right])
        line.add_class("nbjobs-row")
        self._named: tuple[str, str] | None = None
        self.details: Details | None = None
        self.holder = ui.VBox()
        self.box = ui.VBox([line, self.holder], layout=ui.Layout(display="none"))

    def show(self, rec: JobRecord | None, now: float, is_open: bool) -> int:
        """Show `rec` (None: hide the row); returns the number of traits set."""
        if rec is None:
            self.job_id = None
            return ui.show_if(self.box, False)
        self.job_id = rec.id
        n = ui.show_if(self.box, True)
        if self._named != (rec.id, rec.status):  # the name cell changes only with these
            self._named = (rec.id, rec.status)
            n += ui.set_traits(self.left, value=name_cell(rec))
        n += ui.set_traits(self.right, value=progress_cells(rec, now, self.panel.previews))
        has_bar, instead = gauge(rec, now)
        n += ui.show_if(self.bar, has_bar) + ui.show_if(self.gauge, not has_bar)
        n += ui.set_traits(self.bar, **bar_traits(rec)) if has_bar else 0
        n += ui.set_traits(self.gauge, value=instead)
        n += ui.set_traits(self.toggle, icon="chevron-down" if is_open else "chevron-right")
        if is_open and self.details is None:
            self.details = Details(self.panel, self)
        if self.details is not None:
            n += ui.show_if(self.holder, is_open)
            if is_open:
                if self.holder.children != (self.details.box,):
                    self.holder.children = (self.details.box,)
                n += self.details.show(rec)
        return n


class Details:
    """Arguments, traceback, log tail, attempt history and the action buttons of one job."""

    def __init__(self, panel: Owner, row: Row) -> None:
        self.panel, self.row = panel, row
        self.info = ui.HTML()
        self.note = ui.HTML()
        self.buttons = {
            name: ui.Button(description=label, icon=icon, button_style=style)
            for name, label, icon, style in (
                ("cancel", "Cancel", "stop", "warning"),
                ("retry", "Retry", "redo", "info"),
                ("delete", "Delete", "trash", ""),
                ("confirm", "Delete for good", "trash", "danger"),
                ("keep", "Keep it", "", ""),
            )
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: panel.act(name, self.row))
        self.confirming = False
        self._shown: tuple[Any, ...] = ()
        self.box = ui.VBox([ui.HBox([*self.buttons.values(), self.note]), self.info])
        self.box.add_class("nbjobs-details")

    def show(self, rec: JobRecord) -> int:
        if self._shown[:1] != (rec.id,):  # the row now shows another job
            self.confirming = False
            self.note.value = ""
        status = rec.status
        n = self._button("cancel", status in states.ACTIVE)
        n += self._button("retry", status in states.RERUN_ON_RESUBMIT)
        deletable = status not in (states.RUNNING, states.RETRYING)
        n += self._button("delete", deletable and not self.confirming)
        n += self._button("confirm", deletable and self.confirming)
        n += self._button("keep", deletable and self.confirming)
        shown = (rec.id, rec.status, rec.updated_at, rec.runs)
        if shown != self._shown:  # payload and traceback are read only when the job changed
            self._shown = shown
            n += ui.set_traits(self.info, value=details_html(self.panel.store, rec))
        return n

    def _button(self, name: str, visible: bool) -> int:
        return ui.show_if(self.buttons[name], visible)
