"""The thread executor: jobs run in threads of the kernel and share its memory."""

from __future__ import annotations

from nbjobs.errors import JobCancelled, JobTimeout
from nbjobs.executors.pool import Pool
from nbjobs.running.calling import failure
from nbjobs.running.local_job import LocalJob
from nbjobs.running.runner import Runner


class _NoSlot:
    def close(self) -> None:
        pass


class ThreadExecutor(Pool[_NoSlot]):
    """Jobs called directly in daemon threads; only their results are pickled."""

    needs_pickle = False
    kernel_owned = True

    def __init__(self, runner: Runner, workers: int) -> None:
        super().__init__("thread", workers, _NoSlot, self._run_job, runner.storage.release_thread)
        self._runner = runner

    def expire(self, job: LocalJob, attempt: int) -> None:
        """Time limit reached: fail the attempt now, abandon its thread, refill the slot."""
        self._runner.end(job, failure(_timeout_error(job)), attempt)
        self.abandon(job.rec.id)

    def cancel_running(self, job: LocalJob) -> bool:
        """Cancel the job now, abandon its thread and refill its slot. Python cannot stop
        a thread: it runs on until its next `progress()`/`track()` (which raises
        `JobCancelled`) or its end, and whatever it returns is dropped."""
        job.cancel_requested = True
        self._runner.end_held(
            job, failure(JobCancelled(f"job {job.rec.id} ({job.rec.name}) was cancelled"))
        )
        self.abandon(job.rec.id)
        return True

    def _run_job(self, job: LocalJob, slot: _NoSlot) -> None:
        self._runner.run(job, self._runner.in_thread)


def _timeout_error(job: LocalJob) -> JobTimeout:
    return JobTimeout(
        f"job {job.rec.id} ({job.rec.name}) ran past its time limit of {job.rec.timeout} s; "
        "its thread was abandoned (Python cannot stop a thread) and its late result is dropped"
    )
