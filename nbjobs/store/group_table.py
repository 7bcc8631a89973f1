"""The groups of jobs (one per map or `nbjobs.group`) and their counts per status.

A job's group id is a column of nbjobs_jobs; triggers keep one row per group (its name,
creation time, size and the time its last job finished) and its counts per status, in the
transaction that changes the job, as nbjobs_counts does for the whole store. So a group's
row is one primary-key read however many jobs it has. A group row appears with its first
job and goes with its last. Its name is its key prefix for an id `k:<prefix>` (a map keyed
by prefix, so running the cell again finds the same group), else its first job's name.
"""

from __future__ import annotations

from collections.abc import Sequence

from nbjobs import states
from nbjobs.records import Group
from nbjobs.store.base import placeholders
from nbjobs.store.writer import Sql

#: The id prefix of a map's group keyed by a str prefix: `k:<prefix>`.
KEYED = "k:"

_FINISHED = ",".join(f"'{s}'" for s in sorted(states.FINISHED))

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS nbjobs_groups (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at REAL NOT NULL,
    size INTEGER NOT NULL, finished_at REAL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nbjobs_groups_created ON nbjobs_groups (created_at);
CREATE TABLE IF NOT EXISTS nbjobs_group_counts (
    grp TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (grp, status)
) WITHOUT ROWID;
-- A group's jobs by status, newest first: its pages and the panel's order within it.
CREATE INDEX IF NOT EXISTS nbjobs_jobs_group ON nbjobs_jobs (grp, status, seq)
    WHERE grp IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS nbjobs_group_ins AFTER INSERT ON nbjobs_jobs
WHEN NEW.grp IS NOT NULL BEGIN
    -- (a job may be written finished at once: its insert and ending in one batch)
    INSERT INTO nbjobs_groups (id, name, created_at, size, finished_at) VALUES (
        NEW.grp,
        CASE WHEN substr(NEW.grp, 1, 2) = '{KEYED}' THEN substr(NEW.grp, 3) ELSE NEW.name END,
        NEW.updated, 1, CASE WHEN NEW.status IN ({_FINISHED}) THEN NEW.updated END
    ) ON CONFLICT (id) DO UPDATE SET
        size = size + 1, finished_at = coalesce(excluded.finished_at, finished_at);
    INSERT INTO nbjobs_group_counts (grp, status, n) VALUES (NEW.grp, NEW.status, 1)
        ON CONFLICT (grp, status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_group_upd AFTER UPDATE OF status ON nbjobs_jobs
WHEN NEW.grp IS NOT NULL AND OLD.status != NEW.status BEGIN
    UPDATE nbjobs_group_counts SET n = n - 1 WHERE grp = NEW.grp AND status = OLD.status;
    INSERT INTO nbjobs_group_counts (grp, status, n) VALUES (NEW.grp, NEW.status, 1)
        ON CONFLICT (grp, status) DO UPDATE SET n = n + 1;
    UPDATE nbjobs_groups SET finished_at = NEW.updated
        WHERE id = NEW.grp AND NEW.status IN ({_FINISHED});
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_group_del AFTER DELETE ON nbjobs_jobs
WHEN OLD.grp IS NOT NULL BEGIN
    UPDATE nbjobs_group_counts SET n = n - 1 WHERE grp = OLD.grp AND status = OLD.status;
    UPDATE nbjobs_groups SET size = size - 1 WHERE id = OLD.grp;
    DELETE FROM nbjobs_group_counts WHERE grp = OLD.grp
        AND (SELECT size FROM nbjobs_groups WHERE id = OLD.grp) <= 0;
    DELETE FROM nbjobs_groups WHERE id = OLD.grp AND size <= 0;
END;
"""

_COLUMNS = "id, name, created_at, size, finished_at"


def groups(sql: Sql, now: float, limit: int = 100) -> list[Group]:
    """The newest `limit` groups (by creation), newest first: two indexed reads."""
    rows = sql(
        f"SELECT {_COLUMNS} FROM nbjobs_groups ORDER BY created_at DESC LIMIT ?", (limit,)
    ).fetchall()
    return _with_counts(sql, rows, now)


def by_ids(sql: Sql, ids: Sequence[str], now: float) -> list[Group]:
    """The groups with these ids that are in the store, in the order given."""
    ids = list(dict.fromkeys(ids))[:900]
    if not ids:
        return []
    rows = sql(
        f"SELECT {_COLUMNS} FROM nbjobs_groups WHERE id IN ({placeholders(ids)})", ids
    ).fetchall()
    order = {gid: i for i, gid in enumerate(ids)}
    return _with_counts(sql, sorted(rows, key=lambda r: order[r[0]]), now)


_Row = tuple[str, str, float, int, float | None]


def _with_counts(sql: Sql, rows: list[_Row], now: float) -> list[Group]:
    if not rows:
        return []
    ids = [r[0] for r in rows]
    counts: dict[str, dict[str, int]] = {gid: {} for gid in ids}
    for gid, status, n in sql(
        f"SELECT grp, status, n FROM nbjobs_group_counts WHERE grp IN ({placeholders(ids)}) "
        "AND n > 0",
        ids,
    ).fetchall():
        counts[gid][status] = n
    return [
        Group(gid, name, created, size, counts[gid], finished, now)
        for gid, name, created, size, finished in rows
    ]


def counted(sql: Sql, field: str, value: str, now: float) -> Group:
    """The jobs of one name or tag (`field`) as a group: counted through that field's
    index (a read of its jobs, not of the store; only maps and groups keep counts)."""
    if field == "name":
        query = "SELECT status, count(*), min(updated) FROM nbjobs_jobs WHERE name = ? "
    else:
        query = (
            "SELECT j.status, count(*), min(j.updated) FROM nbjobs_tags t "
            "JOIN nbjobs_jobs j ON j.seq = t.seq WHERE t.tag = ? "
        )
    rows = sql(query + "GROUP BY 1", (value,)).fetchall()
    counts = {status: n for status, n, _ in rows}
    created = min((first for _, _, first in rows), default=now)
    return Group(f"{field}:{value}", value, created, sum(counts.values()), counts, None, now)
