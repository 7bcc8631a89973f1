"""The compact live widget shown when a `Job` is the value of a cell."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nbjobs import render, states
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import JobNotFound
from nbjobs.records import JobRecord
from nbjobs.widgets import ui
from nbjobs.widgets.markup import Previews, bar_traits, guard, outcome_text
from nbjobs.widgets.polling import Poller, Tick, quietly
from nbjobs.widgets.registry import REGISTRY

if TYPE_CHECKING:
    from nbjobs.widgets.sources import JobSource


class JobView:
    """The compact live widget shown when a `Job` is the value of a cell.

    >>> JobView(job).widget          # doctest: +SKIP
    """

    def __init__(self, job: JobSource, *, interval: float = 0.5, clock: Clock = SYSTEM) -> None:
        self.job = job
        self.previews = Previews(job.store, limit=200)
        self._clock = clock
        self.title = ui.HTML()
        self.bar = ui.FloatProgress(value=0.0, min=0.0, max=1.0, layout=ui.Layout(width="220px"))
        self.label = ui.HTML(layout=ui.Layout(margin="0 0 0 8px"))
        self.outcome = ui.HTML()
        self.progress_line = ui.HBox([self.bar, self.label])
        self.tb_button = ui.Button(
            description="traceback", icon="chevron-down", layout=ui.Layout(display="none")
        )
        self.tb = ui.HTML(layout=ui.Layout(display="none"))
        self.tb_button.on_click(self._toggle_traceback)
        self.widget = ui.root(
            "nbjobs-job",
            [self.title, self.progress_line, ui.HBox([self.outcome, self.tb_button]), self.tb],
        )
        # A job may run for hours without reporting progress: poll it slowly for long
        # before giving up (a finished job ends the polling at once).
        self.poller = Poller(
            self.tick,
            interval=interval,
            slow_interval=5.0,
            idle_timeout=4 * 3600.0,
            clock=clock,
            on_stop=self._stopped,
            name="nbjobs-job",
        )
        self._seen: tuple[Any, ...] = ()
        self.updates = 0

    def tick(self) -> Tick:
        """Show the job's current record; "done" once it is finished (or forgotten)."""
        if self.widget.comm is None:
            return "done"
        try:
            rec = self.job.record()
        except JobNotFound:
            self.updates += ui.set_traits(self.title, value=self._title_html(None))
            return "done"
        self.updates += self.apply(rec)
        seen = (rec.status, rec.updated_at, rec.progress)
        changed, self._seen = seen != self._seen, seen
        if rec.status in states.FINISHED:
            return "done"
        return "changed" if changed else "same"

    def apply(self, rec: JobRecord) -> int:
        now = self._clock.now()
        failed = rec.status == states.FAILED
        text = render.progress_text(rec.progress_info(), rec.status)
        return (
            ui.set_traits(self.title, value=self._title_html(rec, now))
            + ui.set_traits(self.bar, **bar_traits(rec))
            + ui.set_traits(
                self.label, value=f"<span class='nbjobs-muted'>{html.escape(text)}</span>"
            )
            + ui.set_traits(self.outcome, value=outcome_text(rec, self.previews))
            + ui.show_if(self.tb_button, failed)
            + ui.show_if(self.progress_line, _has_bar(rec))
        )

    def _title_html(self, rec: JobRecord | None, now: float = 0.0) -> str:
        if rec is None:
            return f"<b>{html.escape(self.job.name)}</b> <i>(no longer in the store)</i>"
        key = html.escape(rec.key if rec.key and rec.key != rec.name else "")
        return (
            f"<b>{html.escape(rec.name)}</b> <span class='nbjobs-muted nbjobs-code'>{key}</span> "
            f"{render.badge(rec.status)} "
            f"<span class='nbjobs-muted'>{html.escape(render.meta_line(rec, now))}</span>"
        )

    def _toggle_traceback(self, _button: Any = None) -> None:
        if self.tb.layout.display == "none":
            text = guard(self.job.traceback) or "(no traceback stored)"
            self.tb.value = f"<div class='nbjobs-pre'>{html.escape(text)}</div>"
            self.tb.layout.display = ""
            self.tb_button.icon = "chevron-up"
        else:
            self.tb.layout.display = "none"
            self.tb_button.icon = "chevron-down"

    def show(self) -> None:
        """Register in this cell (closing views of an earlier run of it) and start polling."""
        REGISTRY.add(self, *ui.cell_context())
        self.tick()
        self.poller.start()

    def _stopped(self, reason: str) -> None:
        if reason in ("idle", "error"):
            note = " <i class='nbjobs-muted'>(paused: evaluate the job again to refresh)</i>"
            quietly(lambda: ui.set_traits(self.title, value=self.title.value + note))

    def close(self) -> None:
        """Stop polling and close the widgets (the output disappears)."""
        self.poller.stop()
        ui.close_tree(self.widget)


def _has_bar(rec: JobRecord) -> bool:
    """A bar is worth showing while a job is under way or when it reported progress."""
    return rec.progress is not None or rec.status in (states.RUNNING, states.PENDING)


def job_bundle(job: JobSource, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    """The display data of a `Job` in a kernel: its live widget, with the text repr as
    fallback; None outside a kernel (the plain reprs are used)."""
    if (exclude and ui.WIDGET_MIME in exclude) or (include and ui.WIDGET_MIME not in include):
        return None
    if not ui.in_kernel():
        return None
    view = JobView(job)
    view.show()
    bundle: dict[str, Any] = view.widget._repr_mimebundle_()
    bundle["text/plain"] = repr(job)
    return bundle
