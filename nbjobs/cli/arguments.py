"""The console script's arguments: the argparse definition of every command and option."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from typing import Any

from nbjobs import states, validate
from nbjobs.cli import commands as run
from nbjobs.cli import reads
from nbjobs.errors import InvalidArgument
from nbjobs.worker.command import add_options as worker_options
from nbjobs.worker.command import duration_argument

FINISHED = sorted(states.FINISHED)


def build_parser() -> argparse.ArgumentParser:
    """The `nbjobs` parser: each command sets `run` (its function), `usage` (its error) and
    `reads` (True: `run` takes the store's `Storage`, else an `nbjobs.Store`)."""
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

    def command(name: str, fn: Callable[..., int], text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=text, description=text)
        sub.set_defaults(run=fn, usage=sub.error, reads=fn.__module__ == reads.__name__)
        return sub

    ls = command("ls", reads.ls, "list jobs, newest first")
    _statuses(ls, states.STATES, "only jobs in these states")
    ls.add_argument("--name", help="only jobs with this name")
    ls.add_argument("--tag", help="only jobs with this tag")
    ls.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    _job(command("show", reads.show, "a job's record, error traceback and attempts"))
    logs = _job(command("logs", run.logs, "a job's captured output"))
    logs.add_argument("--follow", "-f", action="store_true", help="keep printing new output")
    _job(command("retry", run.retry, "run a failed, cancelled or interrupted job again and wait"))
    _job(command("cancel", run.cancel, "cancel a pending, retrying or running job"))
    command("resume", run.resume, "run the interrupted jobs again and wait for them")
    purge = command(
        "purge", run.purge, "remove finished jobs and everything stored for them (give one or both)"
    )
    purge.add_argument(
        "--older-than",
        type=duration_argument,
        metavar="AGE",
        help="only jobs finished longer ago: seconds, or 30s, 5m, 1h30m, 7d, 2w",
    )
    _statuses(purge, FINISHED, "only jobs in these finished states")
    command("stats", reads.stats, "number of jobs per status")
    actions = command(
        "schedules", run.schedules, "list the schedules; or pause, resume or rm one by name"
    ).add_subparsers(title="actions", dest="action", metavar="ACTION")
    for action, text in (
        ("pause", "stop a schedule firing until it is resumed"),
        ("resume", "let a paused schedule fire again, from its next slot"),
        ("rm", "remove a schedule (its past jobs stay)"),
    ):
        sub = actions.add_parser(action, parents=[common], help=text, description=text)
        sub.add_argument("name", metavar="NAME", help="the schedule's name")
        sub.set_defaults(run=run.schedule_action, usage=sub.error, reads=False)
    worker_options(
        command("worker", run.worker, "run a detached worker for executor='worker' jobs here")
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
