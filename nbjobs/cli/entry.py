"""The console script's entry point: parse, open the store, run a command, give its exit code."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nbjobs.cli import commands
from nbjobs.cli.arguments import FINISHED, build_parser
from nbjobs.cli.output import show_warning
from nbjobs.cli.reads import open_for_reading
from nbjobs.errors import NbjobsError, StoreError
from nbjobs.store.folder import FORMAT_FILE, default_path

if TYPE_CHECKING:
    from nbjobs.api.store import Store
    from nbjobs.store.storage import Storage


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
        store: Store | Storage | None = None
        try:
            folder = _folder(args.store)
            store = open_for_reading(folder) if args.reads else _open(folder)
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


def _folder(path: str | None) -> Path:
    """The store folder at `path` (default: the library's rule); never creates one by accident."""
    folder = Path(path).expanduser() if path else default_path()
    if not (folder / FORMAT_FILE).exists():
        raise StoreError(
            f"no job store at {folder.absolute()}: give --store PATH or set $NBJOBS_STORE"
        )
    return folder


def _open(folder: Path) -> Store:
    """The library's `Store` at `folder`, for the commands that change it."""
    from nbjobs.api.store import Store  # here: the commands that only read need not load it

    return Store(folder)
