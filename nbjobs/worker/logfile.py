"""The worker's log: lines gathered and written to its stderr (a file of the store folder), and
how its lines name jobs, errors and durations."""

from __future__ import annotations

import collections
import contextlib
import logging
import os

from nbjobs import states
from nbjobs.records import JobRecord

_LOG_BACKLOG = 1000  # log lines kept while the disk is full (later ones are counted)
_LOG_BATCH = 256  # log lines gathered before they are written without waiting for a flush


class LogFile(logging.Handler):
    """The worker's log: its stderr, a file of the store folder, so on the store's disk.

    Lines are gathered and written together: when the loop calls `flush()` (at each
    heartbeat, at most a second apart), at exit, for a warning or worse, and once
    `_LOG_BATCH` wait. A write per line (a job's start and end) cost a trivial job ~0.2 ms of
    CPU and a fifth of the worker's throughput: each write let the job threads take the GIL.
    Lines that meet a full disk are kept (up to `_LOG_BACKLOG`, then counted) and written
    whole, in order, once there is room: the line that says the disk is full is there when
    space returns."""

    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        self.backlog: collections.deque[bytes] = collections.deque()
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode("utf-8", "replace")
        except Exception:
            self.handleError(record)
            return
        if len(self.backlog) < _LOG_BACKLOG:
            self.backlog.append(line)
        else:
            self.dropped += 1
        if record.levelno >= logging.WARNING or len(self.backlog) >= _LOG_BATCH:
            self._write()

    def flush(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._write()

    def _write(self) -> None:
        if not self.backlog:
            return
        data = b"".join(self.backlog)
        self.backlog.clear()
        while data:
            try:
                n = os.write(self.fd, data)
            except OSError:
                self.backlog.append(data)  # (a full disk) kept for the next flush
                return
            data = data[n:]
        if self.dropped:
            note = f"({self.dropped} log lines were dropped: the disk was full)\n"
            self.backlog.append(note.encode())
            self.dropped = 0


def flush_log() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def job_label(rec: JobRecord) -> str:
    """`id (name, key 'k')`: what a worker's log says of a job."""
    key = f", key {rec.key!r}" if rec.key is not None else ""
    return f"{rec.id} ({rec.name}{key})"


def error_text(rec: JobRecord) -> str:
    """`ValueError: boom` (cut at 200 characters), or `-` without an error."""
    return "-" if rec.error is None else f"{rec.error.type}: {rec.error.message[:200]}"


def after_error(rec: JobRecord) -> str:
    """` after ValueError: boom` when the previous attempt failed."""
    return f" after {error_text(rec)}" if rec.status == states.RETRYING else ""


def took(rec: JobRecord) -> str:
    if rec.started_at is None or rec.finished_at is None:
        return "-"
    return f"{rec.finished_at - rec.started_at:.3f} s"
