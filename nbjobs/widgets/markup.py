"""The HTML inside the live views: result previews, error summaries, table cells.

No ipywidgets here; the static helpers shared with `Job._repr_html_` live in `nbjobs.render`.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from nbjobs import render, shorten, states
from nbjobs.records import CORRUPT, JobRecord, ScheduleRecord
from nbjobs.scheduling import manage

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoredData

AUTO_PREFIX = "auto:"  # how the keys of `key=nbjobs.auto` begin (nbjobs.calls.autokey)
_BAR_STYLES = {
    states.RUNNING: "info",
    states.SUCCEEDED: "success",
    states.FAILED: "danger",
    states.RETRYING: "warning",
    states.INTERRUPTED: "warning",
}


class Previews:
    """Result previews and error summaries, loaded once per run of a job (results are
    immutable until the job runs again) and only when small (stored inline)."""

    def __init__(self, store: StoredData, limit: int = 80) -> None:
        self.store = store
        self.limit = limit
        self._cache: dict[tuple[str, int, float | None], str] = {}

    def html(self, rec: JobRecord) -> str:
        """The outcome column: result preview, error summary or a hint, as HTML."""
        if rec.status == states.FAILED:
            return hover_span(
                "nbjobs-err", render.error_line(rec), render.error_line(rec, shorten.HOVER_LIMIT)
            )
        if rec.status == states.INTERRUPTED:
            return "<span class='nbjobs-muted'>interrupted: resume to run again</span>"
        if rec.status != states.SUCCEEDED or not rec.has_result:
            return ""
        key = (rec.id, rec.runs, rec.finished_at)
        if key not in self._cache:
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[key] = self._load(rec)
        return self._cache[key]

    def _load(self, rec: JobRecord) -> str:
        storage = self.store.storage
        row = self._inline(rec.id)
        if row is None:  # a job of this process whose result is still in the write queue
            self.store.flush()
            row = self._inline(rec.id)
        if row is None:
            return "<span class='nbjobs-muted'>(no result stored)</span>"
        if not row[0]:
            return "<span class='nbjobs-muted'>(large result: job.result() loads it)</span>"
        try:
            value = storage.load_value(f"r:{rec.id}")
        except Exception as exc:
            text = f"(result cannot be loaded here: {type(exc).__name__})"
            return f"<span class='nbjobs-code'>{html.escape(text)}</span>"
        return hover_span(
            "nbjobs-code", shorten.short_repr(value, self.limit), shorten.hover_repr(value)
        )

    def _inline(self, job_id: str) -> tuple[bool] | None:
        """(stored inline?,) for the job's result, None if there is none. Results above the
        store's inline limit live in files and are not loaded for a preview."""
        inline = self.store.storage.blob_inline(f"r:{job_id}")
        return None if inline is None else (inline,)


def hover_span(cls: str, text: str, whole: str) -> str:
    """`text` in a span of class `cls`, with `whole` as its tooltip when it says more."""
    title = f" title='{html.escape(whole)}'" if whole != text else ""
    return f"<span class='{cls}'{title}>{html.escape(text)}</span>"


def outcome_text(rec: JobRecord, previews: Previews) -> str:
    """The outcome HTML, or the state's hint for jobs not finished yet."""
    if rec.status == states.PENDING:
        return "<span class='nbjobs-muted'>queued</span>"
    return previews.html(rec)


def bar_style(status: str) -> str:
    """The progress bar's colour for a status ('' for the default)."""
    return _BAR_STYLES.get(status, "")


def bar_traits(rec: JobRecord) -> dict[str, Any]:
    """The traits of a job's progress bar: how full, what colour."""
    return {"value": render.fraction(rec), "bar_style": bar_style(rec.status)}


#: An indeterminate bar (animated by the style sheet) for a job running without progress.
BUSY = "<div class='nbjobs-busy' title='running (no progress reported)'></div>"


def gauge(rec: JobRecord, now: float) -> tuple[bool, str]:
    """(show the progress bar?, the HTML shown in its place if not): a bar only where a
    job reported progress; else an indeterminate bar while it runs, the countdown to its
    next attempt while it is retrying, and how long it took once it is finished."""
    if rec.progress is not None:
        return True, ""
    if rec.status == states.RUNNING:
        return False, BUSY
    if rec.status == states.RETRYING and rec.retry_at is not None:
        return False, _muted(f"retry in {render.duration(rec.retry_at - now)}")
    took = render.elapsed(rec, now)
    if rec.status in states.FINISHED and took is not None:
        return False, _muted(f"took {render.duration(took)}")
    return False, ""


def _muted(text: str) -> str:
    return f"<span class='nbjobs-muted'>{html.escape(text)}</span>"


def guard(fn: Callable[[], Any]) -> Any:
    """`fn()`, or the text of its error: one failed read must not hide the rest of a view."""
    try:
        return fn()
    except Exception as exc:
        return f"({type(exc).__name__}: {exc})"


