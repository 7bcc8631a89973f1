"""Which process holds a job: a token naming host, pid and start time, and whether that
process is still alive (a pid can be reused; its start time tells the two apart)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nbjobs.records import JobRecord


def _start_ticks(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks; None if it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[1].split()
    return None if fields[0] == b"Z" else fields[19].decode()


def _hostname() -> str:
    return os.uname().nodename


def owner_token() -> str:
    """Identifies this process across pid reuse: host, pid and process start time."""
    return f"{_hostname()}:{os.getpid()}:{_start_ticks(os.getpid()) or '?'}"


def owner_alive(owner: str) -> bool:
    """False only when `owner` is a process of this host that is certainly gone."""
    host, _, rest = owner.partition(":")
    pid_s, _, ticks = rest.partition(":")
    if host != _hostname() or not pid_s.isdigit():
        return True
    pid = int(pid_s)
    if ticks != "?" and os.path.exists("/proc"):
        return _start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(active: Iterable[JobRecord], owner: str | None = None) -> list[JobRecord]:
    """Of these active jobs, those a kernel left when it died (`owner`: this process, alive).

    Jobs of detached workers are not the kernels': the other workers requeue them.

    >>> orphaned(storage.active_records(), owner_token())  # doctest: +SKIP
    [JobRecord(id='a1b2', status='running', owner='host:4242:981', ...)]
    """
    return [
        rec
        for rec in active
        if rec.owner
        and rec.executor != "worker"
        and rec.owner != owner
        and not owner_alive(rec.owner)
    ]
