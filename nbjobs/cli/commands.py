"""The console script's commands: one function per `nbjobs COMMAND`, given a store and arguments."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nbjobs.api.store import Store
from nbjobs.cli.output import (
    attempt_line,
    field_text,
    is_corrupt,
    job_row,
    label,
    one_line,
    print_json,
    print_table,
)
from nbjobs.cli.rerun import run_again


def ls(store: Store, args: argparse.Namespace) -> int:
    records = store.records(status=args.status, name=args.name, tag=args.tag, limit=args.limit)
    if args.json:
        print_json([rec.to_dict() for rec in records])
        return 0
    now = store.storage.clock.now()
    rows = [job_row(rec, now) for rec in records]
    header = ("ID", "KEY", "NAME", "STATUS", "ATTEMPTS", "CREATED", "DURATION", "ERROR")
    print_table(header, rows)
    if not rows:
        print("no jobs" + (" match" if args.status or args.name or args.tag else ""))
    return 0


def show(store: Store, args: argparse.Namespace) -> int:
    job = store.get(args.job)
    rec = job.record()
    tb = job.traceback()
    attempts = job.attempt_history() if not is_corrupt(rec) else []
    if args.json:
        print_json({"job": rec.to_dict(), "traceback": tb, "attempts": attempts})
        return 0
    for field, value in rec.to_dict().items():
        if value not in (None, "", [], {}):
            print(f"{field:<21} {one_line(field_text(rec, field, value))}")
    if is_corrupt(rec):
        print(f"\nThis record is corrupt; nbjobs.forget({rec.id!r}) removes it.")
    if len(attempts) > 1 or (attempts and not attempts[-1].get("ok")):
        print("\nAttempts:")
        for entry in attempts:
            print("  " + attempt_line(entry))
    if tb:
        print("\nTraceback inside the job:\n" + tb.rstrip())
    return 0


def logs(store: Store, args: argparse.Namespace) -> int:
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


def cancel(store: Store, args: argparse.Namespace) -> int:
    job = store.get(args.job)
    if not job.cancel():
        print(
            f"nbjobs: job {args.job!r} is {job.status}: nothing to cancel "
            "(only pending, retrying or running jobs can be cancelled)",
            file=sys.stderr,
        )
        return 1
    if args.json:
        print_json(job.to_dict())
    else:
        print(f"cancelled {label(job)}")
    return 0


def retry(store: Store, args: argparse.Namespace) -> int:
    return run_again(store, lambda: [store.retry(args.job)], args.json)


def resume(store: Store, args: argparse.Namespace) -> int:
    return run_again(store, store.resume, args.json)


def purge(store: Store, args: argparse.Namespace) -> int:
    n = store.purge(older_than=args.older_than, status=args.status)
    if args.json:
        print_json({"purged": n})
    else:
        print(f"purged {n} job{'' if n == 1 else 's'}")
    return 0


def stats(store: Store, args: argparse.Namespace) -> int:
    counts = store.stats()
    if args.json:
        print_json(counts)
        return 0
    for status, n in counts.items():
        print(f"{status:<12} {n:>9}")
    print(f"{'total':<12} {sum(counts.values()):>9}")
    return 0


def schedules(store: Store, args: argparse.Namespace) -> int:
    listed = [sched.to_dict() for sched in store.schedules()]
    if args.json:
        print_json(listed)
        return 0
    if not listed:
        print("no schedules (nbjobs.schedule(fn, every='30m') makes one)")
        return 0
    columns = ("name", "when", "tz", "next_at", "last_slot", "last_job_id", "fired")
    rows = [tuple(_schedule_cell(d, c) for c in columns) for d in listed]
    print_table(("NAME", "WHEN", "TZ", "NEXT", "LAST FIRED", "LAST JOB", "FIRED"), rows)
    return 0


def _schedule_cell(shown: dict[str, Any], column: str) -> str:
    if column == "next_at" and shown["paused"]:
        return "paused"
    value = shown[column]
    return "" if value is None else str(value)


def schedule_action(store: Store, args: argparse.Namespace) -> int:
    """`nbjobs schedules pause|resume|rm NAME`."""
    if args.action == "rm":
        if not store.unschedule(args.name):
            print(
                f"nbjobs: no schedule named {args.name!r} in the store at {store.path}",
                file=sys.stderr,
            )
            return 1
        if args.json:
            print_json({"removed": args.name})
        else:
            print(f"removed {args.name}")
        return 0
    change = store.pause_schedule if args.action == "pause" else store.resume_schedule
    shown = change(args.name).to_dict()
    if args.json:
        print_json(shown)
    elif shown["paused"]:
        print(f"paused {args.name}")
    else:
        print(f"resumed {args.name}: next at {shown['next_at']}")
    return 0


def worker(store: Store, args: argparse.Namespace) -> int:
    """Serve the store's `executor="worker"` jobs until stopped (Ctrl-C, SIGTERM,
    `nbjobs.stop_worker()`) or idle for `--idle-timeout` seconds."""
    from nbjobs.worker.command import serve  # here: the other commands need not load it

    return serve(str(store.path), args)
