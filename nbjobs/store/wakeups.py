"""Wake-ups for detached workers: a datagram that says "look at the queue now".

Each live worker listens on a Unix datagram socket, `<store>/workers/<worker id>.sock` (on
Linux, when that path is too long for a socket address, an abstract socket named after the
worker); a process that has just committed claimable worker jobs rings the workers of its
host (one empty datagram each, never blocking, errors ignored). A wake-up is only a hint: a
lost one delays a job to the worker's next poll, it never loses it. Where Unix sockets are
missing a worker just polls.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import socket

_UNIX = sys.platform != "win32"  # Unix datagram sockets; `socket` is imported when one is made
_PATH_MAX = 100  # sun_path holds 104 (macOS) to 108 (Linux) bytes, the final NUL included


def address(store: Path, worker_id: str) -> str | None:
    """Where the worker `worker_id` of the store at `store` listens (None: nowhere)."""
    path = str(store / "workers" / f"{worker_id}.sock")
    if len(path.encode()) <= _PATH_MAX:
        return path
    return f"\0nbjobs-{worker_id}" if sys.platform == "linux" else None


def watcher_address(store: Path) -> str | None:
    """Where this process's watcher of jobs run elsewhere listens, in `<store>/watchers/`
    (None where the path is too long: then the watcher only polls). Workers ring every
    socket there when one of their jobs starts or ends (`ring_watchers`)."""
    path = str(store / _WATCHERS / f"{os.getpid()}-{os.urandom(4).hex()}.sock")
    return path if len(path.encode()) <= _PATH_MAX else None


def ring_watchers(store: Path) -> None:
    """Wake the processes waiting for jobs of the store at `store` (their watchers): a
    job of this worker started or ended. The folder is listed again when it changed (its
    modification time, ~2 µs to read) or a second went by; the socket of a process that is
    gone is removed."""
    folder = store / _WATCHERS
    try:
        changed = folder.stat().st_mtime_ns
    except OSError:
        return  # nobody ever watched this store
    now = time.monotonic()
    found = _listed.get(folder)
    if found is None or found[0] != changed or now - found[1] > _LIST_EVERY_S:
        try:
            names = [entry.path for entry in os.scandir(folder) if entry.name.endswith(".sock")]
        except OSError:
            names = []
        found = _listed[folder] = (changed, now, names)
    if not _UNIX or not found[2]:
        return
    import socket  # here, not above: `import nbjobs` and the CLI never ring

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for addr in found[2]:
            try:
                sock.sendto(b"", addr)
            except (ConnectionRefusedError, FileNotFoundError):
                forget(addr)  # its process is gone (a live one keeps its socket open)
            except OSError:
                pass  # full: a wake-up is pending already


_WATCHERS = "watchers"
_LIST_EVERY_S = 1.0
_listed: dict[Path, tuple[int, float, list[str]]] = {}  # folder: (mtime, when, sockets)


def forget(addr: str | None) -> None:
    """Remove the socket file at `addr`, if it is one (a worker that is gone)."""
    if addr is not None and not addr.startswith("\0"):
        Path(addr).unlink(missing_ok=True)


class Doorbell:
    """What a worker waits on: wake-ups from other processes and from its own threads.

    >>> bell = Doorbell()
    >>> bell.listen(address(Path("/tmp/store"), "w1"))      # doctest: +SKIP
    True
    >>> ring(["/tmp/store/workers/w1.sock"])                 # another process
    >>> bell.wait(30.0)                                      # doctest: +SKIP
    True
    """

    def __init__(self) -> None:
        self._event = threading.Event()  # the wake-up of a thread of this process
        self._sock: socket.socket | None = None
        self._addr: str | None = None
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._selecting = False  # only a blocked select() needs a thread's datagram
        if _UNIX:  # so that a thread's wake-up ends a select() on the socket
            import socket

            self._pair = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
            for end in self._pair:
                end.setblocking(False)

    def listen(self, addr: str | None) -> bool:
        """Bind the socket other processes ring at `addr` (see `address` and
        `watcher_address`); False (polling only) when that cannot be."""
        if not _UNIX or addr is None:
            return False
        import socket

        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            if not addr.startswith("\0"):
                Path(addr).parent.mkdir(mode=0o700, exist_ok=True)
                forget(addr)  # a stale socket of a worker that had this id
            sock.bind(addr)
        except OSError:
            sock.close()
            return False
        sock.setblocking(False)
        self._sock, self._addr = sock, addr
        return True

    def set(self) -> None:
        """Wake `wait` from another thread of this process (thread-safe, never blocks)."""
        self._event.set()
        pair = self._pair
        if self._selecting and pair is not None:
            with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
                pair[1].send(b"")

    def wait(self, timeout: float) -> bool:
        """Return when rung, set, or after `timeout` seconds; True if woken."""
        if self._pair is None:
            woken = self._event.wait(timeout)
        else:
            socks = [self._pair[0]] if self._sock is None else [self._pair[0], self._sock]
            self._selecting = True  # before the check: `set` then sees it or we see its flag
            try:
                ready = [] if self._event.is_set() else _readable(socks, timeout)
            finally:
                self._selecting = False
            woken = bool(ready) or self._event.is_set()
            for sock in ready:
                _drain(sock)
        self._event.clear()
        return woken

    def close(self) -> None:
        """Stop listening and remove the socket file."""
        for sock in (self._sock, *(self._pair or ())):
            if sock is not None:
                sock.close()
        forget(self._addr)
        self._sock = self._addr = self._pair = None


def ring(addrs: Iterable[str]) -> None:
    """Send a wake-up to the workers listening at `addrs`; a missing or stale socket, a
    full buffer or a platform without Unix sockets is ignored (the workers' poll remains)."""
    addrs = list(addrs)
    if not _UNIX or not addrs:
        return
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for addr in addrs:
            with contextlib.suppress(OSError):
                sock.sendto(b"", addr)


def _readable(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The sockets with a datagram waiting, after at most `timeout` seconds. `poll`, not
    `select`: a kernel may hold more than 1,024 files, and select() refuses those fds."""
    if not hasattr(select, "poll"):
        return list(select.select(socks, [], [], timeout)[0])
    poller = select.poll()
    for sock in socks:
        poller.register(sock, select.POLLIN)
    ready = {fd for fd, _event in poller.poll(max(0.0, timeout) * 1000)}
    return [sock for sock in socks if sock.fileno() in ready]


def _drain(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            sock.recv(16)
