"""The thread executor: jobs run in threads of the kernel and share its memory."""

from __future__ import annotations

from ..runner import LocalJob, Runner
from .pool import Pool


class _NoSlot:
    def close(self) -> None:
        pass


class ThreadExecutor(Pool[_NoSlot]):
    """Jobs called directly in daemon threads; only their results are pickled."""

    needs_pickle = False
    kernel_owned = True

    def __init__(self, runner: Runner, workers: int) -> None:
        super().__init__("thread", workers, _NoSlot, self._run_job)
        self._runner = runner

    def cancel_running(self, job: LocalJob) -> bool:
        """Python cannot stop a thread: the job stops at its next `progress()`/`track()`."""
        job.cancel_requested = True
        return True

    def _run_job(self, job: LocalJob, slot: _NoSlot) -> None:
        self._runner.run(job, self._runner.in_thread)
