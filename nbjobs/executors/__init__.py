"""Executors run the jobs a store hands them; each has one small interface.

An executor has a `name`, says whether it `needs_pickle` (it runs the job elsewhere),
whether it is `kernel_owned` (its jobs die with this process), its `address` (where it runs
them when not on this machine, or None), and `start(job)`, `resize(workers)`, `shutdown()`
and `cancel_running(job)`. `executor=` takes one of `NAMES` or a `dask.distributed.Client`
(one backend per client, `executors/dask.py`).
"""

from __future__ import annotations

from typing import Protocol

from nbjobs.running.runner import LocalJob

NAMES = ("thread", "process", "worker")


class Backend(Protocol):
    name: str
    needs_pickle: bool
    kernel_owned: bool
    workers: int
    address: str | None

    def start(self, job: LocalJob) -> None: ...

    def resize(self, workers: int) -> None: ...

    def shutdown(self) -> None: ...

    def expire(self, job: LocalJob, attempt: int) -> None:
        """End attempt `attempt` of a job that ran past its time limit."""
        ...

    def cancel_running(self, job: LocalJob) -> bool:
        """Stop a running job of this executor (called with the job's lock held)."""
        ...
