"""`nbjobs retry` and `nbjobs resume`: jobs run again from a terminal, their progress followed."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from nbjobs import render, states
from nbjobs.cli.output import label, print_json

if TYPE_CHECKING:
    from nbjobs.api.job import Job
    from nbjobs.api.store import Store
    from nbjobs.records import JobRecord

_POLL = 0.5  # seconds between progress lines of re-run jobs


def run_again(store: Store, restart: Callable[[], list[Job]], as_json: bool) -> int:
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
                print_json([])
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
            print_json([job.to_dict() for job in restarted])
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
    parts = [f"{label(job)}: {rec.status}"]
    if rec.status in states.ACTIVE:
        parts.append(render.progress_text(rec.progress_info(), rec.status))
    elif rec.status == states.SUCCEEDED:
        parts.append(f"in {render.duration(render.elapsed(rec, job.store.storage.clock.now()))}")
    else:
        parts.append(render.error_line(rec))
    if rec.status == states.FAILED:
        parts.append(f"(nbjobs show {job.id})")
    return " ".join(p for p in parts if p)
