"""Each job's stdout, stderr and `logging` records, captured into its own log.

`sys.stdout` and `sys.stderr` are wrapped once by a proxy that sends a write to the log
of the job running in the calling thread, and anything else (the notebook cell running
meanwhile) to the original stream. A handler on the root logger does the same for log
records. Logs keep a bounded tail (`LIMIT` characters) with a note when truncated.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

from nbjobs.clock import SYSTEM, Clock

LIMIT = 1_000_000  # characters kept per job (the tail)
FLUSH_EVERY = 0.5  # seconds between two log writes of a running job


class LogBuffer:
    """The tail of one job's output; `flush` hands it to the store now and then."""

    def __init__(
        self, flush: Callable[[dict[str, Any]], None], previous: dict[str, Any] | None = None,
        clock: Clock = SYSTEM,
    ) -> None:  # fmt: skip
        self._flush = flush
        self._clock = clock
        self._chunks: deque[str] = deque()
        self._size = 0
        self.total = 0  # characters ever written, so `follow` knows what is new
        self.truncated = False
        self._lock = threading.Lock()
        self._last = clock.monotonic()
        self._dirty = False
        if previous:
            self._append(previous.get("text", ""))
            self.total = previous.get("total", self.total)
            self.truncated = previous.get("truncated", False)

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            self._append(text)
            self.total += len(text)
            self._dirty = True
            due = self._clock.monotonic() - self._last >= FLUSH_EVERY
        if due:
            self.flush()

    def _append(self, text: str) -> None:
        self._chunks.append(text)
        self._size += len(text)
        while self._size > LIMIT and self._chunks:
            extra = self._size - LIMIT
            head = self._chunks[0]
            if len(head) <= extra:
                self._chunks.popleft()
                self._size -= len(head)
            else:
                self._chunks[0] = head[extra:]
                self._size -= extra
            self.truncated = True

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._dirty = False
            self._last = self._clock.monotonic()
            return {"text": "".join(self._chunks), "total": self.total, "truncated": self.truncated}

    def flush(self) -> None:
        if self._dirty:
            self._flush(self.snapshot())


_current: Callable[[], LogBuffer | None] = lambda: None  # noqa: E731


class _Proxy(io.TextIOBase):
    """Stands in for sys.stdout/sys.stderr: job threads write to their job's log."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str, /) -> int:
        log = _current()
        if log is None:
            return self._stream.write(text)
        log.write(text)
        return len(text)

    def flush(self) -> None:
        if _current() is None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class _Handler(logging.Handler):
    """Log records of job threads go to the job's log; others behave as without us."""

    def emit(self, record: logging.LogRecord) -> None:
        log = _current()
        if log is not None:
            log.write(self.format(record) + "\n")
            return
        root = logging.getLogger()
        # Python prints through `lastResort` only when no handler exists: we are one, so
        # stand in for it when we are the only one.
        last = logging.lastResort
        if root.handlers == [self] and last is not None and record.levelno >= last.level:
            last.handle(record)


_HANDLER = _Handler()
_HANDLER.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
_install_lock = threading.Lock()


def install(current: Callable[[], LogBuffer | None]) -> None:
    """Route output of job threads to `current()` (idempotent; re-wraps replaced streams)."""
    global _current
    _current = current
    if isinstance(sys.stdout, _Proxy) and isinstance(sys.stderr, _Proxy):
        return
    with _install_lock:
        if not isinstance(sys.stdout, _Proxy):
            sys.stdout = _Proxy(sys.stdout)
        if not isinstance(sys.stderr, _Proxy):
            sys.stderr = _Proxy(sys.stderr)
        root = logging.getLogger()
        if _HANDLER not in root.handlers:
            root.addHandler(_HANDLER)
