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
from .states import STATES
from .waiting import as_completed, wait

__version__ = "0.1.0"

__all__ = [
    "ALL_COMPLETED",
    "AutoKey",
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
    "NbjobsError",
    "PayloadLoadError",
    "PayloadNotPicklable",
    "ResultNotPicklable",
    "Store",
    "StoreError",
    "StoreFormatError",
    "StoreNotWritable",
    "WaitTimeout",
    "as_completed",
    "auto",
    "configure",
    "default_store",
    "forget",
    "get",
    "jobs",
    "resume",
    "stats",
    "submit",
    "wait",
]
