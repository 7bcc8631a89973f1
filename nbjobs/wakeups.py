"""Wake-ups for detached workers: a datagram that says "look at the queue now".

Each live worker listens on a Unix datagram socket, `<store>/workers/<worker id>.sock`; a
process that has just committed claimable worker jobs rings the workers of its host (one
empty datagram each, never blocking, errors ignored). A wake-up is only a hint: a lost one
delays a job to the worker's next poll, it never loses it. Where Unix sockets are missing
(or the socket path is too long for the platform) a worker just polls.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Iterable
from pathlib import Path

_UNIX = hasattr(socket, "AF_UNIX")
_PATH_MAX = 100  # sun_path holds 104 (macOS) to 108 (Linux) bytes, the final NUL included


def bell_path(store: Path, worker_id: str) -> Path:
    """Where the worker `worker_id` of the store at `store` listens."""
    return store / "workers" / f"{worker_id}.sock"


class Doorbell:
    """What a worker waits on: wake-ups from other processes and from its own threads.

    >>> bell = Doorbell()
    >>> bell.listen(Path("/tmp/store/workers/w1.sock"))   # doctest: +SKIP
    >>> bell.set(); bell.wait(1.0)
    True
    """

    def __init__(self) -> None:
        self._event = threading.Event()  # the wake-up of a thread of this process
        self._sock: socket.socket | None = None
        self._path: Path | None = None
        self._pair: tuple[socket.socket, socket.socket] | None = None
        if _UNIX:  # so that a thread's wake-up ends a select() on the socket
            self._pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for end in self._pair:
                end.setblocking(False)

    def listen(self, path: Path) -> bool:
        """Bind the socket other processes ring; False (polling only) when that cannot be."""
        if not _UNIX or len(str(path).encode()) > _PATH_MAX:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            path.parent.mkdir(mode=0o700, exist_ok=True)
            path.unlink(missing_ok=True)  # a stale socket of a worker that had this id
            sock.bind(str(path))
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        self._sock, self._path = sock, path
        return True

    def set(self) -> None:
        """Wake `wait` from another thread of this process (thread-safe, never blocks)."""
        self._event.set()
        pair = self._pair
        if pair is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                pair[1].send(b"")

    def wait(self, timeout: float) -> bool:
        """Return when rung, set, or after `timeout` seconds; True if woken."""
        if self._pair is None:
            woken = self._event.wait(timeout)
        else:
            socks = [self._pair[0]] if self._sock is None else [self._pair[0], self._sock]
            woken = self._event.is_set() or bool(select.select(socks, [], [], timeout)[0])
            for sock in socks:
                _drain(sock)
        self._event.clear()
        return woken

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        for sock in (self._sock, *(self._pair or ())):
            if sock is not None:
                sock.close()
        if self._path is not None:
            self._path.unlink(missing_ok=True)
        self._sock = self._path = self._pair = None


def ring(paths: Iterable[Path]) -> None:
    """Send a wake-up to the workers listening at `paths`; a missing or stale socket, a
    full buffer or a platform without Unix sockets is ignored (the workers' poll remains)."""
    if not _UNIX:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for path in paths:
            with contextlib.suppress(OSError):
                sock.sendto(b"", str(path))


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            sock.recv(16)
