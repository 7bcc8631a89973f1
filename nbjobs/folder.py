"""The store folder: created 0700 with a `.gitignore`, marked by a format file that a
store written by another version of nbjobs is refused by; and what a full disk under it
raises (`StoreFull`)."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from pathlib import Path

from .errors import StoreFormatError, StoreFull, StoreNotWritable

FORMAT_VERSION = 1
FORMAT_FILE = "nbjobs-format.json"


def prepare_folder(path: Path) -> None:
    """Create the folder 0700 with a `.gitignore`, or check the format of an existing one."""
    fmt = path / FORMAT_FILE
    try:
        if fmt.exists():
            _check_format(fmt, path)
            return
        if path.exists() and not path.is_dir():
            raise StoreNotWritable(f"the job store path {path} exists and is not a folder")
        if path.is_dir() and any(p.name not in (".gitignore",) for p in path.iterdir()):
            raise StoreFormatError(
                f"{path} is not an nbjobs store (it has files but no {FORMAT_FILE}); "
                "choose an empty or new folder"
            )
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)
        (path / ".gitignore").write_text("# nbjobs store: holds pickles, never commit it\n*\n")
        tmp = path / f".{FORMAT_FILE}.tmp"
        tmp.write_text(json.dumps({"format": FORMAT_VERSION, "created_by": "nbjobs"}))
        os.replace(tmp, fmt)
    except OSError as exc:
        raise StoreNotWritable(
            f"the job store at {path} cannot be created or written: {exc.strerror or exc}. "
            "Choose a folder you can write (nbjobs.configure(store=...) or $NBJOBS_STORE)."
        ) from exc


def _check_format(fmt: Path, path: Path) -> None:
    try:
        version = json.loads(fmt.read_text())["format"]
    except (ValueError, KeyError, TypeError) as exc:
        raise StoreFormatError(f"the job store at {path} has an unreadable {FORMAT_FILE}") from exc
    if version != FORMAT_VERSION:
        which = "a newer" if version > FORMAT_VERSION else "an older"
        raise StoreFormatError(
            f"the job store at {path} was written by {which} version of nbjobs "
            f"(store format {version}, this nbjobs reads format {FORMAT_VERSION}). "
            "Install the matching nbjobs, or use another folder."
        )
    if not os.access(path, os.W_OK):
        raise StoreNotWritable(f"the job store at {path} is not writable by this user")


def folder_identity(path: Path) -> tuple[int, int] | None:
    """What tells this store folder from another at the same path (its format file's inode
    and modification time), or None when there is no store there."""
    try:
        st = (path / FORMAT_FILE).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk is full: SQLite's SQLITE_FULL, ENOSPC or EDQUOT from a
    file write, or a `StoreFull` raised already.

    >>> disk_full(OSError(errno.ENOSPC, "No space left on device"))
    True
    """
    if isinstance(exc, sqlite3.Error):
        return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_FULL
    return isinstance(exc, StoreFull) or (
        isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
    )


def full_error(path: Path, what: str) -> StoreFull:
    """The `StoreFull` of the store at `path` that had no room for `what`, with the free
    space of its disk as it is now.

    >>> raise full_error(Path("/data/jobs"), "job 'k'")  # doctest: +SKIP
    nbjobs.errors.StoreFull: the job store at /data/jobs is full (0 bytes free on its disk): ...
    """
    try:
        st = os.statvfs(path)
        free = f"{st.f_bavail * st.f_frsize:,} bytes free on its disk"
    except OSError as exc:
        free = f"free space unknown: {exc.strerror or exc}"
    return StoreFull(
        f"the job store at {path} is full ({free}): {what} could not be written. Free "
        "space on that disk (or use a store on another one: nbjobs.configure(store=...)); "
        "the store works again as soon as there is room"
    )
