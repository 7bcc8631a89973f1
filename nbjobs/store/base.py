"""The common ground of `Storage`'s parts: the store's handles, read errors, and SQL helpers."""

from __future__ import annotations

import functools
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

import diskcache

from nbjobs.clock import Clock
from nbjobs.store.connections import Connections, raise_if_damaged
from nbjobs.store.writer import Sql, Writer

T = TypeVar("T")
P = ParamSpec("P")
S = TypeVar("S", bound="StorageBase")
PARAMS_PER_STATEMENT = 900  # SQLite builds before 3.32 allow 999 parameters per statement


class StorageBase:
    """What each table's part of `Storage` (nbjobs/store/storage.py) reads and writes through.
    Set by `Storage.__init__`."""

    path: Path  # the store folder
    clock: Clock
    blob_dir: Path  # its blobs/ folder (nbjobs/store/blobs.py)
    cache: diskcache.Cache
    db: Connections
    writer: Writer
    fn_written: set[str]  # keys of functions this process stored (see `put_blob_once`)
    _dropped: Dropped

    @property
    def _sql(self) -> Sql:
        """This thread's connection, for reads (WAL readers never wait for the writer)."""
        sql: Sql = self.cache._sql
        return sql


def reported(method: Callable[Concatenate[S, P], T]) -> Callable[Concatenate[S, P], T]:
    """A read of the store that raises `StoreCorrupt` where SQLite finds a damaged page (and
    works where it finds none): never a raw `sqlite3.DatabaseError`."""

    @functools.wraps(method)
    def read(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise_if_damaged(self.path, exc)
            raise

    return read


class Dropped(threading.local):
    """What the open write transaction of a thread dropped and stored (see `DroppedFiles`)."""

    files: list[str] | None = None  # dropped by this thread's transaction, while one is open
    stored: set[str] | None = None  # content-addressed blobs it found or wrote (then)


def chunks(items: list[str]) -> Iterator[list[str]]:
    """`items` in runs short enough to be the parameters of one statement."""
    for start in range(0, len(items), PARAMS_PER_STATEMENT):
        yield items[start : start + PARAMS_PER_STATEMENT]


def placeholders(items: list[str]) -> str:
    """The `?,?,...` of an `IN (...)` that takes these items."""
    return ",".join("?" * len(items))
