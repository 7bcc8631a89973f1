"""Executors run the jobs a store hands them; each has one small interface, `Backend`.

An executor has a `name`, says whether it `needs_pickle` (it runs the job elsewhere),
whether it is `kernel_owned` (its jobs die with this process), its `address` (where it runs
them when not on this machine, or None), and `start(job)`, `resize(workers)`, `shutdown()`,
`expire(job, attempt)` and `cancel_running(job)` (`running/local_job.py` defines it, beside
the job it takes). `executor=` takes one of `NAMES` or a `dask.distributed.Client` (one
backend per client, `executors/dask.py`).
"""

from __future__ import annotations

from nbjobs.calls.options import EXECUTORS
from nbjobs.running.local_job import Backend as Backend

#: The executor names `executor=` takes (an option's accepted values, defined with it).
NAMES = EXECUTORS
