"""What the widgets read of a store and of a job: Protocols that `nbjobs.Store` and `Job` meet.

The widgets never import `nbjobs.api` (whose `Job` imports them to display itself), so they
name here only what they use; mypy checks that the real classes fit where they are passed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from nbjobs.records import Group, JobRecord
from nbjobs.store.storage import Storage
from nbjobs.worker.control import WorkerInfo


class StoredData(Protocol):
    """A store as the previews read it: its storage, after this process's queued writes."""

    storage: Storage

    def flush(self) -> None: ...


class JobSource(Protocol):
    """A job as the job widget and the details pane read it (an `nbjobs.Job`)."""

    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def store(self) -> StoredData: ...

    def record(self) -> JobRecord: ...

    def traceback(self) -> str | None: ...

    def logs(self, follow: bool = False) -> Any: ...

    def attempt_history(self) -> list[dict[str, Any]]: ...

    def cancel(self) -> bool: ...


class StoreSource(StoredData, Protocol):
    """A store as the panel reads and acts on it (an `nbjobs.Store`)."""

    @property
    def path(self) -> Path: ...

    def get(self, id_or_key: str) -> JobSource: ...

    def stats(self) -> dict[str, int]: ...

    def records(
        self,
        status: str | list[str] | tuple[str, ...] | None = None,
        name: str | None = None,
        tag: str | None = None,
        search: str | None = None,
        limit: int = 100,
        offset: int = 0,
        group: str | None = None,
        order: str = "newest",
    ) -> list[JobRecord]: ...

    def groups(self, limit: int = 100, *, ids: Iterable[str] | None = None) -> list[Group]: ...

    def workers(self) -> list[WorkerInfo]: ...

    def resume(self) -> Sequence[JobSource]: ...

    def retry(self, id_or_key: str) -> JobSource: ...

    def forget(self, key: str) -> bool: ...

    def pause_schedule(self, name: str) -> object: ...

    def resume_schedule(self, name: str) -> object: ...
