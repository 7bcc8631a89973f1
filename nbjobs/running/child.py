"""Entry point of a process-executor child: `python -c BOOT FD PARENT_PID` (see `BOOT`).

Receives (job info, function digest and bytes, argument bytes) over the socket FD, runs
the job in this process's main thread and sends back an `Outcome`. Keeps the last few
functions it loaded, so the parent sends (and this child unpickles) each function once.
Exits when the parent goes away.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from nbjobs import codec
from nbjobs.errors import PayloadLoadError, SoftTimeout
from nbjobs.running import capture, reporting
from nbjobs.running.calling import Outcome, call_job, load_failure
from nbjobs.store import blobs

# The child's first statements, run before nbjobs (or anything of the job) is imported.
# PR_SET_PDEATHSIG (1) kills the child with its parent, but only from the moment it is set,
# and not at all if the parent died before: a worker killed while its child started left
# an orphan that read the job already in its socket and ran it while the job was requeued
# elsewhere. So set it first, then compare the parent with the one that started us (its
# pid in argv): a different one means ours is gone, and the child leaves without reading.
BOOT = """\
import os, sys
if sys.platform.startswith("linux"):
    import ctypes, signal
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
if os.getppid() != int(sys.argv[2]):
    os._exit(0)
from nbjobs.running.child import main
main(int(sys.argv[1]))
"""


class _Channel:
    """Messages to the parent; a lock because threads of the job may print too."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.lock = threading.Lock()

    def send(self, message: object) -> None:
        data = pickle.dumps(message, codec.PROTOCOL)
        with self.lock:
            self.conn.send_bytes(data)


_FUNCTIONS = codec.FunctionCache()


def _load_function(digest: str | None, fn_bytes: bytes | None) -> Callable[..., Any]:
    """The job's function: unpickled once per child for each digest (a load error too)."""

    def load() -> tuple[bool, Any]:
        if fn_bytes is None:
            raise PayloadLoadError(f"function {digest} was neither sent nor kept")
        try:
            return True, pickle.loads(fn_bytes)
        except Exception as exc:
            return False, exc

    ok, value = load() if digest is None else _FUNCTIONS.use(digest, load)
    if not ok:
        raise value
    fn: Callable[..., Any] = value
    return fn


def _run_one(message: bytes, blob_dir: Path, channel: _Channel) -> Outcome:
    info, fn_digest, fn_bytes, args_bytes, log_state, soft_timeout = pickle.loads(message)
    try:
        fn = _load_function(fn_digest, fn_bytes)
        args, kwargs = codec.load_args(args_bytes, blobs.values_in(blob_dir))
    except Exception as exc:
        return load_failure(exc, "the worker process")
    ctx = reporting.JobContext(
        reporting.CurrentJob(*info), lambda progress: channel.send(("progress", progress))
    )
    ctx.log = capture.LogBuffer(lambda snap: channel.send(("log", snap)), log_state)
    if info[3] > 1:
        ctx.log.write(f"--- attempt {info[3]} ---\n")
    _JOB_LOG[0] = ctx.log
    try:
        with _soft_limit(soft_timeout):
            return call_job(fn, args, kwargs, blob_dir, ctx)
    finally:
        _JOB_LOG[0] = None


@contextlib.contextmanager
def _soft_limit(seconds: float | None) -> Iterator[None]:
    """Raise `SoftTimeout` in this (main) thread after `seconds`, by SIGALRM."""
    if not seconds:
        yield
        return

    def alarm(signum: int, frame: object) -> None:
        raise SoftTimeout(f"the job passed its soft time limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_JOB_LOG: list[capture.LogBuffer | None] = [None]  # the one job this process runs


def main(fd: int) -> None:
    """Serve jobs sent over the socket `fd` until the parent closes it (started by `BOOT`)."""
    capture.install(lambda: _JOB_LOG[0])
    conn = Connection(fd)
    channel = _Channel(conn)
    try:
        init = pickle.loads(conn.recv_bytes())
        sys.path[:] = init["sys_path"]
        os.chdir(init["cwd"])
        blob_dir = Path(init["blob_dir"])
        while True:
            message = conn.recv_bytes()
            channel.send(_run_one(message, blob_dir, channel))
    except (EOFError, OSError):  # the parent closed the pool or went away
        return
