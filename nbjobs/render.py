"""Text and HTML for showing jobs: durations, status badges, progress, the static job card.

No ipywidgets here: `Job._repr_html_` (nbconvert, plain HTML) and the live widgets in
`nbjobs.widgets` share these helpers. Colours are JupyterLab's `--jp-*` theme variables
(with fallbacks outside Jupyter), so light and dark themes both read well.
"""

from __future__ import annotations

import time

from nbjobs import states
from nbjobs.records import JobRecord, Progress
from nbjobs.shorten import cut

#: One theme variable per status (fallback colour for pages without JupyterLab's theme).
STATUS_COLORS = {
    states.PENDING: "var(--jp-ui-font-color2, #6b7280)",
    states.RUNNING: "var(--jp-brand-color1, #1976d2)",
    states.RETRYING: "var(--jp-warn-color1, #f57c00)",
    states.SUCCEEDED: "var(--jp-success-color1, #388e3c)",
    states.FAILED: "var(--jp-error-color1, #d32f2f)",
    states.CANCELLED: "var(--jp-ui-font-color2, #6b7280)",
    states.INTERRUPTED: "var(--jp-warn-color0, #e65100)",
}
MUTED = "var(--jp-ui-font-color2, #6b7280)"
BORDER = "var(--jp-border-color2, #e0e0e0)"


def duration(seconds: float | None) -> str:
    """A short human duration.

    >>> duration(0.42), duration(75), duration(3725), duration(200_000)
    ('0.4s', '1m 15s', '1h 02m', '2d 07h')
    """
    if seconds is None:
        return ""
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m {sec:02d}s"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h {m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d {h:02d}h"


def elapsed(rec: JobRecord, now: float) -> float | None:
    """Seconds the current run has taken (so far, if it is still going), or None."""
    if rec.started_at is None:
        return None
    end = rec.finished_at if rec.finished_at is not None else now
    return end - rec.started_at


def clock_time(ts: float | None, now: float) -> str:
    """`14:03:07` for today, `Mar 02 14:03` for another day, '' for None."""
    if ts is None:
        return ""
    same_day = time.localtime(ts)[:3] == time.localtime(now)[:3]
    return time.strftime("%H:%M:%S" if same_day else "%b %d %H:%M", time.localtime(ts))


def progress_text(p: Progress | None, status: str) -> str:
    """What the progress bar's label says: percent or count, message, ETA.

    >>> progress_text(Progress(3, 10, "fold 3", rate=1.0), "running")
    '30% · fold 3 · ETA 7.0s'
    """
    if p is None:
        return ""
    parts = []
    frac = p.fraction
    if frac is not None:
        parts.append(f"{frac:.0%}")
    else:
        parts.append(f"{p.current:g}" + (f"/{p.total:g}" if p.total else ""))
    if p.message:
        parts.append(p.message)
    eta = p.eta
    if eta is not None and status == states.RUNNING and (frac or 0) < 1:
        parts.append(f"ETA {duration(eta)}")
    return " · ".join(parts)


