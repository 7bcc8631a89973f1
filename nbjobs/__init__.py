"""nbjobs: durable background jobs for Jupyter notebooks.

>>> import nbjobs
>>> job = nbjobs.submit(pow, 2, 10, key="2**10")   # doctest: +SKIP
>>> job.result(timeout=10)                          # doctest: +SKIP
1024
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

from nbjobs.api.default_store import (
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
from nbjobs.api.default_store import map_jobs as map  # nbjobs' own modules keep the builtin map
from nbjobs.api.futures import Executor
from nbjobs.api.job import Job
from nbjobs.api.progress_bars import watch
from nbjobs.api.schedules import Schedule
from nbjobs.api.store import Store
from nbjobs.api.tasks import Task, task
from nbjobs.api.waiting import as_completed, wait
from nbjobs.api.workflows import chain, chord, group
from nbjobs.calls.autokey import AutoKey, auto
from nbjobs.calls.options import RESERVED
from nbjobs.calls.retrying import Retry
from nbjobs.errors import (
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
from nbjobs.records import Group, JobRecord, Progress
from nbjobs.running.reporting import CurrentJob, current_job, progress, track
from nbjobs.states import STATES
from nbjobs.worker.control import WorkerInfo

__version__ = "0.1.0"


__all__ = [
    "ALL_COMPLETED",
    "AutoKey",
    "CurrentJob",
    "DependencyFailed",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "Group",
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
    "watch",
    "workers",
]
