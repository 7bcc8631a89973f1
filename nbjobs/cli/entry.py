"""The console script's entry point: parse, open the store, run a command, give its exit code."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from nbjobs.api.default_store import default_path
from nbjobs.api.store import Store
from nbjobs.cli import commands
from nbjobs.cli.arguments import FINISHED, build_parser
from nbjobs.cli.output import show_warning
from nbjobs.errors import NbjobsError, StoreError
from nbjobs.store.folder import FORMAT_FILE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    if args.run is commands.purge and args.older_than is None and args.status is None:
        args.usage(
            "give --older-than AGE, --status S ..., or both (to purge every finished "
            f"job: --status {' '.join(FINISHED)})"
        )
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
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


def _open(path: str | None) -> Store:
    """The store at `path` (default: the library's rule); never creates one by accident."""
    folder = Path(path).expanduser() if path else default_path()
    if not (folder / FORMAT_FILE).exists():
        raise StoreError(
            f"no job store at {folder.absolute()}: give --store PATH or set $NBJOBS_STORE"
        )
    return Store(folder)
