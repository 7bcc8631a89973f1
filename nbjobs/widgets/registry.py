"""Live views by notebook cell, so that re-running a cell stops the views it showed before.

No ipywidgets here: a view is anything with `close()`.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any, Protocol

from nbjobs.widgets.polling import quietly


class _Live(Protocol):
    def close(self) -> None: ...


class Registry:
    """Live views by notebook cell: displaying in a cell that was re-run closes the old views.

    The kernel is never told that an output was cleared or its cell re-run, so the cell id
    (sent by JupyterLab and Notebook 7 in the request's metadata) and the request's message
    id tell a re-run (same cell, new request) from a second view in the same run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, tuple[str | None, list[weakref.ref[_Live]]]] = {}
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, view: _Live, cell_id: str | None, msg_id: str | None) -> None:
        stale: list[_Live] = []
        with self._lock:
            self._all.add(view)
            if cell_id is None:
                return
            old_msg, refs = self._cells.get(cell_id, (msg_id, []))
            if old_msg != msg_id:
                stale = [v for v in (r() for r in refs) if v is not None and v is not view]
                refs = []
            refs.append(weakref.ref(view))
            self._cells[cell_id] = (msg_id, refs)
        for old in stale:
            quietly(old.close)

    def views(self, cell_id: str) -> list[_Live]:
        with self._lock:
            _msg, refs = self._cells.get(cell_id, (None, []))
            return [v for v in (r() for r in refs) if v is not None]

    def close_all(self) -> None:
        with self._lock:
            views = list(self._all)
        for view in views:
            quietly(view.close)


REGISTRY = Registry()
atexit.register(REGISTRY.close_all)
