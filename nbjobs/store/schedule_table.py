"""The nbjobs_schedules table: a row per schedule, due ones found by an index."""

from __future__ import annotations

from nbjobs.errors import PayloadLoadError
from nbjobs.records import CORRUPT, ScheduleRecord
from nbjobs.store.base import StorageBase, reported
from nbjobs.store.writer import Sql


class ScheduleTable(StorageBase):
    """Schedules, one row each (see nbjobs/scheduling/)."""

    @reported
    def schedules(self, sql: Sql | None = None) -> list[ScheduleRecord]:
        """Every schedule, by name (few: one row each, no blob read)."""
        rows = (sql or self._sql)(
            "SELECT name, paused, data FROM nbjobs_schedules ORDER BY name"
        ).fetchall()
        return [_decode_schedule(*row) for row in rows]

    @reported
    def schedule(self, name: str, sql: Sql | None = None) -> ScheduleRecord | None:
        row = (sql or self._sql)(
            "SELECT name, paused, data FROM nbjobs_schedules WHERE name = ?", (name,)
        ).fetchone()
        return None if row is None else _decode_schedule(*row)

    @reported
    def earliest_schedule(self, sql: Sql | None = None) -> float | None:
        """When the next active schedule is due (None: no active schedule): one index read."""
        row = (sql or self._sql)(
            "SELECT next_at FROM nbjobs_schedules INDEXED BY nbjobs_schedules_due "
            "WHERE paused = 0 ORDER BY next_at LIMIT 1"
        ).fetchone()
        return None if row is None else float(row[0])

    def due_schedules(self, sql: Sql, now: float, limit: int) -> list[ScheduleRecord]:
        rows = sql(
            "SELECT name, paused, data FROM nbjobs_schedules INDEXED BY nbjobs_schedules_due "
            "WHERE paused = 0 AND next_at <= ? ORDER BY next_at LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_decode_schedule(*row) for row in rows]

    def put_schedule(self, sql: Sql, rec: ScheduleRecord) -> None:
        sql(
            "INSERT OR REPLACE INTO nbjobs_schedules (name, next_at, paused, data) "
            "VALUES (?, ?, ?, ?)",
            (rec.name, rec.next_at, int(rec.paused), rec.encode()),
        )

    def move_schedule(self, sql: Sql, rec: ScheduleRecord, expected_next_at: float) -> bool:
        """Write `rec` if the schedule is still due at `expected_next_at` and active
        (compare-and-set: of several workers, one fires each slot)."""
        cur = sql(
            "UPDATE nbjobs_schedules SET next_at = ?, paused = ?, data = ? "
            "WHERE name = ? AND next_at = ? AND paused = 0",
            (rec.next_at, int(rec.paused), rec.encode(), rec.name, expected_next_at),
        )
        return cur.rowcount == 1

    def disable_schedule(self, sql: Sql, name: str) -> None:
        """Pause a schedule through its row alone (its record may be unreadable)."""
        sql("UPDATE nbjobs_schedules SET paused = 1 WHERE name = ?", (name,))


def _decode_schedule(name: str, paused: int, data: bytes) -> ScheduleRecord:
    """The row's `paused` column is the truth (`disable_schedule` writes only that)."""
    try:
        rec = ScheduleRecord.decode(data)
    except PayloadLoadError:
        rec = ScheduleRecord(name=name, fn_name=CORRUPT)
    rec.paused = bool(paused)
    return rec
