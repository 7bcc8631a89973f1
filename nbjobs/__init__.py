"""nbjobs: durable background jobs for Jupyter notebooks.

>>> import nbjobs
>>> job = nbjobs.submit(pow, 2, 10, key="2**10")   # doctest: +SKIP
>>> job.result(timeout=10)                          # doctest: +SKIP
1024

Re-exports only. Each name is imported from its module when first used (PEP 562), so that
`import nbjobs` and the console script load only what they use (see `_LAZY`); type
checkers and IDEs read the imports under `TYPE_CHECKING`, which `_LAZY` mirrors.
"""

from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION
from typing import TYPE_CHECKING

from nbjobs import moved as _moved  # noqa: F401  (installs the finder of old module names)
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
from nbjobs.states import STATES

if TYPE_CHECKING:
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
    from nbjobs.api.default_store import map_jobs as map
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
    from nbjobs.records import Group, JobRecord, Progress
    from nbjobs.running.reporting import CurrentJob, current_job, progress, track
    from nbjobs.worker.control import WorkerInfo

#: The names imported when first used: module -> its names (`map` is `map_jobs` there;
#: nbjobs' own modules keep the builtin map).
_LAZY: dict[str, tuple[str, ...]] = {
    "nbjobs.api.default_store": (
        "configure", "dead_letters", "default_store", "forget", "get", "get_schedule", "jobs",
        "panel", "pause_schedule", "purge", "resume", "resume_schedule", "retry", "schedule",
        "schedules", "start_worker", "stats", "stop_worker", "submit", "unschedule", "workers",
        "map",
    ),
    "nbjobs.api.futures": ("Executor",),
    "nbjobs.api.job": ("Job",),
    "nbjobs.api.progress_bars": ("watch",),
    "nbjobs.api.schedules": ("Schedule",),
    "nbjobs.api.store": ("Store",),
    "nbjobs.api.tasks": ("Task", "task"),
    "nbjobs.api.waiting": ("as_completed", "wait"),
    "nbjobs.api.workflows": ("chain", "chord", "group"),
    "nbjobs.calls.autokey": ("AutoKey", "auto"),
    "nbjobs.calls.options": ("RESERVED",),
    "nbjobs.calls.retrying": ("Retry",),
    "nbjobs.records": ("Group", "JobRecord", "Progress"),
    "nbjobs.running.reporting": ("CurrentJob", "current_job", "progress", "track"),
    "nbjobs.worker.control": ("WorkerInfo",),
}  # fmt: skip
_MODULE_OF = {name: module for module, names in _LAZY.items() for name in names}
_RENAMED = {"map": "map_jobs"}

if not TYPE_CHECKING:  # hidden from type checkers: to them, a misspelt name stays an error

    def __getattr__(name: str) -> object:
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module 'nbjobs' has no attribute {name!r}")
        from importlib import import_module

        value = getattr(import_module(module), _RENAMED.get(name, name))
        globals()[name] = value  # later uses are plain global lookups
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *_MODULE_OF})


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
