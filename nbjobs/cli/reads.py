"""The read-only commands (ls, show, stats): answered by the store's tables, not a `Store`."""

from __future__ import annotations

import argparse
from pathlib import Path

from nbjobs import codec, validate
from nbjobs.cli.output import (
    attempt_line,
    field_text,
    is_corrupt,
    job_row,
    one_line,
    print_json,
    print_table,
)
from nbjobs.records import JobRecord
from nbjobs.store.blob_table import blob_keys
from nbjobs.store.owners import orphaned
from nbjobs.store.storage import Storage


def open_for_reading(folder: Path) -> Storage:
    """The store at `folder`, checked as `nbjobs.Store` checks it, for reading.

    Without the library's `Store` (its threads, executors and their imports), a command
    starts in a fraction of the time. Jobs a dead kernel left active are first marked
    interrupted, as opening a `Store` does: only then is one opened (and closed).
    """
    storage = Storage(folder)
    if not orphaned(storage.active_records()):
        return storage
    storage.close()
    from nbjobs.api.store import Store  # here: the usual read needs none of the library

    Store(folder).close()
    return Storage(folder)


def ls(storage: Storage, args: argparse.Namespace) -> int:
    validate.filters(args.name, args.tag)
    records = storage.page(validate.statuses(args.status), args.name, args.tag, args.limit)
    if args.json:
        print_json([rec.to_dict() for rec in records])
        return 0
    now = storage.clock.now()
    rows = [job_row(rec, now) for rec in records]
    header = ("ID", "KEY", "NAME", "STATUS", "ATTEMPTS", "CREATED", "DURATION", "ERROR")
    print_table(header, rows)
    if not rows:
        print("no jobs" + (" match" if args.status or args.name or args.tag else ""))
    return 0


def show(storage: Storage, args: argparse.Namespace) -> int:
    rec = storage.record(validate.lookup(args.job, "id_or_key", "a job id or key"))
    tb = _traceback(storage, rec)
    attempts = rec.attempt_history(storage.attempts(rec.id)) if not is_corrupt(rec) else []
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


def _traceback(storage: Storage, rec: JobRecord) -> str | None:
    """The traceback of the job's error, as it was inside the job (`Job.traceback`)."""
    if rec.error is None:
        return None
    blob = storage.blob(blob_keys(rec.id)[2])
    return codec.error_traceback(blob) if blob is not None else None


def stats(storage: Storage, args: argparse.Namespace) -> int:
    counts = storage.counts()
    if args.json:
        print_json(counts)
        return 0
    for status, n in counts.items():
        print(f"{status:<12} {n:>9}")
    print(f"{'total':<12} {sum(counts.values()):>9}")
    return 0
