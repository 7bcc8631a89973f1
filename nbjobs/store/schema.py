"""The store's own tables inside diskcache's database, and bringing older stores up to them.

Job records live in `nbjobs_jobs`, next to SQL indexes on status, name, key and tags and a
per-status count kept by triggers, so every index changes in the same transaction as its
record (and the counts of each group of jobs: group_table.py). Blobs (calls, results,
errors, logs, attempts) are rows of `nbjobs_blobs`; large ones name a file under `blobs/`
(nbjobs/store/blobs.py).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from nbjobs.errors import PayloadLoadError, StoreCorrupt, StoreFormatError
from nbjobs.records import JobRecord
from nbjobs.store import group_table
from nbjobs.store.connections import DBNAME
from nbjobs.store.writer import Sql

SCHEMA = """
CREATE TABLE IF NOT EXISTS nbjobs_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key TEXT UNIQUE,
    status TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT,
    updated REAL NOT NULL,
    data TEXT NOT NULL,
    call BLOB,  -- the job's pickled call when small (else the blob p:<id>); see insert()
    fn TEXT,  -- the digest of the job's function, the blob f:<fn>
    grp TEXT  -- the id of the job's group (its map's), see group_table.py
);
CREATE INDEX IF NOT EXISTS nbjobs_jobs_status ON nbjobs_jobs (status, seq);
CREATE INDEX IF NOT EXISTS nbjobs_jobs_name ON nbjobs_jobs (name, seq);
-- A pending job without an owner waits for a detached worker (kernels own their jobs).
CREATE INDEX IF NOT EXISTS nbjobs_jobs_worker_queue ON nbjobs_jobs (seq)
    WHERE status = 'pending' AND owner IS NULL;
