"""Values too large for a row of the store: files under its `blobs/` folder.

A large value is streamed to its file by the thread or process that produced it (the writer
thread never copies it), written whole or not at all (a temporary file, renamed, and removed
on any error), and only the file's name is committed with the state change that refers to it.
A disk without room for it raises `StoreFull`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

from nbjobs import codec
from nbjobs.errors import PayloadLoadError
from nbjobs.store.folder import disk_full, full_error

INLINE_LIMIT = 256 * 1024  # blobs above this size are written as files


def write_value(blob_dir: Path, key: str, frames: codec.Frames) -> tuple[bytes | None, str | None]:
    """Bytes to store inline, or the name of a finished file under `blob_dir`."""
    if frames.size <= INLINE_LIMIT:
        return frames.to_bytes(), None
    return None, _new_file(blob_dir, key, frames.chunks(), frames.size)


def spill(blob_dir: Path, key: str, data: bytes) -> tuple[bytes | None, str | None]:
    """`write_value` for a value already encoded (received from another machine)."""
    if len(data) <= INLINE_LIMIT:
        return data, None
    return None, _new_file(blob_dir, key, (data,), len(data))


def _new_file(blob_dir: Path, key: str, chunks: Iterable[bytes | memoryview], size: int) -> str:
    name = f"{key.replace(':', '-')}-{os.urandom(4).hex()}"
    write_file(blob_dir, name, chunks, describe(key, size))
    return name


def describe(key: str, size: int) -> str:
    """What the value stored under `key` is, for a message (`StoreFull`).

    >>> describe("r:0922bdf31836b804", 2_000_000)
    'the result of job 0922bdf31836b804 (2,000,000 bytes)'
    """
    kind, _, rest = key.partition(":")
    what = {
        "r": f"the result of job {rest}",
        "f": "a job's function",
        "v": "a large argument of a job",
    }.get(kind, repr(key))
    return f"{what} ({size:,} bytes)"


def write_file(blob_dir: Path, name: str, chunks: Iterable[bytes | memoryview], what: str) -> None:
    """Write a file under `blob_dir` whole or not at all (a temporary file, renamed; removed
    on any error). Raises `StoreFull` naming `what` if the disk has no room for it."""
    tmp = write_temporary(blob_dir, chunks, what)
    try:
        os.replace(tmp, blob_dir / name)
    except BaseException:
        remove(tmp)
        raise


def write_temporary(blob_dir: Path, chunks: Iterable[bytes | memoryview], what: str) -> Path:
    """A new temporary file under `blob_dir` holding `chunks` (removed on any error), for
    the caller to rename or remove. Raises `StoreFull` naming `what` if there is no room."""
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=blob_dir, prefix=".tmp-")
        with os.fdopen(fd, "wb", buffering=0) as f:
            _write_all(f, chunks)
        return Path(tmp)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if disk_full(exc):
            raise full_error(blob_dir.parent, what) from exc
        raise


def once_name(key: str) -> str:
    """The file name of a content-addressed blob (a function, a large argument): the same
    for the same content, so a copy of it is never written twice."""
    return key.replace(":", "-")


def values_in(blob_dir: Path) -> Callable[[str], Any]:
    """What loads a job's large argument by its digest from the files of `blob_dir` (for
    `codec.load_args`)."""

    def value(digest: str) -> Any:
        key = f"v:{digest}"
        return load(blob_dir / once_name(key), key)

    return value


def load(path: Path, key: str) -> Any:
    """The value in the file at `path`, stored under `key` (named in the error if missing)."""
    try:
        with open(path, "rb", buffering=0) as f:
            return codec.read(f)
    except FileNotFoundError as exc:
        raise PayloadLoadError(f"the file holding {key!r} is missing: {exc}") from exc


def remove(path: Path) -> None:
    """Remove a blob's file (already gone: nothing to do)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _write_all(f: IO[bytes], chunks: Iterable[bytes | memoryview]) -> None:
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            n = f.write(view)
            view = view[n or 0 :]
