"""nbjobs: durable background jobs for Jupyter notebooks.

>>> import nbjobs
>>> job = nbjobs.submit(pow, 2, 10, key="2**10")   # doctest: +SKIP
>>> job.result(timeout=10)                          # doctest: +SKIP
1024
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

from .api import Store
from .autokey import AutoKey, auto
from .calls import RESERVED
from .defaults import (
    configure,
    dead_letters,
    default_store,
    forget,
    get,
    get_schedule,
    jobs,
    panel,
    pause_schedule,
    purge,
    resume,
    resume_schedule,
    retry,
    schedule,
    schedules,
    start_worker,
    stats,
    stop_worker,
    submit,
    unschedule,
    workers,
)
from .defaults import map_jobs as map  # nbjobs' own modules keep the builtin map
from .errors import (
    DependencyFailed,
    InvalidArgument,
    InvalidArgumentType,
    JobCancelled,
    JobCrashed,
    JobError,
    JobFailed,
    JobInterrupted,
    JobNotFound,
    JobTimeout,
    NbjobsError,
    PayloadLoadError,
    PayloadNotPicklable,
    ResultNotPicklable,
    RetryPolicyFailed,
    ScheduleNotFound,
    SoftTimeout,
    StoreClosed,
    StoreCorrupt,
    StoreError,
    StoreFormatError,
    StoreFull,
    StoreNotWritable,
    WaitTimeout,
    WouldDeadlock,
)
from .executors.worker import WorkerInfo
from .futures import Executor
from .job import Job
from .records import JobRecord, Progress
from .recurring import Schedule
from .reporting import CurrentJob, current_job, progress, track
from .retrying import Retry
from .states import STATES
from .tasks import Task, task
from .waiting import as_completed, wait
from .workflows import chain, chord, group

__version__ = "0.1.0"


__all__ = [
    "ALL_COMPLETED",
    "AutoKey",
    "CurrentJob",
    "DependencyFailed",
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
    "JobTimeout",
    "NbjobsError",
    "PayloadLoadError",
    "PayloadNotPicklable",
    "Progress",
    "ResultNotPicklable",
    "RetryPolicyFailed",
    "Retry",
    "Schedule",
    "ScheduleNotFound",
    "SoftTimeout",
    "Store",
    "StoreClosed",
    "StoreCorrupt",
    "StoreError",
    "StoreFormatError",
    "StoreFull",
    "StoreNotWritable",
    "Task",
    "WaitTimeout",
    "WouldDeadlock",
    "WorkerInfo",
    "as_completed",
    "auto",
    "chain",
    "chord",
    "configure",
    "current_job",
    "dead_letters",
    "default_store",
    "forget",
    "get",
    "get_schedule",
    "group",
    "jobs",
    "map",
    "panel",
    "pause_schedule",
    "progress",
    "purge",
    "resume",
    "resume_schedule",
    "retry",
    "schedule",
    "schedules",
    "start_worker",
    "stats",
    "stop_worker",
    "submit",
    "task",
    "track",
    "unschedule",
    "wait",
    "workers",
]
