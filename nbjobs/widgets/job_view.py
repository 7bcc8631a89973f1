"""The compact live widget shown when a `Job` is the value of a cell."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nbjobs import render, states
from nbjobs.clock import SYSTEM, Clock
from nbjobs.errors import JobNotFound
from nbjobs.records import JobRecord
from nbjobs.shorten import HOVER_LIMIT
from nbjobs.widgets import markup, reasons, ui
from nbjobs.widgets.markup import Previews, guard
from nbjobs.widgets.polling import Tick, patient, quietly
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
        self.busy = ui.HTML(markup.BUSY, layout=ui.Layout(width="220px", display="none"))
        self.label = ui.HTML(layout=ui.Layout(margin="0 0 0 8px"))
        self.outcome = ui.HTML()
        self.progress_line = ui.HBox([self.bar, self.busy, self.label])
        self.tb_button = ui.Button(
            description="traceback", icon="chevron-down", layout=ui.Layout(display="none")
        )
        self.tb = ui.HTML(layout=ui.Layout(display="none"))
        self.tb_button.on_click(self._toggle_traceback)
        self.widget = ui.root(
            "nbjobs-job",
            [self.title, self.progress_line, ui.HBox([self.outcome, self.tb_button]), self.tb],
        )
        self.poller = patient(
            self.tick, interval=interval, clock=clock, on_stop=self._stopped, name="nbjobs-job"
        )
        self._seen: tuple[Any, ...] = ()
        self._why: tuple[float, tuple[Any, ...], str] = (float("-inf"), (), "")
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
        text = self._line(rec, now)
        has_bar = rec.progress is not None
        busy = not has_bar and rec.status == states.RUNNING
        n = ui.set_traits(self.title, value=self._title_html(rec, now))
        n += ui.set_traits(self.bar, **markup.bar_traits(rec)) if has_bar else 0
        n += ui.show_if(self.bar, has_bar) + ui.show_if(self.busy, busy)
        n += ui.set_traits(self.label, value=text)
        waits = rec.status == states.PENDING  # the line says why; no "queued" below it
        outcome = "" if waits else markup.outcome_text(rec, self.previews)
        n += ui.set_traits(self.outcome, value=outcome)
        n += ui.show_if(self.tb_button, failed)
        return n + ui.show_if(self.progress_line, bool(has_bar or busy or text))

    def _line(self, rec: JobRecord, now: float) -> str:
        """Beside the bar: how far, how fast, how long (tqdm's line); or why a job waits."""
        p = rec.progress_info()
        if rec.status == states.RETRYING:
            text = reasons.why_retrying(rec, now)
            return markup.hover_span("nbjobs-err", text, render.error_line(rec, HOVER_LIMIT))
        if rec.status == states.PENDING:
            text = self._why_pending(rec, now)
        elif p is not None:
            text = render.tqdm_line(p, render.elapsed(rec, now), rec.status)
        else:
            return ""
        return f"<span class='nbjobs-muted'>{html.escape(text)}</span>"

    def _why_pending(self, rec: JobRecord, now: float) -> str:
        """`reasons.why_pending`, read again at most every 2 s (or when the job changed)."""
        checked, seen, text = self._why
        mono = self._clock.monotonic()
        shown = (rec.updated_at, rec.retry_at)
        if seen != shown or mono - checked >= 2.0:
            text = str(guard(lambda: reasons.why_pending(self.job.store, rec, now)))
            self._why = (mono, shown, text)
        return text

    def _title_html(self, rec: JobRecord | None, now: float = 0.0) -> str:
        if rec is None:
            return f"<b>{html.escape(self.job.name)}</b> <i>(no longer in the store)</i>"
        tag = markup.label(rec)
        tag = html.escape("" if tag in (rec.name, rec.id) else tag)
        return (
            f"<b>{html.escape(rec.name)}</b> <span class='nbjobs-muted nbjobs-code'>{tag}</span> "
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
