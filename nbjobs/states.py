"""Job states and the one table of legal transitions."""

from __future__ import annotations

from typing import Final

from nbjobs.errors import IllegalTransition

PENDING: Final = "pending"
RUNNING: Final = "running"
RETRYING: Final = "retrying"
SUCCEEDED: Final = "succeeded"
FAILED: Final = "failed"
CANCELLED: Final = "cancelled"
INTERRUPTED: Final = "interrupted"

STATES: Final = (PENDING, RUNNING, RETRYING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)

TRANSITIONS: Final[dict[str, frozenset[str]]] = {
    # pending -> interrupted: queued in the pool of a kernel that ended (see docs/design.md)
    PENDING: frozenset({RUNNING, CANCELLED, FAILED, INTERRUPTED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED, RETRYING, INTERRUPTED, PENDING}),
    RETRYING: frozenset({RUNNING, CANCELLED, INTERRUPTED}),
    SUCCEEDED: frozenset({PENDING}),  # only by force=True resubmission
    FAILED: frozenset({PENDING}),
    CANCELLED: frozenset({PENDING}),
    INTERRUPTED: frozenset({PENDING}),
}

#: States in which a job will not change again unless someone re-runs it.
FINISHED: Final = frozenset({SUCCEEDED, FAILED, CANCELLED, INTERRUPTED})
#: States whose job is re-run when its key is submitted again.
RERUN_ON_RESUBMIT: Final = frozenset({FAILED, CANCELLED, INTERRUPTED})
#: States that a dead owner leaves behind and that become `interrupted`.
ACTIVE: Final = frozenset({PENDING, RUNNING, RETRYING})


def check_transition(old: str, new: str) -> None:
    """Raise `IllegalTransition` unless `old -> new` is in the table.

    >>> check_transition("pending", "running")
    >>> check_transition("succeeded", "running")
    Traceback (most recent call last):
    ...
    nbjobs.errors.IllegalTransition: illegal job state change succeeded -> running
    """
    if new not in TRANSITIONS.get(old, frozenset()):
        raise IllegalTransition(f"illegal job state change {old} -> {new}")
