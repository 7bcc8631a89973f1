"""The nbjobs_workers table: one row per detached worker, renewed by its heartbeat.

A stop asked of a worker is a value in its row (`ask_stop`); `adopt` and `retire` are the
two transactions by which a kernel reuses an idle worker without it exiting under the
kernel (see nbjobs/worker/control.py). Writes take the writer's `sql`; reads take any
connection's, e.g. `storage.read(worker_table.rows)`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass
from pathlib import Path

from nbjobs.store import wakeups
from nbjobs.store.writer import Sql

_COLUMNS = "id, owner, host, pid, started_at, heartbeat_at, slots, running, state, cwd, lease, stop"


@dataclass(frozen=True, slots=True)
class WorkerRow:
    """A worker's row as stored: `state` is "running", "wanted" (a kernel was just handed
    it) or "stopping"; `stop` the grace of a stop asked of it (None: none asked)."""

    id: str
    owner: str
    host: str
    pid: int
    started_at: float
    heartbeat_at: float
    slots: int
    running: int
    state: str
    cwd: str
    lease: float
    stop: float | None = None


def register(sql: Sql, row: WorkerRow) -> None:
    """Write a worker's row (replacing any of the same id).

    >>> store.storage.writer.call(lambda sql: register(sql, row))  # doctest: +SKIP
    """
    sql(
        f"INSERT OR REPLACE INTO nbjobs_workers ({_COLUMNS}) "
        f"VALUES ({','.join('?' * len(astuple(row)))})",
        astuple(row),
    )


def heartbeat(sql: Sql, worker_id: str, now: float, running: int, state: str) -> float | None:
    """Renew a worker's row; returns the grace of a stop asked of it (None: keep going).

    A `wanted` mark (see `adopt`) stays while the worker is idle; a busy worker clears it
    (its jobs already keep it serving).

    >>> grace = writer.call(lambda sql: heartbeat(sql, "w1", now, 2, "running"))  # doctest: +SKIP
    """
    sql(
        "UPDATE nbjobs_workers SET heartbeat_at = :now, running = :running, state = CASE "
        "WHEN state = 'wanted' AND :state = 'running' AND :running = 0 THEN state "
        "ELSE :state END WHERE id = :id",
        {"now": now, "running": running, "state": state, "id": worker_id},
    )
    return requested_grace(sql, worker_id)


def adopt(sql: Sql, worker_id: str) -> bool:
    """Mark a running worker `wanted` (a kernel was just handed it): when it is next about
    to exit for being idle it serves another `idle_timeout` instead. False if it is
    stopping (or gone) already.

    >>> taken = writer.call(lambda sql: adopt(sql, "w1"))  # doctest: +SKIP
    """
    cur = sql(
        "UPDATE nbjobs_workers SET state = 'wanted' "
        "WHERE id = ? AND state IN ('running', 'wanted') AND stop IS NULL",
        (worker_id,),
    )
    return cur.rowcount == 1


def retire(sql: Sql, worker_id: str) -> bool:
    """An idle worker's last word: True if it may exit (its row is now `stopping`); False if
    a kernel wanted it meanwhile (the mark is cleared: it serves on).

    >>> may_exit = writer.call(lambda sql: retire(sql, "w1"))  # doctest: +SKIP
    """
    cur = sql(
        "UPDATE nbjobs_workers SET state = 'running' WHERE id = ? AND state = 'wanted'",
        (worker_id,),
    )
    if cur.rowcount == 1:
        return False
    sql("UPDATE nbjobs_workers SET state = 'stopping' WHERE id = ?", (worker_id,))
    return True


def requested_grace(sql: Sql, worker_id: str) -> float | None:
    """The grace of the stop asked of this worker in the store, or None.

    >>> writer.call(lambda sql: requested_grace(sql, "w1"))  # doctest: +SKIP
    5.0
    """
    row = sql("SELECT stop FROM nbjobs_workers WHERE id = ?", (worker_id,)).fetchone()
    return None if row is None or row[0] is None else float(row[0])


def ask_stop(sql: Sql, worker_ids: Iterable[str], grace: float) -> None:
    """Ask these workers to stop, letting their running jobs finish for `grace` seconds.

    >>> writer.call(lambda sql: ask_stop(sql, ["w1"], 5.0))  # doctest: +SKIP
    """
    for worker_id in worker_ids:
        sql("UPDATE nbjobs_workers SET stop = ? WHERE id = ?", (grace, worker_id))


def remove(sql: Sql, folder: Path, worker_id: str) -> None:
    """Forget a worker that is gone: its row, and its wake-up socket in the store `folder`.

    >>> writer.call(lambda sql: remove(sql, storage.path, "w1"))  # doctest: +SKIP
    """
    sql("DELETE FROM nbjobs_workers WHERE id = ?", (worker_id,))
    wakeups.forget(wakeups.address(folder, worker_id))


def rows(sql: Sql) -> list[WorkerRow]:
    """Every registered worker's row, oldest first.

    >>> [row.id for row in storage.read(rows)]  # doctest: +SKIP
    ['w1']
    """
    found = sql(f"SELECT {_COLUMNS} FROM nbjobs_workers ORDER BY started_at").fetchall()
    return [WorkerRow(*row) for row in found]


def bells(sql: Sql, folder: Path, host: str, but: str | None = None) -> list[str]:
    """The wake-up addresses of the serving workers registered on `host` (but `but`).

    >>> storage.read(lambda sql: bells(sql, storage.path, os.uname().nodename))  # doctest: +SKIP
    ['/tmp/nbjobs-wake/...']
    """
    ids = sql(
        "SELECT id FROM nbjobs_workers WHERE host = ? AND state IN ('running', 'wanted')", (host,)
    ).fetchall()
    found = (wakeups.address(folder, wid) for (wid,) in ids if wid != but)
    return [addr for addr in found if addr is not None]
