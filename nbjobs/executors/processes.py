"""The process executor: each job runs in the main thread of a child process of our own.

Functions and arguments travel as cloudpickle bytes, so functions defined in the
notebook (`__main__`), lambdas and closures work; nothing relies on fork or on
importing `__main__`. Children start with the kernel's working directory and
`sys.path`. A child that dies (segfault, `os._exit`) fails its job with `JobCrashed`
and is replaced; the other children carry on.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nbjobs import codec
from nbjobs.errors import JobCancelled, JobCrashed, JobTimeout
from nbjobs.executors.pool import Pool
from nbjobs.running.calling import Outcome, failure, job_info
from nbjobs.running.local_job import LocalJob
from nbjobs.running.runner import Runner

if TYPE_CHECKING:
    import subprocess
    from multiprocessing.connection import Connection


class ChildProcess:
    """One child running `nbjobs.running.child`, started on first use."""

    def __init__(self, blob_dir: Path) -> None:
        self.blob_dir = blob_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.conn: Connection | None = None
        self.functions = codec.FunctionCache()  # a mirror of the functions the child keeps

    def _spawn(self) -> Connection:
        # Here: `import nbjobs` need not load the child's code, nor these modules.
        import socket
        import subprocess
        from multiprocessing.connection import Connection

        from nbjobs.running.child import BOOT

        ours, theirs = socket.socketpair()
        fd = theirs.fileno()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", BOOT, str(fd), str(os.getpid())],
            pass_fds=[fd],
            cwd=os.getcwd(),
            stdin=subprocess.DEVNULL,
            # Its own process group: the kernel's stop button (SIGINT to the kernel's group)
            # and Ctrl-C in a terminal interrupt the wait, never the job. It still dies
            # with this process, even one that dies while it starts (see _child.BOOT).
            process_group=0,
        )
        theirs.close()
        conn = Connection(ours.detach())
        init = {"sys_path": list(sys.path), "cwd": os.getcwd(), "blob_dir": str(self.blob_dir)}
        conn.send_bytes(pickle.dumps(init))
        self.conn = conn
        self.functions = codec.FunctionCache()
        return conn

    def call(
        self,
        info: tuple[Any, ...],
        payload: tuple[bytes, bytes],
        log_state: dict[str, Any] | None,
        soft_timeout: float | None,
        on_message: Callable[[str, dict[str, Any]], None],
        stopped: Callable[[], bool],
        fn_digest: str | None = None,
    ) -> Outcome:
        """Run one job in the child and wait for its outcome (or its death).

        `info` is the job's (id, key, name, attempt); progress and log reports from the
        child are handed to `on_message(kind, body)` as they arrive. `stopped()` tells
        whether the job was stopped (time limit, cancel) before the child was ready to be
        killed for it: it is then not sent. With `fn_digest`, a function the child already
        holds is not sent (or unpickled) again: the jobs of a map over a function carrying
        a 100 MB array ship the array once per child.
        """
        conn = self.conn if self.proc is not None and self.proc.poll() is None else None
        try:
            if conn is None:
                self.close()
                conn = self._spawn()
            if stopped():
                return failure(JobCrashed("the job was stopped before its process started it"))
            kept = fn_digest is not None and self.functions.use(fn_digest, None)
            fn_bytes = None if kept else payload[0]  # None: the child has it
            message = (tuple(info), fn_digest, fn_bytes, payload[1], log_state, soft_timeout)
            conn.send_bytes(pickle.dumps(message, codec.PROTOCOL))
            while True:
                reply = pickle.loads(conn.recv_bytes())
                if isinstance(reply, Outcome):
                    return reply
                on_message(*reply)
        except (EOFError, OSError):
            return failure(JobCrashed(self._death_note()))

    def _death_note(self) -> str:
        proc = self.proc
        code = None
        if proc is not None:
            import subprocess

            with contextlib.suppress(subprocess.TimeoutExpired):
                code = proc.wait(timeout=5)
        self.close()
        if code is not None and code < 0:
            try:
                sig = signal.Signals(-code).name
            except ValueError:
                sig = f"signal {-code}"
            how = f"was killed by {sig}"
        else:
            how = f"exited with code {code}"
        return f"the process running the job {how}; a new process takes its place"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.proc is not None:
            import subprocess

            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None


class ProcessExecutor(Pool[ChildProcess]):
    """Jobs in child processes, one job per process at a time."""

    needs_pickle = True
    kernel_owned = True

    def __init__(
        self, runner: Runner, workers: int, after_job: Callable[[], None] | None = None
    ) -> None:
        blob_dir = runner.storage.blob_dir
        super().__init__(
            "process",
            workers,
            lambda: ChildProcess(blob_dir),
            self._run_job,
            runner.storage.release_thread,
        )
        self._runner = runner
        self._running: dict[str, ChildProcess] = {}
        self._after_job = after_job  # called once a job's outcome is queued: a slot is free

    def shutdown(self) -> None:
        """Kill the processes of running jobs (the closing store marked them interrupted),
        then stop the threads, each of which ends its child."""
        for child in list(self._running.values()):
            child.kill()
        super().shutdown()

    def expire(self, job: LocalJob, attempt: int) -> None:
        """Time limit reached: kill the job's process (its slot starts a new one)."""
        job.timed_out = True
        child = self._running.get(job.rec.id)
        if child is not None:
            child.kill()

    def cancel_running(self, job: LocalJob) -> bool:
        """Kill the process running `job`; a new process takes its place."""
        job.cancel_requested = True
        child = self._running.get(job.rec.id)
        if child is not None:
            child.kill()
        return True

    def _run_job(self, job: LocalJob, child: ChildProcess) -> None:
        def invoke(local: LocalJob) -> Outcome:
            try:
                if local.prepare is not None:  # (a worker's job: its payload is read here)
                    local.prepare()
                    local.prepare = None
                payload = local.payload
                assert payload is not None, "process jobs always carry their pickled payload"
                shipped, digest = with_results(self._runner, local, payload)
            except Exception as exc:  # its payload, or a result it depends on, cannot be
                return failure(exc)  # loaded, or its call cannot be pickled again
            self._running[local.rec.id] = child
            try:
                outcome = child.call(
                    job_info(local.rec),
                    shipped,
                    local.log_state,
                    local.rec.soft_timeout,
                    functools.partial(self._runner.relay, local),
                    # Read once this child is in `_running` and started: a stop that comes
                    # later kills it, one that came earlier found no process to kill.
                    lambda: local.timed_out or local.cancel_requested,
                    digest,
                )
            finally:
                self._running.pop(local.rec.id, None)
            if local.timed_out and not outcome.ok:
                return failure(
                    JobTimeout(
                        f"job {local.rec.id} ({local.rec.name}) ran past its time limit of "
                        f"{local.rec.timeout} s; its process was killed"
                    )
                )
            if local.cancel_requested and not outcome.ok:
                return failure(JobCancelled(f"job {local.rec.id} was cancelled while running"))
            return outcome

        self._runner.run(job, invoke)
        if self._after_job is not None:
            self._after_job()


def with_results(
    runner: Runner, local: LocalJob, payload: tuple[bytes, bytes]
) -> tuple[tuple[bytes, bytes], str | None]:
    """The (function, arguments) bytes to send, and the function's digest: the stored ones,
    or, for a job with dependencies, the call pickled again with their results in place."""
    if not local.rec.deps:
        return payload, local.rec.fn_digest
    fn, args, kwargs = runner.call_of(local)
    digest, fn_bytes = (
        (local.rec.fn_digest, payload[0]) if fn is local.fn else codec.dump_function(fn)
    )
    return (fn_bytes, codec.dump_call(args, kwargs)), digest
