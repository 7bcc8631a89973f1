"""The nbjobs_cancels table: jobs cancelled by another process, waiting for their owner."""

from __future__ import annotations

from nbjobs.store.base import StorageBase, reported
from nbjobs.store.writer import Sql


class CancelTable(StorageBase):
    """Cancels asked by one process of jobs that another one (their owner) runs."""

    @reported
    def cancel_requests(self, owner: str) -> list[str]:
        """Ids of `owner`'s jobs that other processes cancelled (see `request_cancel`)."""
        rows = self._sql("SELECT id FROM nbjobs_cancels WHERE owner = ?", (owner,)).fetchall()
        return [job_id for (job_id,) in rows]

    @reported
    def cancel_owners(self) -> list[str]:
        """The processes that have cancel requests waiting for them."""
        rows = self._sql("SELECT DISTINCT owner FROM nbjobs_cancels").fetchall()
        return [owner for (owner,) in rows]

    def drop_cancel_owner(self, sql: Sql, owner: str) -> None:
        sql("DELETE FROM nbjobs_cancels WHERE owner = ?", (owner,))

    def request_cancel(self, sql: Sql, owner: str, job_id: str) -> None:
        sql("INSERT OR IGNORE INTO nbjobs_cancels (owner, id) VALUES (?, ?)", (owner, job_id))

    def drop_cancel_requests(self, sql: Sql, owner: str, ids: list[str]) -> None:
        sql(
            f"DELETE FROM nbjobs_cancels WHERE owner = ? AND id IN ({','.join('?' * len(ids))})",
            (owner, *ids),
        )
