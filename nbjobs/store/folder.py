"""The store folder: created 0700 with a `.gitignore`, marked (last) by a format file that a
store written by another version of nbjobs is refused by; and what a full disk under it
raises (`StoreFull`)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from nbjobs.errors import StoreFormatError, StoreFull, StoreNotWritable

FORMAT_VERSION = 1
FORMAT_FILE = "nbjobs-format.json"
DEFAULT_PATH = ".nbjobs"
T = TypeVar("T")


def default_path() -> Path:
    """Where the default store is: `$NBJOBS_STORE`, else `./.nbjobs` (the working folder).

    >>> default_path()                # doctest: +SKIP
    PosixPath('/home/me/project/.nbjobs')
    """
    return Path(os.environ.get("NBJOBS_STORE") or Path.cwd() / DEFAULT_PATH)


@contextlib.contextmanager
def prepared(path: Path) -> Iterator[bool]:
    """Check the store folder at `path` (yields False), or create it (yields True: the caller
    creates the database inside the block). The format file that marks a store is written
    last, once that block has ended without an error, so a folder with a format file has had
    a database: one that has lost it is damaged (`StoreCorrupt`), never a new store.
    Concurrent creators take turns on a lock of the folder.

    >>> with prepared(Path("~/.nbjobs").expanduser()) as new:    # doctest: +SKIP
    ...     ...                                    # open (and, if new, create) the database
    """
    if _guarded(path, _existing, path):
        yield False
        return
    with _creating(path):
        if _guarded(path, _existing, path):  # another process created it meanwhile
            yield False
            return
        _guarded(path, _start, path)
        yield True
        _guarded(path, _mark, path)


def _existing(path: Path) -> bool:
    fmt = path / FORMAT_FILE
    if fmt.exists():
        _check_format(fmt, path)
        return True
    if path.exists() and not path.is_dir():
        raise StoreNotWritable(f"the job store path {path} exists and is not a folder")
    return False


def _start(path: Path) -> None:
    if any(p.name != ".gitignore" for p in path.iterdir()):
        raise StoreFormatError(
            f"{path} is not an nbjobs store (it has files but no {FORMAT_FILE}); "
            "choose an empty or new folder"
        )
    os.chmod(path, 0o700)
    (path / ".gitignore").write_text("# nbjobs store: holds pickles, never commit it\n*\n")


def _mark(path: Path) -> None:
    tmp = path / f".{FORMAT_FILE}.tmp"
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "created_by": "nbjobs"}))
    os.replace(tmp, path / FORMAT_FILE)


@contextlib.contextmanager
def _creating(path: Path) -> Iterator[None]:
    """The folder, created if need be, locked while this process creates the store in it."""
    _guarded(path, path.mkdir, mode=0o700, parents=True, exist_ok=True)
    try:
        import fcntl  # POSIX only: imported here so that `import nbjobs` works without it
    except ImportError:  # not POSIX: no lock (a concurrent creator is refused, as today)
        yield
        return
    fd = _guarded(path, os.open, path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # (closing releases the lock)


def _guarded(path: Path, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return fn(*args, **kwargs)
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
    return StoreFull(
        f"the job store at {path} is full ({free_space(path)}): {what} could not be written. Free "
        "space on that disk (or use a store on another one: nbjobs.configure(store=...)); "
        "the store works again as soon as there is room"
    )


def free_space(path: Path) -> str:
    """The free space of the disk of `path`, as a message says it.

    >>> free_space(Path("/data/jobs"))  # doctest: +SKIP
    '0 bytes free on its disk'
    """
    try:
        st = os.statvfs(path)
    except OSError as exc:
        return f"free space unknown: {exc.strerror or exc}"
    return f"{st.f_bavail * st.f_frsize:,} bytes free on its disk"