COLUMNS = (
    ("nbjobs-name", "job"),
    ("nbjobs-status", "status"),
)
COLUMNS_RIGHT = (
    ("nbjobs-msg", "progress"),
    ("nbjobs-att", "tries"),
    ("nbjobs-start", "started"),
    ("nbjobs-el", "elapsed"),
    ("nbjobs-out", "result / error"),
)


def cells(spec: Iterable[tuple[str, str]], th: bool = False) -> str:
    """One line of table cells: (CSS class, HTML) pairs; `th` for the header."""
    cls = " nbjobs-th" if th else ""
    spans = "".join(f"<span class='nbjobs-c {c}{cls}'>{text}</span>" for c, text in spec)
    return f"<div class='nbjobs-line'>{spans}</div>"


def label(rec: JobRecord) -> str:
    """What tells a job apart from others of its name: its key, else the summary of its
    arguments (`(0.1, window=20)`), else (a record from before nbjobs kept summaries)
    its id. Automatic keys are hashes: the summary says more.

    >>> label(JobRecord(id="a1", name="fit", summary="0.1, window=20"))
    '(0.1, window=20)'
    """
    if rec.key and not (rec.key.startswith(AUTO_PREFIX) and rec.summary is not None):
        return rec.key
    return rec.id if rec.summary is None else f"({rec.summary})"


def row_html(rec: JobRecord, now: float, previews: Previews) -> tuple[str, str]:
    """The two HTML cells of a table row: (`name_cell`, `progress_cells`)."""
    return name_cell(rec), progress_cells(rec, now, previews)


def name_cell(rec: JobRecord) -> str:
    """Name, label (`label`) and status of a row; all it says about the job on hover.
    It changes only with the job's status (a row keeps it until then)."""
    tag = html.escape(label(rec))
    said = (rec.name, rec.key, rec.summary and f"({rec.summary})", f"id {rec.id}")
    whole = html.escape("\n".join(filter(None, said)))
    gap = "" if tag.startswith("(") else " "  # `fit(0.1, window=20)`, `fit key-1`
    name = (
        f"<span title='{whole}'><b>{html.escape(rec.name)}</b>{gap}"
        f"<span class='nbjobs-muted nbjobs-code'>{tag}</span></span>"
    )
    return cells((("nbjobs-name", name), ("nbjobs-status", render.badge(rec.status))))


def progress_cells(rec: JobRecord, now: float, previews: Previews) -> str:
    """Progress text, tries, start, elapsed and outcome of a row."""
    text = html.escape(render.progress_text(rec.progress_info(), rec.status))
    return cells(
        (
            ("nbjobs-msg nbjobs-muted", text),
            ("nbjobs-att", str(rec.attempts)),
            ("nbjobs-start nbjobs-muted", render.clock_time(rec.started_at, now)),
            ("nbjobs-el", render.duration(render.elapsed(rec, now))),
            ("nbjobs-out", outcome_text(rec, previews)),
        )
    )


def schedule_times(rec: ScheduleRecord, now: float) -> tuple[str, str]:
    """What a schedule's line says about time at `now`: (`in 4m 10s`, `due 3s ago` or
    `paused`; the clock time of its last firing, or '')."""
    wait = rec.next_at - now
    if rec.paused:
        upcoming = "paused"
    elif wait >= 0:
        upcoming = f"in {render.duration(wait)}"
    else:
        upcoming = f"due {render.duration(-wait)} ago"
    return upcoming, render.clock_time(rec.last_slot, now)


def schedule_html(rec: ScheduleRecord, times: tuple[str, str], last_status: str | None) -> str:
    """One line of the panel's schedules: name, rule, next firing and last firing (`times`,
    from `schedule_times`), with its job's status (`last_status`) when that job is known."""
    name = f"<b title='{html.escape(rec.fn_name)}'>{html.escape(rec.name)}</b>"
    if rec.fn_name == CORRUPT:
        unreadable = "its record cannot be read: remove it with nbjobs.unschedule(name)"
        return cells((("nbjobs-name", name), ("nbjobs-out nbjobs-err", unreadable)))
    shown = manage.describe(rec)
    upcoming, last_time = times
    zone = f" <span class='nbjobs-muted'>{html.escape(rec.tz)}</span>" if rec.cron else ""
    when = f"<span title='{shown['next_at']}'>{upcoming}</span>"
    if rec.paused:
        when = render.badge(upcoming)
    last = "<span class='nbjobs-muted'>not fired yet</span>"
    if rec.last_slot is not None:
        status = render.badge(last_status) if last_status else ""
        last = (
            f"<span class='nbjobs-muted' title='{shown['last_slot']}'>last</span> "
            f"{last_time} {status} <span class='nbjobs-muted'>· fired {rec.fired:,}</span>"
        )
    return cells(
        (
            ("nbjobs-name", name),
            ("nbjobs-when", html.escape(shown["when"]) + zone),
            ("nbjobs-next", when),
            ("nbjobs-out", last),
        )
    )
