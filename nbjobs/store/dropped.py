"""The files of deleted blobs: removed once their transaction commits, or swept later."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sqlite3
from collections.abc import Iterator

from nbjobs.clock import SYSTEM
from nbjobs.store import blobs
from nbjobs.store.base import PARAMS_PER_STATEMENT, StorageBase, chunks, placeholders, reported
from nbjobs.store.connections import raise_if_damaged
from nbjobs.store.writer import Sql

# A file under blobs/ that no blob names is removed by purge() once this old: a younger one
# may hold a value written by another process that has not committed it yet.
_ORPHAN_AGE_S = 86_400.0

log = logging.getLogger("nbjobs")


class DroppedFiles(StorageBase):
    """Removes the files of deleted blobs after their COMMIT, and those dead processes left."""

    @contextlib.contextmanager
    def _then_remove_dropped(self) -> Iterator[None]:
        """Around each write transaction of this process: the files of the blobs it drops
        (`drop_blobs`) are removed once it has committed, never before. Removed inside it, a
        crash or a rollback before the COMMIT left jobs `succeeded` whose result file was
        gone (300 jobs in 4 of 24 purges killed 15 ms in). Names still listed in
        `nbjobs_dropped` (the process died after the COMMIT) are removed by the next
        `remove_dropped`. A damaged page met raises `StoreCorrupt`."""
        local = self._dropped
        if local.files is not None:  # inside this thread's transaction: its end removes them
            yield
            return
        local.files = []
        local.stored = set()
        try:
            yield
            files = local.files
        except sqlite3.DatabaseError as exc:
            raise_if_damaged(self.path, exc)
            raise
        finally:
            local.files = None
            local.stored = None
        if files:
            self._remove_files(files)

    def _remove_files(self, files: list[str]) -> bool:
        """Remove dropped files and then their names in `nbjobs_dropped`; False if that
        failed (the names stay for the next try). Never raises: its transaction committed.

        In a write transaction, and only the files no blob names: a function or a large
        argument dropped by a purge may have been stored again since (same content, same
        file name) by a submit that committed in between."""
        try:
            sql = self.db.sql()
            with self.cache.transact(retry=True):
                for chunk in chunks(files):
                    self._remove_unnamed(sql, chunk)
                    sql(f"DELETE FROM nbjobs_dropped WHERE file IN ({placeholders(chunk)})", chunk)
        except Exception as exc:
            log.warning(
                "nbjobs: the files of deleted blobs stay in %s for now: %s", self.blob_dir, exc
            )
            return False
        return True

    @reported
    def remove_dropped(self) -> None:
        """Remove the files of blobs deleted by a process that died between its COMMIT and
        their removal. At open: one read of a table that is empty unless that happened."""
        while True:
            rows = self._sql(f"SELECT file FROM nbjobs_dropped LIMIT {PARAMS_PER_STATEMENT}")
            files = [file for (file,) in rows.fetchall()]
            if not files or not self._remove_files(files):
                return

    def remove_orphans(self) -> int:
        """Remove what dead processes left under `blobs/`: the files of dropped blobs, and
        files no blob names that are a day old (a value written, then its process died before
        the commit naming it). Returns how many of the latter were removed."""
        self.remove_dropped()
        cutoff = SYSTEM.now() - _ORPHAN_AGE_S  # file times are the real clock's
        old = []
        with os.scandir(self.blob_dir) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        old.append(entry.name)
        removed = 0
        for chunk in chunks(old):
            removed += self.writer.call(functools.partial(self._remove_unnamed, names=chunk))
        return removed

    def _remove_unnamed(self, sql: Sql, names: list[str]) -> int:
        """Remove those of these files that no blob names. Inside a write transaction: no
        other process can commit a blob naming one of them meanwhile, and this one writes
        nothing, so the removal need not wait for its COMMIT."""
        named = sql(
            f"SELECT file FROM nbjobs_blobs WHERE file IN ({placeholders(names)})", names
        ).fetchall()
        unnamed = set(names).difference(file for (file,) in named)
        for name in unnamed:
            blobs.remove(self.blob_dir / name)
        return len(unnamed)
