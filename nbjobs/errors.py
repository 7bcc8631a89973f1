"""The exception tree: everything nbjobs raises on purpose derives from `NbjobsError`.

Catch at the level you care about::

    try:
        value = job.result(timeout=10)
    except nbjobs.WaitTimeout:      # still running
        ...
    except nbjobs.NbjobsError:      # anything else nbjobs has to say
        ...
"""

from __future__ import annotations

import concurrent.futures


class NbjobsError(Exception):
    """Base class of every error raised by nbjobs itself."""


class InvalidArgument(NbjobsError, ValueError):
    """An argument has a value nbjobs cannot accept; the message names it and what would be."""


class InvalidArgumentType(InvalidArgument, TypeError):
    """An argument has a type nbjobs cannot accept; the message names it and what would be."""


class _NotFound(NbjobsError, KeyError):
    def __str__(self) -> str:
        # KeyError.__str__ would show the repr of the message.
        return str(self.args[0]) if self.args else ""


class JobNotFound(_NotFound):
    """No job with this id or key exists in the store."""


class ScheduleNotFound(_NotFound):
    """No schedule with this name exists in the store."""


class StoreError(NbjobsError):
    """The store folder cannot be used."""


class StoreFormatError(StoreError):
    """The store was written by an incompatible version of nbjobs."""


class StoreNotWritable(StoreError):
    """The store folder cannot be created or written."""


class StoreFull(StoreError):
    """The disk of the store is full: a write of this call could not be made (the message
    names the store and the free space). The store works again as soon as space is freed."""


class StoreClosed(StoreError):
    """The store was closed (`Store.close()`); open it again to submit or change jobs."""


class StoreCorrupt(StoreError):
    """The store's database is damaged, missing or empty: the message names the file, what to
    keep and how to recover what can still be read."""


class PayloadNotPicklable(NbjobsError):
    """A function or argument cannot be pickled for an executor that needs it."""


class PayloadLoadError(NbjobsError):
    """A stored payload or result can no longer be loaded (other Python or cloudpickle)."""


class IllegalTransition(NbjobsError):
    """A state change that the transition table does not allow (a bug, or a lost race)."""


class JobError(NbjobsError):
    """Base of the errors that describe how a job ended."""


class JobFailed(JobError):
    """The job raised an exception that cannot be re-created here.

    Its type name, message and traceback text are kept as attributes.
    """

    def __init__(self, type_name: str, message: str, traceback: str = "") -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = traceback


class ResultNotPicklable(JobError):
    """The job returned a value that cannot be pickled, so it cannot be stored."""


class RetryPolicyFailed(JobError):
    """The job's retry policy (`retries=`, `retry_on=`, `backoff=`) raised while deciding
    whether to retry a failed attempt, so the job failed instead of retrying. The message
    names the policy and the attempt's own error; the traceback is the policy's, then the
    attempt's."""


class JobCancelled(JobError, concurrent.futures.CancelledError):
    """The job was cancelled before it produced a result."""


class DependencyFailed(JobError):
    """A job this job depends on (passed as one of its arguments) did not succeed."""


class JobCrashed(JobError):
    """The process running the job died (a segfault, `os._exit`, the OOM killer)."""


class JobTimeout(JobError, TimeoutError):
    """The job ran past its `timeout=`; it can be listed in `retry_on`."""


class SoftTimeout(NbjobsError):
    """Raised inside a job that passed its `soft_timeout=`, so it can clean up and stop."""


class JobInterrupted(JobError):
    """The process that ran the job died; `resume()` or resubmitting its key runs it again."""


class WouldDeadlock(NbjobsError, RuntimeError):
    """A call would wait for the thread it runs on (the store's writer thread) forever."""


class WaitTimeout(NbjobsError, TimeoutError):
    """`result()`/`wait()` gave up waiting; the job itself goes on."""
