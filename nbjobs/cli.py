"""The `nbjobs` console script (also `python -m nbjobs`): a store from a terminal.

The only module that prints. Same store, same semantics as the library:

    nbjobs ls --status failed            nbjobs show fit-10k       nbjobs logs ID --follow
    nbjobs retry fit-10k                 nbjobs cancel ID          nbjobs resume
    nbjobs purge --older-than 7d         nbjobs stats              nbjobs --json ls
    nbjobs worker --workers 4 --idle-timeout 600
    nbjobs schedules                     nbjobs schedules pause NAME   (resume, rm)

Exit codes: 0 done, 1 the operation failed (no such job, a job that failed, ...),
2 a usage error, 130 interrupted by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from nbjobs import render, states, validate
from nbjobs.api.default_store import default_path
from nbjobs.api.job import Job
from nbjobs.api.store import Store
from nbjobs.errors import InvalidArgument, NbjobsError, StoreError
from nbjobs.records import CORRUPT, JobRecord
from nbjobs.store.folder import FORMAT_FILE
from nbjobs.worker.command import add_options as worker_options
from nbjobs.worker.command import duration_argument, serve

_FINISHED = sorted(states.FINISHED)
_POLL = 0.5  # seconds between progress lines of re-run jobs
_TEXT = {"key": 24, "name": 24, "error": 60}  # widest text shown per column in `ls`


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    args = _parser().parse_args(argv)
    if args.run is _purge and args.older_than is None and args.status is None:
        args.usage(
            "give --older-than AGE, --status S ..., or both (to purge every finished "
            f"job: --status {' '.join(_FINISHED)})"
        )
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        store: Store | None = None
        try:
            store = _open(args.store)
            code: int = args.run(store, args)
            return code
        except NbjobsError as exc:
            print(f"nbjobs: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        except BrokenPipeError:  # `nbjobs ls | head`: the reader left; exit without a traceback
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
        finally:
            if store is not None:
                store.close()


# --------------------------------------------------------------------------- commands
def _ls(store: Store, args: argparse.Namespace) -> int:
    records = store.records(status=args.status, name=args.name, tag=args.tag, limit=args.limit)
    if args.json:
        _print_json([rec.to_dict() for rec in records])
        return 0
    now = store.storage.clock.now()
    rows = [_row(rec, now) for rec in records]
    header = ("ID", "KEY", "NAME", "STATUS", "ATTEMPTS", "CREATED", "DURATION", "ERROR")
    _print_table(header, rows)
    if not rows:
        print("no jobs" + (" match" if args.status or args.name or args.tag else ""))
    return 0


def _show(store: Store, args: argparse.Namespace) -> int:
    job = store.get(args.job)
    rec = job.record()
    tb = job.traceback()
    attempts = job.attempt_history() if not _corrupt(rec) else []
    if args.json:
        _print_json({"job": rec.to_dict(), "traceback": tb, "attempts": attempts})
        return 0
    for field, value in rec.to_dict().items():
        if value not in (None, "", [], {}):
            print(f"{field:<21} {_one_line(_field_text(rec, field, value))}")
    if _corrupt(rec):
        print(f"\nThis record is corrupt; nbjobs.forget({rec.id!r}) removes it.")
    if len(attempts) > 1 or (attempts and not attempts[-1].get("ok")):
        print("\nAttempts:")
        for entry in attempts:
            print("  " + _attempt_line(entry))
    if tb:
        print("\nTraceback inside the job:\n" + tb.rstrip())
    return 0


def _logs(store: Store, args: argparse.Namespace) -> int:
    """The job's output; with --json, {"id", "logs"} (one such line per new chunk with
    --follow)."""
    job = store.get(args.job)
    chunks = job.logs(follow=True) if args.follow else [job.logs()]
    for chunk in chunks:
        if args.json:
            print(json.dumps({"id": job.id, "logs": chunk}), flush=True)
        else:
            sys.stdout.write(chunk)
            sys.stdout.flush()
    return 0


def _cancel(store: Store, args: argparse.Namespace) -> int:
    job = store.get(args.job)
    if not job.cancel():
        print(
            f"nbjobs: job {args.job!r} is {job.status}: nothing to cancel "
            "(only pending, retrying or running jobs can be cancelled)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        _print_json(job.to_dict())
    else:
        print(f"cancelled {_label(job)}")
    return 0


def _retry(store: Store, args: argparse.Namespace) -> int:
    return _run_again(store, lambda: [store.retry(args.job)], args.json)


def _resume(store: Store, args: argparse.Namespace) -> int:
    return _run_again(store, store.resume, args.json)


def _purge(store: Store, args: argparse.Namespace) -> int:
    n = store.purge(older_than=args.older_than, status=args.status)
    if args.json:
        _print_json({"purged": n})
    else:
        print(f"purged {n} job{'' if n == 1 else 's'}")
    return 0


def _stats(store: Store, args: argparse.Namespace) -> int:
    counts = store.stats()
    if args.json:
        _print_json(counts)
        return 0
    for status, n in counts.items():
        print(f"{status:<12} {n:>9}")
    print(f"{'total':<12} {sum(counts.values()):>9}")
    return 0


def _schedules(store: Store, args: argparse.Namespace) -> int:
    listed = [sched.to_dict() for sched in store.schedules()]
    if args.json:
        _print_json(listed)
        return 0
    if not listed:
        print("no schedules (nbjobs.schedule(fn, every='30m') makes one)")
        return 0
    columns = ("name", "when", "tz", "next_at", "last_slot", "last_job_id", "fired")
    rows = [tuple(_schedule_cell(d, c) for c in columns) for d in listed]
    _print_table(("NAME", "WHEN", "TZ", "NEXT", "LAST FIRED", "LAST JOB", "FIRED"), rows)
    return 0


def _schedule_cell(shown: dict[str, Any], column: str) -> str:
    if column == "next_at" and shown["paused"]:
        return "paused"
    value = shown[column]
    return "" if value is None else str(value)


def _schedule_action(store: Store, args: argparse.Namespace) -> int:
    """`nbjobs schedules pause|resume|rm NAME`."""
    if args.action == "rm":
        if not store.unschedule(args.name):
            print(
                f"nbjobs: no schedule named {args.name!r} in the store at {store.path}",
                file=sys.stderr,
            )
            return 1
        if args.json:
            _print_json({"removed": args.name})
        else:
            print(f"removed {args.name}")
        return 0
    change = store.pause_schedule if args.action == "pause" else store.resume_schedule
    shown = change(args.name).to_dict()
    if args.json:
        _print_json(shown)
    elif shown["paused"]:
        print(f"paused {args.name}")
    else:
        print(f"resumed {args.name}: next at {shown['next_at']}")
    return 0


def _worker(store: Store, args: argparse.Namespace) -> int:
    """Serve the store's `executor="worker"` jobs until stopped (Ctrl-C, SIGTERM,
    `nbjobs.stop_worker()`) or idle for `--idle-timeout` seconds."""
    return serve(str(store.path), args)


# --------------------------------------------------------------------------- running again
def _run_again(store: Store, restart: Callable[[], list[Job]], as_json: bool) -> int:
    """Re-run jobs from a terminal: the one place that decides where they run.

    Jobs of `executor="worker"` are queued again for the detached workers and not waited
    for. The others (threads, processes) run in this process and this command waits for
    them, printing their progress. Ctrl-C stops the wait: the jobs are left `interrupted`
    (resumable) and `nbjobs resume` runs them again. `as_json`: the progress goes to
    stderr and stdout gets the restarted jobs' records, once they are done, as JSON.
    """
    out = sys.stderr if as_json else sys.stdout
    # A job's function may come from the user's own modules, found from the folder the
    # notebook ran in: as in a kernel, the working folder is importable.
    sys.path.insert(0, os.getcwd())
    try:
        restarted = restart()
        if not restarted:
            print("no interrupted jobs to resume", file=out)
            if as_json:
                _print_json([])
            return 0
        jobs = [job for job in restarted if job.executor != "worker"]
        if len(jobs) < len(restarted):
            n, alive = len(restarted) - len(jobs), len(store.workers())
            print(
                f"queued {n} job{'' if n == 1 else 's'} for the detached workers ({alive} "
                f"running{'' if alive else ': start one with `nbjobs worker`'})",
                file=out,
                flush=True,
            )
        if jobs:
            n = len(jobs)
            print(
                f"running {n} job{'' if n == 1 else 's'} in this terminal until done; Ctrl-C "
                "stops and leaves them interrupted (`nbjobs resume` runs them again)",
                file=out,
                flush=True,
            )
            _follow(jobs, out)
        if as_json:
            _print_json([job.to_dict() for job in restarted])
    except KeyboardInterrupt:
        store.close()  # marks this process's unfinished jobs interrupted, now
        print(
            "\nstopped: the unfinished jobs are interrupted; `nbjobs resume` runs them again",
            file=out,
        )
        return 130
    return 0 if all(job.status == states.SUCCEEDED for job in jobs) else 1


def _follow(jobs: list[Job], out: TextIO) -> None:
    """Print a line per job whenever its status or progress changes, until all are done."""
    changed = threading.Event()
    for job in jobs:
        job.add_done_callback(lambda _job: changed.set())
    shown: dict[str, str] = {}
    while True:
        changed.clear()
        done = [job.done() for job in jobs]  # before the lines: the last line is the final one
        for job in jobs:
            line = _progress_line(job, job.record())
            if shown.get(job.id) != line:
                shown[job.id] = line
                print(line, file=out, flush=True)
        if all(done):
            return
        changed.wait(_POLL)


def _progress_line(job: Job, rec: JobRecord) -> str:
    parts = [f"{_label(job)}: {rec.status}"]
    if rec.status in states.ACTIVE:
        parts.append(render.progress_text(rec.progress_info(), rec.status))
    elif rec.status == states.SUCCEEDED:
        parts.append(f"in {render.duration(render.elapsed(rec, job.store.storage.clock.now()))}")
    else:
        parts.append(render.error_line(rec))
    if rec.status == states.FAILED:
        parts.append(f"(nbjobs show {job.id})")
    return " ".join(p for p in parts if p)


# --------------------------------------------------------------------------- output
def _row(rec: JobRecord, now: float) -> tuple[str, ...]:
    corrupt = _corrupt(rec)
    created = _date(rec.created_at)
    return (
        rec.id,
        _cut(rec.key or "", _TEXT["key"]),
        _cut(rec.name, _TEXT["name"]),
        "corrupt" if corrupt else rec.status,
        "" if corrupt else str(rec.attempts),
        "" if corrupt else created,
        render.duration(render.elapsed(rec, now)),
        _cut(_one_line(render.error_line(rec)), _TEXT["error"]),
    )


_TIMES = frozenset({"lease_until"})  # besides the `*_at` fields
_SECONDS = frozenset({"timeout", "soft_timeout", "idle_for"})


def _field_text(rec: JobRecord, field: str, value: Any) -> Any:
    """How `nbjobs show` prints one field of a job's record: dates as dates, seconds as
    durations, progress and past runs as sentences; anything else as it is."""
    if (field.endswith("_at") or field in _TIMES) and isinstance(value, int | float):
        return _date(value)
    if field in _SECONDS and isinstance(value, int | float):
        return _seconds(value)
    if field == "error":
        return render.error_line(rec, limit=10_000)
    if field == "progress":
        return _progress_field(rec)
    if field == "history" and isinstance(value, list):
        return "; ".join(_run_text(run) for run in value if isinstance(run, dict))
    if field in ("tags", "deps") and isinstance(value, list | tuple):
        return ", ".join(map(str, value))
    return value


def _date(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _seconds(value: float) -> str:
    """`0.25s`, `30s`, `2m 00s`: exact below a minute, where `render.duration` rounds."""
    return f"{value:.3g}s" if value < 60 else render.duration(value)


def _progress_field(rec: JobRecord) -> str:
    info = rec.progress_info()
    text = render.progress_text(info, rec.status) or "-"
    if info is not None and info.updated_at:
        text += f" (reported {_date(info.updated_at)})"
    return text


def _run_text(run: dict[str, Any]) -> str:
    """`run 1: failed after 2 attempts (ValueError: x), ended 2026-12-07 21:49:23`."""
    n = run.get("attempts") or 0
    text = f"run {run.get('run', '?')}: {run.get('status', '?')} after {n} attempt"
    text += "" if n == 1 else "s"
    err = run.get("error")
    if isinstance(err, dict) and run.get("status") != states.SUCCEEDED:
        text += f" ({err.get('type')}: {_cut(_one_line(err.get('message')), 100)})"
    if isinstance(run.get("finished_at"), int | float):
        text += f", ended {_date(run['finished_at'])}"
    return text


def _print_table(header: Sequence[str], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [tuple(header), *rows]) for i in range(len(header))]
    for row in [tuple(header), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _attempt_line(entry: dict[str, Any]) -> str:
    took = None
    if entry.get("started_at") and entry.get("finished_at"):
        took = entry["finished_at"] - entry["started_at"]
    err = entry.get("error") or {}
    outcome = "ok" if entry.get("ok") else f"{err.get('type')}: {err.get('message')}"
    return (
        f"attempt {entry.get('number', '?')} (run {entry.get('run', '?')}) "
        f"{render.duration(took)}  {_cut(_one_line(outcome), 100)}"
    )


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _corrupt(rec: JobRecord) -> bool:
    return rec.error is not None and rec.error.type == CORRUPT


def _label(job: Job) -> str:
    return f"{job.id} ({job.key or job.name})"


def _one_line(value: Any) -> str:
    return " ".join(str(value).split())


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    print(f"nbjobs: warning: {message}", file=sys.stderr)


# --------------------------------------------------------------------------- arguments
def _open(path: str | None) -> Store:
    """The store at `path` (default: the library's rule); never creates one by accident."""
    folder = Path(path).expanduser() if path else default_path()
    if not (folder / FORMAT_FILE).exists():
        raise StoreError(
            f"no job store at {folder.absolute()}: give --store PATH or set $NBJOBS_STORE"
        )
    return Store(folder)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbjobs",
        description="Inspect and control the jobs of an nbjobs store from a terminal.",
        epilog="The store is --store PATH, else $NBJOBS_STORE, else ./.nbjobs.",
    )
    _global_options(parser, None)
    # The same options after the command (`nbjobs ls --json`), not overriding those before it.
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[..., int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(run=run, usage=sub.error)
        return sub

    ls = command("ls", _ls, "list jobs, newest first")
    _statuses(ls, states.STATES, "only jobs in these states")
    ls.add_argument("--name", help="only jobs with this name")
    ls.add_argument("--tag", help="only jobs with this tag")
    ls.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    _job(command("show", _show, "a job's record, error traceback and attempts"))
    logs = _job(command("logs", _logs, "a job's captured output"))
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new output")
    _job(command("retry", _retry, "run a failed, cancelled or interrupted job again and wait"))
    _job(command("cancel", _cancel, "cancel a pending, retrying or running job"))
    command("resume", _resume, "run the interrupted jobs again and wait for them")
    purge = command(
        "purge", _purge, "remove finished jobs and everything stored for them (give one or both)"
    )
    purge.add_argument(
        "--older-than",
        type=duration_argument,
        metavar="AGE",
        help="only jobs finished longer ago: seconds, or 30s, 5m, 1h30m, 7d, 2w",
    )
    _statuses(purge, _FINISHED, "only jobs in these finished states")
    command("stats", _stats, "number of jobs per status")
    actions = command(
        "schedules", _schedules, "list the schedules; or pause, resume or rm one by name"
    ).add_subparsers(title="actions", dest="action", metavar="ACTION")
    for action, text in (
        ("pause", "stop a schedule firing until it is resumed"),
        ("resume", "let a paused schedule fire again, from its next slot"),
        ("rm", "remove a schedule (its past jobs stay)"),
    ):
        sub = actions.add_parser(action, parents=[common], help=text, description=text)
        sub.add_argument("name", metavar="NAME", help="the schedule's name")
        sub.set_defaults(run=_schedule_action, usage=sub.error)
    worker_options(
        command("worker", _worker, "run a detached worker for executor='worker' jobs here")
    )
    return parser


def _global_options(parser: argparse.ArgumentParser, default: Any) -> None:
    parser.add_argument("--store", metavar="PATH", default=default, help="the store folder")
    parser.add_argument(
        "--json",
        action="store_true",
        default=False if default is None else default,
        help="machine-readable output (ls, show, stats, purge, schedules)",
    )


def _statuses(parser: argparse.ArgumentParser, choices: Iterable[str], text: str) -> None:
    parser.add_argument(
        "--status", nargs="+", action="extend", choices=list(choices), metavar="S", help=text
    )


def _job(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("job", metavar="ID_OR_KEY", help="a job id or key")
    return parser


def _limit(text: str) -> int:
    try:
        return validate.positive_int(int(text), "--limit")
    except (ValueError, InvalidArgument):
        raise argparse.ArgumentTypeError(f"--limit must be an int >= 1, not {text!r}") from None
