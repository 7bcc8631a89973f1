"""nbjobs: durable background jobs for Jupyter notebooks.

>>> import nbjobs
>>> job = nbjobs.submit(pow, 2, 10, key="2**10")   # doctest: +SKIP
>>> job.result(timeout=10)                          # doctest: +SKIP
1024
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

from .api import (
    RESERVED,
    Store,
    configure,
    default_store,
    forget,
    get,
    jobs,
    resume,
    stats,
    submit,
)
from .autokey import AutoKey, auto
from .errors import (
    InvalidArgument,
    InvalidArgumentType,
    JobCancelled,
    JobCrashed,
    JobError,
    JobFailed,
    JobInterrupted,
    JobNotFound,
    NbjobsError,
    PayloadLoadError,
    PayloadNotPicklable,
    ResultNotPicklable,
    StoreError,
    StoreFormatError,
    StoreNotWritable,
    WaitTimeout,
)
from .futures import Executor
from .job import Job
from .records import JobRecord, Progress
from .reporting import CurrentJob, current_job, progress, track
from .states import STATES
from .waiting import as_completed, wait

__version__ = "0.1.0"

__all__ = [
    "ALL_COMPLETED",
    "AutoKey",
    "CurrentJob",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "RESERVED",
    "STATES",
    "Executor",
    "InvalidArgument",
    "InvalidArgumentType",
    "Job",
    "JobCancelled",
    "JobCrashed",
    "JobError",
    "JobFailed",
    "JobInterrupted",
    "JobNotFound",
    "JobRecord",
    "NbjobsError",
    "PayloadLoadError",
    "PayloadNotPicklable",
    "Progress",
    "ResultNotPicklable",
    "Store",
    "StoreError",
    "StoreFormatError",
    "StoreNotWritable",
    "WaitTimeout",
    "as_completed",
    "auto",
    "configure",
    "current_job",
    "default_store",
    "forget",
    "get",
    "jobs",
    "progress",
    "resume",
    "stats",
    "submit",
    "track",
    "wait",
]