CREATE TABLE IF NOT EXISTS nbjobs_tags (
    tag TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (tag, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nbjobs_tags_seq ON nbjobs_tags (seq);
-- Jobs per status, and per function (rows 'f:<digest>': its blob goes with the last job
-- that uses it). Beside the statuses, a function's count is on a page every insert writes
-- anyway: an index of nbjobs_jobs (fn) wrote one WAL frame more per job (+13%).
CREATE TABLE IF NOT EXISTS nbjobs_counts (
    status TEXT PRIMARY KEY, n INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nbjobs_blobs (key TEXT PRIMARY KEY, data BLOB, file TEXT);
-- Which file names are in use: the sweep of files under blobs/ that no row names.
CREATE INDEX IF NOT EXISTS nbjobs_blobs_file ON nbjobs_blobs (file) WHERE file IS NOT NULL;
-- Files of blobs deleted by a committed transaction, removed from blobs/ after its COMMIT:
-- names left here by a process that died in between are removed by the next opener.
CREATE TABLE IF NOT EXISTS nbjobs_dropped (file TEXT PRIMARY KEY) WITHOUT ROWID;
-- The large arguments (blobs v:<value>) each job's call refers to; a blob goes with the
-- last job that refers to it.
CREATE TABLE IF NOT EXISTS nbjobs_values (
    value TEXT NOT NULL, job TEXT NOT NULL, PRIMARY KEY (value, job)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nbjobs_values_job ON nbjobs_values (job);
-- Cancels asked by one process for a job another kernel runs or holds in its queue.
CREATE TABLE IF NOT EXISTS nbjobs_cancels (
    owner TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (owner, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nbjobs_workers (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at REAL NOT NULL, heartbeat_at REAL NOT NULL, slots INTEGER NOT NULL,
    running INTEGER NOT NULL, state TEXT NOT NULL, cwd TEXT NOT NULL, lease REAL NOT NULL,
    stop REAL
);
-- One row per schedule; `data` is the encoded ScheduleRecord, its call the blob s:<name>.
CREATE TABLE IF NOT EXISTS nbjobs_schedules (
    name TEXT PRIMARY KEY, next_at REAL NOT NULL, paused INTEGER NOT NULL, data BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS nbjobs_schedules_due ON nbjobs_schedules (next_at) WHERE paused = 0;
CREATE TRIGGER IF NOT EXISTS nbjobs_count_ins AFTER INSERT ON nbjobs_jobs BEGIN
    INSERT INTO nbjobs_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_count_upd AFTER UPDATE OF status ON nbjobs_jobs
WHEN OLD.status != NEW.status BEGIN
    UPDATE nbjobs_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO nbjobs_counts (status, n) VALUES (NEW.status, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_count_del AFTER DELETE ON nbjobs_jobs BEGIN
    UPDATE nbjobs_counts SET n = n - 1 WHERE status = OLD.status;
    DELETE FROM nbjobs_tags WHERE seq = OLD.seq;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_fn_ins AFTER INSERT ON nbjobs_jobs
WHEN NEW.fn IS NOT NULL BEGIN
    INSERT INTO nbjobs_counts (status, n) VALUES ('f:' || NEW.fn, 1)
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_fn_upd AFTER UPDATE OF fn ON nbjobs_jobs
WHEN OLD.fn IS NOT NEW.fn BEGIN
    UPDATE nbjobs_counts SET n = n - 1 WHERE status = 'f:' || OLD.fn;
    INSERT INTO nbjobs_counts (status, n) SELECT 'f:' || NEW.fn, 1 WHERE NEW.fn IS NOT NULL
        ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS nbjobs_fn_del AFTER DELETE ON nbjobs_jobs
WHEN OLD.fn IS NOT NULL BEGIN
    UPDATE nbjobs_counts SET n = n - 1 WHERE status = 'f:' || OLD.fn;
END;
"""

#: `PRAGMA user_version` of a store holding every table, index and column of `SCHEMA`
#: (diskcache does not use it). Bump it with each change to `SCHEMA` or `_migrate`.
VERSION = 4


def _migrate(sql: Sql) -> None:
    """Bring the job table of a store made by an older nbjobs up to this schema, before
    `SCHEMA` indexes its new columns (inside the opening transaction, so concurrent openers
    do it once; a new store has no table yet)."""
    columns = {row[1] for row in sql("PRAGMA table_info(nbjobs_jobs)").fetchall()}
    if not columns:
        return
    if "call" not in columns:  # older stores kept every call in a blob p:<id>
        sql("ALTER TABLE nbjobs_jobs ADD COLUMN call BLOB")
    if "fn" not in columns:  # function blobs were never removed: say which jobs use which
        sql("ALTER TABLE nbjobs_jobs ADD COLUMN fn TEXT")
        rows = sql("SELECT seq, data FROM nbjobs_jobs").fetchall()
        for seq, data in rows:
            with contextlib.suppress(PayloadLoadError):  # unreadable: cannot run anyway
                digest = JobRecord.decode(data).fn_digest
                if digest is not None:
                    sql("UPDATE nbjobs_jobs SET fn = ? WHERE seq = ?", (digest, seq))
        sql(
            "INSERT INTO nbjobs_counts (status, n) SELECT 'f:' || fn, count(*) "
            "FROM nbjobs_jobs WHERE fn IS NOT NULL GROUP BY fn"
        )
    if "grp" not in columns:  # jobs stored before groups belong to none
        sql("ALTER TABLE nbjobs_jobs ADD COLUMN grp TEXT")


def ensure(sql: Sql, transact: Callable[..., Any], path: Path, created: bool) -> None:
    """Create what is missing and migrate, in one transaction (`transact`: diskcache's), so
    that concurrent openers do it once; a store already at `VERSION` (`PRAGMA user_version`)
    is left as it is: opening it writes nothing of ours. Raises `StoreFormatError` for a
    store of a newer schema, and `StoreCorrupt` for a database of an existing store (not
    just `created`) that holds none of our tables.
    """
    version = sql("PRAGMA user_version").fetchone()[0]
    if version == VERSION:
        return
    if version > VERSION:
        raise StoreFormatError(
            f"the job store at {path} was written by a newer version of nbjobs (its database "
            f"has schema {version}, this nbjobs knows schema {VERSION} and older). Install "
            "the newer nbjobs, or use another folder."
        )
    if not created and not _has_jobs_table(sql):
        raise StoreCorrupt(
            f"the job store at {path} has lost its jobs: its database {path / DBNAME} holds "
            f"no nbjobs tables (replaced or emptied). Restore {DBNAME} from a copy if you have "
            "one; to start a new store, use another folder or remove this one"
        )
    with transact(retry=True):
        _migrate(sql)
        for stmt in _statements(SCHEMA + group_table.SCHEMA):
            sql(stmt)
        sql(f"PRAGMA user_version = {VERSION}")


def _has_jobs_table(sql: Sql) -> bool:
    """Whether the database holds the job records (stores made before `VERSION` existed have
    user_version 0)."""
    row = sql("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'nbjobs_jobs'")
    return row.fetchone() is not None


def _statements(script: str) -> Iterator[str]:
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            yield buf.strip()
            buf = ""
