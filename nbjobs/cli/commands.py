"""The commands that change the store or follow a job: one function each, given a `Store`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from nbjobs.cli.output import label, print_json, print_table
from nbjobs.cli.rerun import run_again

if TYPE_CHECKING:
    from nbjobs.api.store import Store


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
