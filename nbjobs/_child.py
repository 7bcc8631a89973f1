"""Entry point of a process-executor child: `python -m nbjobs._child FD`.

Receives (job id, function bytes, argument bytes) over the socket FD, runs the job in
this process's main thread and sends back an `Outcome`. Exits when the parent goes away.
"""

from __future__ import annotations

import ctypes
import os
import pickle
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from . import codec, reporting
from .errors import PayloadLoadError
from .runner import Outcome, call_job, failure

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):
            pass


def _run_one(message: bytes, blob_dir: Path, conn: Connection) -> Outcome:
    info, fn_bytes, args_bytes = pickle.loads(message)

    def send_progress(progress: dict[str, Any]) -> None:
        conn.send_bytes(pickle.dumps(("progress", progress), codec.PROTOCOL))

    ctx = reporting.JobContext(reporting.CurrentJob(*info), send_progress)
    try:
        fn = pickle.loads(fn_bytes)
        args, kwargs = pickle.loads(args_bytes)
    except Exception as exc:
        return failure(
            PayloadLoadError(
                f"the job's function or arguments could not be loaded in the worker process "
                f"({type(exc).__name__}: {exc}); functions imported from your own modules must "
                "be importable from the notebook's folder and sys.path"
            )
        )
    return call_job(fn, args, kwargs, blob_dir, ctx)


def main(fd: int) -> None:
    _die_with_parent()
    conn = Connection(fd)
    init = pickle.loads(conn.recv_bytes())
    sys.path[:] = init["sys_path"]
    os.chdir(init["cwd"])
    blob_dir = Path(init["blob_dir"])
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send_bytes(pickle.dumps(_run_one(message, blob_dir, conn), codec.PROTOCOL))


if __name__ == "__main__":
    main(int(sys.argv[1]))
