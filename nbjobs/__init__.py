"""nbjobs: durable background jobs for Jupyter notebooks.

>>> import nbjobs
>>> job = nbjobs.submit(pow, 2, 10, key="2**10")   # doctest: +SKIP
>>> job.result(timeout=10)                          # doctest: +SKIP
1024
"""

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
from .errors import (
    InvalidArgument,
    InvalidArgumentType,
    JobCancelled,
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
from .job import Job
from .states import STATES

__version__ = "0.1.0"

__all__ = [
    "RESERVED",
    "STATES",
    "InvalidArgument",
    "InvalidArgumentType",
    "Job",
    "JobCancelled",
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
    "configure",
    "default_store",
    "forget",
    "get",
    "jobs",
    "resume",
    "stats",
    "submit",
]
