"""Asks a job's retry policy whether a failed attempt is retried, and after how long."""

from __future__ import annotations

from nbjobs import codec
from nbjobs.calls.retrying import Policy
from nbjobs.errors import RetryPolicyFailed
from nbjobs.records import JobRecord
from nbjobs.running.calling import Outcome, failure


def judge(
    prev: JobRecord, outcome: Outcome, now: float, policy: Policy | None
) -> tuple[Outcome, float | None]:
    """Ask `policy` whether the running attempt of `prev`, ended by `outcome`, is retried:
    the outcome to record, and the seconds until the next attempt (None: no retry).

    A policy that raises fails the job with `RetryPolicyFailed` (its outcome replaces the
    attempt's, whose error it tells). User code runs here: the policy's strategies, and the
    unpickling of the job's exception; call it under no lock, on no thread other jobs need.
    """
    if policy is None or outcome.ok or outcome.cancelled or outcome.data is None:
        return outcome, None
    error = codec.decode_error(outcome.data)
    first = prev.run_started_at if prev.run_started_at is not None else now
    try:
        return outcome, policy.next_delay(prev.run_attempts, error, first, now, prev.idle_for)
    except RetryPolicyFailed as bug:
        return _policy_failure(bug, prev, outcome, outcome.data), None


def _policy_failure(
    bug: RetryPolicyFailed, prev: JobRecord, outcome: Outcome, blob: bytes
) -> Outcome:
    """The outcome of an attempt whose retry policy raised `bug`: its traceback is the
    policy's, then the attempt's own."""
    error = RetryPolicyFailed(
        f"{bug} while deciding whether to retry attempt {prev.attempts}, which failed with "
        f"{outcome.error_type}: {outcome.error_message}; the job is failed, not retried: fix "
        "the policy, then run the job again (job.retry())"
    )
    error.__cause__ = bug.__cause__
    error.add_note("The attempt's own error:\n" + codec.error_traceback(blob).rstrip())
    o = failure(error)
    return Outcome(
        False, o.data, None, o.error_type, o.error_message, False, outcome.progress, outcome.log
    )
