"""The nbjobs_blobs table: payloads, results, logs, attempts, functions and large arguments."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nbjobs import codec
from nbjobs.errors import PayloadLoadError
from nbjobs.store import blobs
from nbjobs.store.base import StorageBase, chunks, placeholders, reported
from nbjobs.store.writer import Sql

Staged = tuple[str, codec.Frames, Path | None]
"""A large argument on its way to the store: (digest, frames, temporary file or None)."""
BlobRef = tuple[bytes | None, str | None]
"""A blob as stored: (inline bytes, file name under blobs/)."""


class BlobTable(StorageBase):
    """Blobs by key: small ones inline in their row, large ones in a file under blobs/."""

    @property
    def values(self) -> Callable[[str], Any]:
        """What loads a job's large argument by its digest (`codec.load_args`)."""
        return blobs.values_in(self.blob_dir)

    @reported
    def blob(self, key: str) -> bytes | None:
        row = self._sql("SELECT data, file FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._blob_bytes(*row)

    @reported
    def blobs(self, keys: list[str]) -> dict[str, bytes]:
        """The blobs at `keys` that exist (fewer than 900 keys), read in one query."""
        rows = self._sql(
            f"SELECT key, data, file FROM nbjobs_blobs WHERE key IN ({','.join('?' * len(keys))})",
            keys,
        ).fetchall()
        found = ((key, self._blob_bytes(data, file)) for key, data, file in rows)
        return {key: data for key, data in found if data is not None}

    @staticmethod
    def blob_refs(sql: Sql, keys: list[str]) -> dict[str, BlobRef]:
        """The blobs at `keys` that exist (fewer than 900 keys), as stored: read with `sql`
        in a transaction, their files read later, outside it (`blob_bytes`)."""
        rows = sql(
            f"SELECT key, data, file FROM nbjobs_blobs WHERE key IN ({placeholders(keys)})", keys
        ).fetchall()
        return {key: (None if data is None else bytes(data), file) for key, data, file in rows}

    def blob_bytes(self, ref: BlobRef) -> bytes | None:
        """A blob's bytes from what `blob_refs` read: its inline data, or its file's."""
        return self._blob_bytes(*ref)

    def _blob_bytes(self, data: bytes | None, file: str | None) -> bytes | None:
        if file is not None:
            return (self.blob_dir / str(file)).read_bytes()
        return None if data is None else bytes(data)

    @reported
    def blob_inline(self, key: str) -> bool | None:
        """True if the blob is stored inline (small), False if in a file, None if absent."""
        row = self._sql("SELECT file IS NULL FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else bool(row[0])

    @reported
    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        """The job's attempt history, oldest first (a range scan of its `a:` blobs)."""
        rows = self._sql(
            "SELECT data FROM nbjobs_blobs WHERE key >= ? AND key < ? ORDER BY key",
            (f"a:{job_id}:", f"a:{job_id};"),
        ).fetchall()
        return [pickle.loads(data) for (data,) in rows]

    @reported
    def load_value(self, key: str) -> Any:
        """Load a value written by `blobs.write_value`, reading a large one from its file."""
        row = self._sql("SELECT data, file FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise PayloadLoadError(f"no stored value under {key!r} in {self.path}")
        data, file = row
        if file is None:
            return codec.loads(data)
        return blobs.load(self.blob_dir / file, key)

    def put_blob(self, sql: Sql, key: str, data: bytes | None, file: str | None = None) -> None:
        """Store a blob under a key that holds none (drop_blobs first to replace a file)."""
        sql(
            "INSERT OR REPLACE INTO nbjobs_blobs (key, data, file) VALUES (?, ?, ?)",
            (key, data, file),
        )

    def put_blob_once(self, sql: Sql, key: str, data: bytes) -> None:
        """Store a content-addressed blob (a function) unless it is there already.

        Every transaction that stores a job does this for the job's function, even when this
        process wrote it before: the last job that used it may have been purged since, by any
        process, and the function with it (`drop_unused`). Within one transaction only the
        first call for a key looks (`Dropped.stored`).

        A large one (a function that carries a big array) goes to a file named after its
        key: inline, SQLite would hold it twice (database and WAL) and copy it per call.
        """
        stored = self._dropped.stored
        if stored is not None:
            if key in stored:
                return
            stored.add(key)
        if len(data) <= blobs.INLINE_LIMIT:
            sql("INSERT OR IGNORE INTO nbjobs_blobs (key, data) VALUES (?, ?)", (key, data))
            return
        if sql("SELECT 1 FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone() is None:
            # Same content, same name: a batch replayed after a rollback rewrites one file.
            name = blobs.once_name(key)
            blobs.write_file(self.blob_dir, name, (data,), blobs.describe(key, len(data)))
            self.put_blob(sql, key, None, name)

    def drop_blobs(self, sql: Sql, keys: Iterable[str]) -> None:
        """Delete these blobs; their files are listed in `nbjobs_dropped` in the same
        transaction and removed after its COMMIT (`_then_remove_dropped`). Two statements
        per 900 keys (a purge batch), a third when some had files."""
        stored = self._dropped.stored
        for chunk in chunks(list(keys)):
            if stored is not None:
                stored.difference_update(chunk)
            marks = placeholders(chunk)
            rows = sql(
                f"SELECT file FROM nbjobs_blobs WHERE key IN ({marks}) AND file IS NOT NULL", chunk
            ).fetchall()
            sql(f"DELETE FROM nbjobs_blobs WHERE key IN ({marks})", chunk)
            if rows:
                files = [file for (file,) in rows]
                sql(
                    "INSERT OR IGNORE INTO nbjobs_dropped (file) VALUES "
                    + ",".join(["(?)"] * len(files)),
                    files,
                )
                dropped = self._dropped.files
                if dropped is not None:
                    dropped += files

    def copy_blob(self, sql: Sql, source: str, target: str) -> None:
        """Store an inline blob again under another key (a schedule's call for its firing)."""
        sql(
            "INSERT OR REPLACE INTO nbjobs_blobs (key, data) "
            "SELECT ?, data FROM nbjobs_blobs WHERE key = ?",
            (target, source),
        )

    def stage_values(self, values: list[codec.Value]) -> list[Staged]:
        """Write the files of the large arguments of a call that are not stored yet, ahead of
        the transaction that stores its job (`put_values`): written inside it, a file of
        hundreds of MB would hold up every writer of the store. Each is (digest, frames,
        its temporary file or None); `unstage` removes the files no transaction took."""
        staged: list[Staged] = []
        try:
            for digest, frames in values:
                key = f"v:{digest}"
                tmp = None
                if self.blob_inline(key) is None:
                    what = blobs.describe(key, frames.size)
                    tmp = blobs.write_temporary(self.blob_dir, frames.chunks(), what)
                staged.append((digest, frames, tmp))
        except BaseException:
            self.unstage(staged)
            raise
        return staged

    def put_values(self, sql: Sql, job_id: str, staged: list[Staged]) -> None:
        """Store a job's large arguments (once each per store, under v:<digest>) and that
        the job uses them (`nbjobs_values`, read by `drop_unused`)."""
        for digest, frames, tmp in staged:
            key = f"v:{digest}"
            if sql("SELECT 1 FROM nbjobs_blobs WHERE key = ?", (key,)).fetchone() is None:
                name = blobs.once_name(key)
                if tmp is not None:
                    os.replace(tmp, self.blob_dir / name)
                else:  # a purge removed it since `stage_values` found it: written again
                    what = blobs.describe(key, frames.size)
                    blobs.write_file(self.blob_dir, name, frames.chunks(), what)
                self.put_blob(sql, key, None, name)
            sql("INSERT OR IGNORE INTO nbjobs_values (value, job) VALUES (?, ?)", (digest, job_id))

    @staticmethod
    def unstage(staged: list[Staged]) -> None:
        """Remove the temporary files of `stage_values` that no transaction took."""
        for _, _, tmp in staged:
            if tmp is not None:
                blobs.remove(tmp)


def blob_keys(job_id: str) -> tuple[str, str, str, str]:
    """The per-job blobs: payload, result, error, log."""
    return f"p:{job_id}", f"r:{job_id}", f"e:{job_id}", f"l:{job_id}"