def clock_span(seconds: float) -> str:
    """Seconds as tqdm writes them: `00:07`, `12:40`, `1:02:03`.

    >>> clock_span(7.4), clock_span(3723)
    ('00:07', '1:02:03')
    """
    m, s = divmod(int(max(0.0, seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def rate_text(rate: float | None, unit: str = "it") -> str:
    """A rate as tqdm writes it: `2.2 it/s`, or `4.5 s/it` below one per second.

    >>> rate_text(2.24), rate_text(0.2, "fold"), rate_text(None)
    ('2.2 it/s', '5.0 s/fold', '')
    """
    if not rate or rate < 0:
        return ""
    if rate < 1:
        return f"{1 / rate:.1f} s/{unit}"
    return f"{rate:.1f} {unit}/s" if rate < 100 else f"{rate:,.0f} {unit}/s"


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def tqdm_line(p: Progress, took: float | None, status: str) -> str:
    """How far, how fast, how long, as tqdm says it; `took` is the attempt's elapsed
    seconds, the ETA is shown while it runs.

    >>> tqdm_line(Progress(16, 70, "fold 3", rate=2.2), 7.0, "running")
    'fold 3: 23% 16/70 [00:07<00:24, 2.2 it/s]'
    >>> tqdm_line(Progress(5, rate=0.5, unit="file"), 10.0, "succeeded")
    '5 file [00:10, 2.0 s/file]'
    """
    unit = p.unit or "it"
    frac = p.fraction
    if frac is not None and p.total is not None:
        done = f"{frac:.0%} {_count(p.current)}/{_count(p.total)}"
    else:
        done = f"{_count(p.current)} {unit}"
    when = clock_span(took) if took is not None else "?"
    eta = p.eta
    if eta is not None and status == states.RUNNING:
        when += f"<{clock_span(eta)}"
    rate = rate_text(p.rate, unit)
    head = f"{p.message}: " if p.message else ""
    return f"{head}{done} [{when}{', ' + rate if rate else ''}]"


def fraction(rec: JobRecord) -> float:
    """How full the progress bar is: reported progress, else 1 for a succeeded job."""
    p = rec.progress_info()
    frac = p.fraction if p is not None else None
    if rec.status == states.SUCCEEDED:
        return 1.0
    return frac if frac is not None else 0.0


def badge(status: str) -> str:
    """A coloured status pill (HTML)."""
    import html  # in the HTML makers only: `import nbjobs` and the CLI need not load it

    color = STATUS_COLORS.get(status, MUTED)
    return (
        f"<span class='nbjobs-badge' style='color:{color};border:1px solid {color};"
        "border-radius:9px;padding:0 7px;font-size:0.85em;font-weight:600;"
        f"white-space:nowrap'>{html.escape(status)}</span>"
    )


def bar(frac: float, status: str, width: str = "140px") -> str:
    """A static progress bar (HTML) for pages where widgets do not render."""
    color = STATUS_COLORS.get(status, MUTED)
    return (
        f"<span style='display:inline-block;vertical-align:middle;width:{width};height:8px;"
        f"border-radius:4px;background:var(--jp-layout-color3, #ddd);overflow:hidden'>"
        f"<span style='display:block;height:100%;width:{frac * 100:.1f}%;"
        f"background:{color}'></span></span>"
    )


def error_line(rec: JobRecord, limit: int = 160) -> str:
    """`Type: message` of a failed job, cut to `limit` characters ('' if none)."""
    if rec.error is None:
        return ""
    return cut(f"{rec.error.type}: {rec.error.message}", limit)


def meta_line(rec: JobRecord, now: float) -> str:
    """`attempt 2 · 12.3s` (or `waiting`) for one job."""
    parts = [f"attempt {rec.attempts}" if rec.attempts else "not started"]
    took = elapsed(rec, now)
    if took is not None:
        parts.append(duration(took))
    return " · ".join(parts)


def job_card(rec: JobRecord, now: float) -> str:
    """The static HTML card of one job (`Job._repr_html_`): the facts the live widget shows.

    >>> "failed" in job_card(JobRecord(id="a1", name="fit", status="failed"), 0.0)
    True
    """
    import html

    key = f" <code>{html.escape(rec.key)}</code>" if rec.key else ""
    p = rec.progress_info()
    progress = ""
    if p is not None or rec.status == states.RUNNING:
        progress = (
            f"<div>{bar(fraction(rec), rec.status)} "
            f"<span style='color:{MUTED}'>{html.escape(progress_text(p, rec.status))}</span></div>"
        )
    err = error_line(rec, 300)
    err_html = (
        f"<div style='color:{STATUS_COLORS[states.FAILED]}'>{html.escape(err)}</div>" if err else ""
    )
    return (
        "<div class='nbjobs-card' style='font-family:var(--jp-ui-font-family, sans-serif);"
        f"border:1px solid {BORDER};border-radius:6px;padding:6px 10px;display:inline-block'>"
        f"<b>{html.escape(rec.name)}</b>{key} {badge(rec.status)} "
        f"<span style='color:{MUTED}'>{html.escape(meta_line(rec, now))}</span>"
        f"{progress}{err_html}</div>"
    )
