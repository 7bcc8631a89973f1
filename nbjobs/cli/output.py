"""How the console script prints: the job table, a record's fields, attempts, JSON, warnings."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from nbjobs import render, states
from nbjobs.records import CORRUPT, JobRecord

if TYPE_CHECKING:
    from nbjobs.api.job import Job

_TEXT = {"key": 24, "name": 24, "error": 60}  # widest text shown per column in `ls`


def job_row(rec: JobRecord, now: float) -> tuple[str, ...]:
    corrupt = is_corrupt(rec)
    created = date(rec.created_at)
    return (
        rec.id,
        cut(rec.key or "", _TEXT["key"]),
        cut(rec.name, _TEXT["name"]),
        "corrupt" if corrupt else rec.status,
        "" if corrupt else str(rec.attempts),
        "" if corrupt else created,
        render.duration(render.elapsed(rec, now)),
        cut(one_line(render.error_line(rec)), _TEXT["error"]),
    )


_TIMES = frozenset({"lease_until"})  # besides the `*_at` fields
_SECONDS = frozenset({"timeout", "soft_timeout", "idle_for"})


def field_text(rec: JobRecord, field: str, value: Any) -> Any:
    """How `nbjobs show` prints one field of a job's record: dates as dates, seconds as
    durations, progress and past runs as sentences; anything else as it is."""
    if (field.endswith("_at") or field in _TIMES) and isinstance(value, int | float):
        return date(value)
    if field in _SECONDS and isinstance(value, int | float):
        return seconds_text(value)
    if field == "error":
        return render.error_line(rec, limit=10_000)
    if field == "progress":
        return progress_field(rec)
    if field == "history" and isinstance(value, list):
        return "; ".join(run_text(run) for run in value if isinstance(run, dict))
    if field in ("tags", "deps") and isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return value


def date(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def seconds_text(value: float) -> str:
    """`0.25s`, `30s`, `2m 00s`: exact below a minute, where `render.duration` rounds."""
    return f"{value:.3g}s" if value < 60 else render.duration(value)


def progress_field(rec: JobRecord) -> str:
    info = rec.progress_info()
    text = render.progress_text(info, rec.status) or "-"
    if info is not None and info.updated_at:
        text += f" (reported {date(info.updated_at)})"
    return text


def run_text(run: dict[str, Any]) -> str:
    """`run 1: failed after 2 attempts (ValueError: x), ended 2026-12-07 21:49:23`."""
    n = run.get("attempts") or 0
    text = f"run {run.get('run', '?')}: {run.get('status', '?')} after {n} attempt"
    text += "" if n == 1 else "s"
    err = run.get("error")
    if isinstance(err, dict) and run.get("status") != states.SUCCEEDED:
        text += f" ({err.get('type')}: {cut(one_line(err.get('message')), 100)})"
    if isinstance(run.get("finished_at"), int | float):
        text += f", ended {date(run['finished_at'])}"
    return text


def print_table(header: Sequence[str], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    for row in [tuple(header), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def attempt_line(entry: dict[str, Any]) -> str:
    took = None
    if entry.get("started_at") and entry.get("finished_at"):
        took = entry["finished_at"] - entry["started_at"]
    err = entry.get("error") or {}
    outcome = "ok" if entry.get("ok") else f"{err.get('type')}: {err.get('message')}"
    return (
        f"attempt {entry.get('number', '?')} (run {entry.get('run', '?')}) "
        f"{render.duration(took)}  {cut(one_line(outcome), 100)}"
    )


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def is_corrupt(rec: JobRecord) -> bool:
    return rec.error is not None and rec.error.type == CORRUPT


def label(job: Job) -> str:
    return f"{job.id} ({job.key or job.name})"


def one_line(value: Any) -> str:
    return " ".join(str(value).split())


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"nbjobs: warning: {message}", file=sys.stderr)
