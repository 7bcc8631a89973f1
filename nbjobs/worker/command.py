"""The worker's command line: its options (shared with `nbjobs worker`), and `serve`, which runs
a worker in this process (`python -m nbjobs.worker`)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

from nbjobs import validate
from nbjobs.errors import InvalidArgument
from nbjobs.worker.control import LEASE, POLL
from nbjobs.worker.logfile import LogFile


def add_options(parser: argparse.ArgumentParser) -> None:
    """The worker's options, shared by `python -m nbjobs.worker` and `nbjobs worker`."""
    parser.add_argument(
        "--workers", type=_positive(int), default=os.cpu_count() or 1, metavar="N",
        help="jobs run at once, each in its own process (default: the number of CPUs)",
    )  # fmt: skip
    parser.add_argument(
        "--idle-timeout", type=duration_argument, default=None, metavar="S",
        help="exit after S (seconds, or 30s, 10m, 1h30m) with nothing to do (default: run "
        "until stopped)",
    )  # fmt: skip
    parser.add_argument(
        "--lease", type=_positive(float), default=LEASE, metavar="S",
        help=f"seconds a job stays claimed without a heartbeat (default {LEASE:g})",
    )  # fmt: skip
    parser.add_argument("--id", default=None, help=argparse.SUPPRESS)


def duration_argument(text: str) -> float:
    """A duration on the command line (`validate.seconds`'s forms): "600", "10m", "1h30m"."""
    try:
        return validate.duration(text, "it")
    except InvalidArgument:
        raise argparse.ArgumentTypeError(
            f"must be seconds > 0 or a duration such as 30s, 5m, 1h30m, 7d, 2w; not {text!r}"
        ) from None


def _positive(cast: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            value = 0
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be a number > 0, not {text!r}")
        return value

    return parse


def serve(store: str, opts: argparse.Namespace) -> int:
    """Run a worker on the store at `store` in this process until it stops (SIGTERM and
    Ctrl-C stop it gracefully); returns the exit code."""
    from nbjobs.worker.process import Worker  # here: `nbjobs ls` need not load the worker

    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s nbjobs worker %(process)d: %(message)s",
        handlers=[LogFile(sys.stderr.fileno())],
    )
    # NBJOBS_WORKER_POLL: a test's way to show that wake-ups, not the poll, start jobs.
    poll = float(os.environ.get("NBJOBS_WORKER_POLL") or POLL)
    worker = Worker(store, opts.workers, opts.idle_timeout, opts.lease, opts.id, poll)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, worker.on_signal)
    worker.run()
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m nbjobs.worker --store PATH [--workers N] [--idle-timeout S] [--lease S]`."""
    parser = argparse.ArgumentParser(
        prog="python -m nbjobs.worker",
        description="Run the jobs of a store submitted with executor='worker'.",
    )
    parser.add_argument("--store", default=os.environ.get("NBJOBS_STORE") or ".nbjobs")
    add_options(parser)
    opts = parser.parse_args(argv)
    return serve(opts.store, opts)
