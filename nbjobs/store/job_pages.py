"""Pages of job records in the orders a listing offers, each through the indexes.

Within one status, `(status, seq)` (or, in a group, `(grp, status, seq)`) is an index
range already in order; several statuses are one such range each, merged by seq (never a
sort of every job of those statuses). The default order of the panel, "active", lists
running, retrying, failed, pending, then the other finished jobs, newest first within
each: the counts per status say which band a page starts in, so earlier bands are skipped,
not read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from nbjobs import states
from nbjobs.errors import PayloadLoadError
from nbjobs.records import CORRUPT, ErrorInfo, JobRecord
from nbjobs.store.base import StorageBase, reported
from nbjobs.store.writer import Sql

#: The orders of a page: `active` (see the module docstring), `newest` and `oldest`
#: (by submission), `name` (A to Z, then oldest first).
ORDERS = ("active", "newest", "oldest", "name")

#: The bands of the `active` order, in order.
BANDS: tuple[tuple[str, ...], ...] = (
    (states.RUNNING,),
    (states.RETRYING,),
    (states.FAILED,),
    (states.PENDING,),
    (states.SUCCEEDED, states.CANCELLED, states.INTERRUPTED),
)

_SELECT = "SELECT j.id, j.key, j.status, j.name, j.data, j.seq"


@dataclass(frozen=True)
class Filters:
    """What a page is restricted to (None: anything)."""

    name: str | None = None
    tag: str | None = None
    search: str | None = None
    group: str | None = None

    def sql(self) -> tuple[str, list[str], list[Any]]:
        """(FROM clause, WHERE terms, their parameters), statuses aside."""
        where: list[str] = []
        params: list[Any] = []
        src = "nbjobs_jobs j"
        if self.tag is not None:
            src = "nbjobs_tags t JOIN nbjobs_jobs j ON j.seq = t.seq"
            where.append("t.tag = ?")
            params.append(self.tag)
        if self.group is not None:
            where.append("j.grp = ?")
            params.append(self.group)
        if self.name is not None:
            where.append("j.name = ?")
            params.append(self.name)
        if self.search:
            where.append("(j.name LIKE ? ESCAPE '\\' OR j.key LIKE ? ESCAPE '\\')")
            escaped = self.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params += [f"%{escaped}%"] * 2
        return src, where, params


class JobPages(StorageBase):
    """Pages of job records, newest first or in another of `ORDERS`."""

    @reported
    def page(
        self,
        statuses: Iterable[str] | None = None,
        name: str | None = None,
        tag: str | None = None,
        limit: int = 100,
        offset: int = 0,
        search: str | None = None,
        group: str | None = None,
        order: str = "newest",
    ) -> list[JobRecord]:
        """One page through the indexes, never a scan of every record (`search`, a
        substring of the name or key, is the one filter that may scan)."""
        chosen = None if statuses is None else tuple(statuses)
        filters = Filters(name, tag, search, group)
        sql = self._sql
        if order == "active":
            rows = _active(sql, chosen, filters, limit, offset, self._band_sizes(sql, filters))
        else:
            rows = _ordered(sql, chosen, filters, order, limit, offset)
        return [decode(*r[:5]) for r in rows]

    @staticmethod
    def _band_sizes(sql: Sql, filters: Filters) -> dict[str, int] | None:
        """Jobs per status under these filters, when counts are kept for them (the whole
        store, or one group): one indexed read. None: unknown without reading the jobs."""
        if filters.name is not None or filters.tag is not None or filters.search:
            return None
        if filters.group is None:
            rows = sql("SELECT status, n FROM nbjobs_counts").fetchall()
        else:
            rows = sql(
                "SELECT status, n FROM nbjobs_group_counts WHERE grp = ?", (filters.group,)
            ).fetchall()
        return {status: n for status, n in rows if status in states.STATES}


def _active(
    sql: Sql,
    chosen: tuple[str, ...] | None,
    filters: Filters,
    limit: int,
    offset: int,
    sizes: dict[str, int] | None,
) -> list[tuple[Any, ...]]:
    """The `active` order: band after band, each newest first."""
    out: list[tuple[Any, ...]] = []
    skip = offset
    for band in BANDS:
        wanted = tuple(s for s in band if chosen is None or s in chosen)
        if not wanted or len(out) >= limit:
            continue
        if sizes is not None:
            size = sum(sizes.get(s, 0) for s in wanted)
            if size <= skip:  # the page starts after this band: not read
                skip -= size
                continue
            rows = _ordered(sql, wanted, filters, "newest", limit - len(out), skip)
            skip = 0
        else:
            rows = _ordered(sql, wanted, filters, "newest", skip + limit - len(out), 0)
            taken = min(skip, len(rows))
            rows, skip = rows[taken:], skip - taken
        out += rows
    return out[:limit]


def _ordered(
    sql: Sql,
    chosen: tuple[str, ...] | None,
    filters: Filters,
    order: str,
    limit: int,
    offset: int,
) -> list[tuple[Any, ...]]:
    """`newest`, `oldest` or `name` order."""
    src, where, params = filters.sql()
    direction = "ASC" if order == "oldest" else "DESC"
    single = chosen is not None and len(chosen) == 1
    if order == "name" or single or (chosen is None and filters.group is None):
        # One range of an index (one status's) or of the primary key, stopped by LIMIT.
        if chosen is not None:
            where.append(f"j.status IN ({','.join('?' * len(chosen))})")
            params += chosen
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        by = "j.name, j.seq" if order == "name" else f"j.seq {direction}"
        return list(
            sql(
                f"{_SELECT} FROM {src} {clause} ORDER BY {by} LIMIT ? OFFSET ?",
                (*params, limit, offset),
            ).fetchall()
        )
    # One index range per status, each cut at offset + limit, merged by seq.
    parts = []
    args: list[Any] = []
    for status in chosen or states.STATES:
        clause = " AND ".join([*where, "j.status = ?"])
        parts.append(
            f"SELECT * FROM ({_SELECT} FROM {src} WHERE {clause} "
            f"ORDER BY j.seq {direction} LIMIT ?)"
        )
        args += [*params, status, offset + limit]
    query = " UNION ALL ".join(parts)
    return list(
        sql(
            f"SELECT * FROM ({query}) ORDER BY seq {direction} LIMIT ? OFFSET ?",
            (*args, limit, offset),
        ).fetchall()
    )


def decode(job_id: str, key: str | None, status: str, name: str, data: bytes | str) -> JobRecord:
    """A job's record from its row; one that cannot be read is listed as `CORRUPT`."""
    try:
        return JobRecord.decode(data)
    except PayloadLoadError as exc:
        return JobRecord(
            id=job_id,
            key=key,
            name=name,
            status=status,
            resumable=False,
            error=ErrorInfo(CORRUPT, str(exc)),
        )
