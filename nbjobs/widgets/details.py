"""The details of one job in the panel (HTML): facts, arguments, traceback, log, history."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from nbjobs import codec, render, shorten, states
from nbjobs.records import JobRecord
from nbjobs.widgets.markup import guard

if TYPE_CHECKING:
    from nbjobs.widgets.sources import JobSource, StoreSource


def details_html(store: StoreSource, rec: JobRecord) -> str:
    """Facts, arguments, traceback, log tail and attempt history of one job (HTML)."""
    job = store.get(rec.id)
    parts = [_facts(rec), _section("arguments", guard(lambda: arguments_text(store, rec)))]
    if rec.status == states.FAILED:
        parts.append(_section("traceback", guard(job.traceback) or "(none stored)"))
    parts.append(_section("log tail", _tail(guard(job.logs))))
    parts.append(_history(rec, job))
    return "".join(parts)


def _section(title: str, text: str) -> str:
    return (
        f"<div class='nbjobs-th' style='margin-top:6px'>{title}</div>"
        f"<div class='nbjobs-pre'>{html.escape(str(text))}</div>"
    )


def _tail(text: str, lines: int = 40) -> str:
    kept = (text or "(no output captured)").splitlines()[-lines:]
    return "\n".join(kept)


def _facts(rec: JobRecord) -> str:
    now = 0.0
    rows = [
        ("id", rec.id),
        ("key", rec.key or ""),
        ("tags", ", ".join(rec.tags)),
        ("executor", rec.executor),
        ("created", render.clock_time(rec.created_at, now)),
        ("finished", render.clock_time(rec.finished_at, now)),
        ("resumable", "yes" if rec.resumable else f"no: {rec.not_resumable_reason or ''}"),
    ]
    cells = "".join(
        f"<tr><td class='nbjobs-muted'>{k}</td><td class='nbjobs-code'>{html.escape(v)}</td></tr>"
        for k, v in rows
        if v
    )
    return f"<table>{cells}</table>"


def arguments_text(store: StoreSource, rec: JobRecord) -> str:
    """`fn(arg, ..., key=value)` with abbreviated reprs, read from the stored payload."""
    if rec.fn_digest is None:
        return "(not stored: " + (rec.not_resumable_reason or "no payload") + ")"
    payload = store.storage.call(rec.id)
    fn_blob = store.storage.blob(f"f:{rec.fn_digest}")
    if payload is None or fn_blob is None:
        return "(no longer stored)"
    fn, args, kwargs = codec.load_payload(payload, fn_blob, store.storage.values)
    shown = [shorten.short_repr(a, 60) for a in args]
    shown += [f"{k}={shorten.short_repr(v, 60)}" for k, v in kwargs.items()]
    name = getattr(fn, "__qualname__", None) or rec.name
    return f"{name}({', '.join(shown)})"


def _history(rec: JobRecord, job: JobSource) -> str:
    """One line per attempt (`job.attempt_history()`), else per run, the current one last."""
    attempts = guard(job.attempt_history)
    lines = []
    if isinstance(attempts, list) and attempts:
        for a in attempts:
            status = states.SUCCEEDED if a.get("ok") else states.FAILED
            if a.get("finished_at") is None:
                status = rec.status
            lines.append(_history_line(f"attempt {a.get('number', '?')}", status, a))
    else:
        current = {"status": rec.status, "started_at": rec.started_at,
                   "finished_at": rec.finished_at,
                   "error": rec.error.to_dict() if rec.error else None}  # fmt: skip
        for run in [*rec.history, {"run": rec.runs, **current}]:
            lines.append(_history_line(f"run {run.get('run', '?')}", str(run["status"]), run))
    title = "<div class='nbjobs-th' style='margin-top:6px'>history</div>"
    return f"{title}<table>{''.join(lines)}</table>"


def _history_line(label: str, status: str, entry: dict[str, Any]) -> str:
    took = None
    if entry.get("started_at") and entry.get("finished_at"):
        took = entry["finished_at"] - entry["started_at"]
    err = entry.get("error") or {}
    error = f"{err.get('type')}: {err.get('message')}" if err else ""
    return (
        f"<tr><td>{label}</td><td>{render.badge(status)}</td>"
        f"<td class='nbjobs-muted'>{render.clock_time(entry.get('started_at'), 0.0)}</td>"
        f"<td>{render.duration(took)}</td>"
        f"<td class='nbjobs-err'>{html.escape(error[:200])}</td></tr>"
    )
