"""The job and schedule records (small dataclasses) and the one function that changes state.

A record is stored as a pickled tuple of plain values (str, int, float, bool, None, tuple,
list, dict), fields in declaration order after a format number: about 3x faster to write
and read than JSON, and a state change is on the path of every job. It is loaded with an
unpickler that refuses every class and function, so listing a store never runs its code.
Fields are only ever appended (a shorter tuple gets the defaults, a longer one written
by a newer nbjobs is cut). Records written as JSON by nbjobs 0.1 still load.
"""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from dataclasses import dataclass, field
from typing import Any

from nbjobs import states
from nbjobs.errors import PayloadLoadError

#: `ErrorInfo.type` of a record that could not be read (listed, never crashing a listing).
CORRUPT = "CorruptRecord"


@dataclass(slots=True)
class ErrorInfo:
    """How a job failed, as data: enough to show it without loading any pickle."""

    type: str
    message: str

    def to_dict(self) -> dict[str, str]:
        return {"type": self.type, "message": self.message}


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a running job says it is, as reported by `nbjobs.progress()` / `track()`.

    `rate` is in units per second since the first report; `eta` in seconds (None when
    there is no total or no rate yet).
    """

    current: float
    total: float | None = None
    message: str | None = None
    rate: float | None = None
    updated_at: float = 0.0
    unit: str | None = None  # what is counted (`track(..., unit="file")`); None: "it"

    @property
    def fraction(self) -> float | None:
        if not self.total:
            return None
        return max(0.0, min(1.0, self.current / self.total))

    @property
    def eta(self) -> float | None:
        if self.total is None or not self.rate:
            return None
        return max(0.0, (self.total - self.current) / self.rate)

    def to_dict(self) -> dict[str, Any]:
        return {
            "current": self.current,
            "total": self.total,
            "message": self.message,
            "rate": self.rate,
            "updated_at": self.updated_at,
            "unit": self.unit,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        return cls(
            data["current"], data.get("total"), data.get("message"), data.get("rate"),
            data.get("updated_at", 0.0), data.get("unit"),
        )  # fmt: skip


@dataclass(slots=True)
class JobRecord:
    """Everything listed about a job. Payloads, results and tracebacks live under their own keys."""

    id: str
    name: str
    status: str = states.PENDING
    key: str | None = None
    tags: tuple[str, ...] = ()
    executor: str = "thread"
    created_at: float = 0.0
    updated_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    runs: int = 1
    resumable: bool = True
    not_resumable_reason: str | None = None
    error: ErrorInfo | None = None
    owner: str | None = None
    fn_digest: str | None = None
    args_digest: str | None = None
    has_result: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    progress: dict[str, Any] | None = None
    run_attempts: int = 0  # attempts in the current run (a retry() starts a new run)
    run_started_at: float | None = None  # start of the current run's first attempt
    idle_for: float = 0.0  # seconds this run has waited between attempts
    retry_at: float | None = None  # wall-clock time of the next attempt while retrying
    timeout: float | None = None
    soft_timeout: float | None = None
    lease_until: float | None = None  # a detached worker holds the job until then
    crashes: int = 0  # times the worker running it died (requeued at most 3 times)
    deps: tuple[str, ...] = ()  # ids of the jobs whose results are among the arguments
    address: str | None = None  # where the executor runs it, if not here (a Dask scheduler)
    # A short summary of the arguments (`0.1, window=20`), written at submit so that a row
    # tells the jobs of a sweep apart without loading their payloads; None in old stores.
    summary: str | None = None
    group: str | None = None  # the id of its map or `nbjobs.group` (nbjobs_groups), if any

    def to_json(self) -> str:
        data = _as_dict(self)
        if self.error is not None:
            data["error"] = self.error.to_dict()
        return "".join(_ENCODE(data, 0))

    def evolve(self, **changes: Any) -> JobRecord:
        """A copy with `changes` (like `dataclasses.replace`, without its per-call checks:
        every state change makes one, so it is on the path of every job)."""
        new: JobRecord = _copy(self)
        for name, value in changes.items():
            setattr(new, name, value)
        return new

    def encode(self) -> bytes:
        """The stored form (see the module docstring)."""
        return pickle.dumps(_as_tuple(self), 5)

    @classmethod
    def decode(cls, data: bytes | str) -> JobRecord:
        """A record from its stored form; raises `PayloadLoadError` when it is corrupt."""
        if isinstance(data, str) or data[:1] == b"{":
            return cls.from_json(data)
        try:
            values = _PlainUnpickler(io.BytesIO(data)).load()
            if type(values) is not tuple or values[0] != _FORMAT:
                raise ValueError(f"not a job record (format {values[0]!r})")
            rec = cls(*values[1 : len(_ORDER) + 1])
            error: Any = rec.error  # stored as (type, message)
            if error is not None:
                rec.error = ErrorInfo(*error)
            return rec
        except Exception as exc:
            raise PayloadLoadError(f"corrupt job record: {exc!r}") from exc

    @classmethod
    def from_json(cls, text: str | bytes) -> JobRecord:
        try:
            data = json.loads(text)
            data["tags"] = tuple(data["tags"])
            data["deps"] = tuple(data.get("deps", ()))
            err = data["error"]
            if err is not None:
                data["error"] = ErrorInfo(**err)
            if data.keys() - _NAMES:  # written by a newer nbjobs: keep what we know
                data = {k: v for k, v in data.items() if k in _NAMES}
            return cls(**data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise PayloadLoadError(f"corrupt job record: {exc!r}") from exc

    def progress_info(self) -> Progress | None:
        return Progress.from_dict(self.progress) if self.progress else None

    def attempt_history(self, ended: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every attempt so far, oldest first: the `ended` ones the store keeps (the failed
        ones, `Storage.attempts`), and a succeeded job's last, which this record tells.

        >>> rec.attempt_history(storage.attempts(rec.id))[-1]["ok"]   # doctest: +SKIP
        True
        """
        if self.status != states.SUCCEEDED:
            return ended
        last = {
            "number": self.attempts,
            "run": self.runs,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "ok": True,
            "cancelled": False,
            "error": None,
        }
        return [*ended, last]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for users (no payload, no result)."""
        out: dict[str, Any] = json.loads(self.to_json())
        out.pop("fn_digest", None)
        out.pop("args_digest", None)
        return out


_FIELDS = dataclasses.fields(JobRecord)
_ORDER = tuple(f.name for f in _FIELDS)
_NAMES = frozenset(_ORDER)


def _compile(name: str, body: str) -> Any:
    """A function generated from the field list, as dataclasses does for `__init__`: one
    call instead of a loop over 29 fields, on the path of every state change."""
    namespace: dict[str, Any] = {"JobRecord": JobRecord}
    exec(f"def {name}(r):\n    return {body}\n", namespace)  # the field names, nothing else
    return namespace[name]


_FORMAT = 1
_copy = _compile("_copy", "JobRecord(" + ", ".join(f"r.{n}" for n in _ORDER) + ")")
_as_tuple = _compile(
    "_as_tuple",
    f"({_FORMAT}, "
    + ", ".join(
        "(r.error.type, r.error.message) if r.error is not None else None"
        if n == "error"
        else f"r.{n}"
        for n in _ORDER
    )
    + ")",
)
_as_dict = _compile("_as_dict", "{" + ", ".join(f"{n!r}: r.{n}" for n in _ORDER) + "}")
# The C encoder `json.dumps` builds on every call, built once (no indent, compact, no
# circular check: records are plain data).
_ENCODE = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True
)


def transition(
    rec: JobRecord, new: str, now: float, *, fresh: bool = True, **changes: Any
) -> JobRecord:
    """Return `rec` moved to state `new` at time `now`, after checking the transition table.

    Timestamps and counters follow the state: entering `running` starts an attempt,
    a finished state stamps `finished_at`, and going back to `pending` starts a new run
    (the previous run's outcome is kept in `history`) unless `fresh=False` (resuming an
    interrupted job keeps its remaining attempts and `retry_at`).

    >>> r = JobRecord(id="a1", name="fit")
    >>> transition(r, "running", 10.0).attempts
    1
    """
    states.check_transition(rec.status, new)
    r: JobRecord = _copy(rec)  # (attributes set one by one: no dict, on every job's path)
    r.status = new
    r.updated_at = now
    if new == states.RUNNING:
        r.started_at = now
        r.attempts = rec.attempts + 1
        r.run_attempts = rec.run_attempts + 1
        r.retry_at = None
        if rec.run_attempts == 0:
            r.run_started_at = now
    elif new in states.FINISHED:
        r.finished_at = now
        if new == states.SUCCEEDED:
            r.error = None  # a success after retries: their errors are in the attempt history
    elif new == states.PENDING and rec.status in states.FINISHED:
        changes = (
            _new_run(rec) if fresh else {"finished_at": None, "owner": None, "lease_until": None}
        ) | changes
    for name, value in changes.items():
        setattr(r, name, value)
    return r


def _new_run(rec: JobRecord) -> dict[str, Any]:
    past = {
        "run": rec.runs,
        "status": rec.status,
        "attempts": rec.attempts,
        "started_at": rec.started_at,
        "finished_at": rec.finished_at,
        "error": rec.error.to_dict() if rec.error else None,
    }
    return {
        "runs": rec.runs + 1,
        "started_at": None,
        "finished_at": None,
        "error": None,
        "has_result": False,
        "owner": None,
        "run_attempts": 0,
        "run_started_at": None,
        "idle_for": 0.0,
        "retry_at": None,
        "progress": None,
        "lease_until": None,
        "crashes": 0,
        "history": [*rec.history, past],
    }


class _PlainUnpickler(pickle.Unpickler):
    """Loads plain data only: a record never names a class or a function."""

    def find_class(self, module: str, name: str, /) -> Any:
        raise pickle.UnpicklingError(f"a job record may not refer to {module}.{name}")


@dataclass(frozen=True, slots=True)
class Group:
    """The jobs of one `map` (or `Task.map`, or `nbjobs.group`) as one thing: how many, in
    which states, how fast they finish. Read from counts kept beside the job records
    (`Store.groups()`), never by reading the jobs.

    >>> g = Group("g1", "fit", 0.0, 4, {"succeeded": 2, "running": 1, "pending": 1}, 8.0, 8.0)
    >>> g.done, g.fraction, g.rate, g.eta
    (2, 0.5, 0.25, 8.0)
    """

    id: str
    name: str  # the map's key prefix, else its function's name
    created_at: float
    size: int  # its jobs in the store
    counts: dict[str, int]  # its jobs per status (every status with at least one)
    finished_at: float | None  # when the last of its jobs to finish did
    read_at: float  # when these counts were read (the "now" of `rate` and `eta`)

    @property
    def done(self) -> int:
        """Jobs in a finished state (succeeded, failed, cancelled, interrupted)."""
        return sum(n for s, n in self.counts.items() if s in states.FINISHED)

    @property
    def active(self) -> bool:
        """Whether some of its jobs are still pending, running or retrying."""
        return self.done < self.size

    @property
    def fraction(self) -> float:
        """Finished jobs over all its jobs (1.0 for an empty group)."""
        return self.done / self.size if self.size else 1.0

    @property
    def elapsed(self) -> float:
        """Seconds from its creation to now (to its last finish once it is done)."""
        end = self.read_at if self.active or self.finished_at is None else self.finished_at
        return max(0.0, end - self.created_at)

    @property
    def rate(self) -> float | None:
        """Jobs finished per second so far (None before the first finishes)."""
        took = self.elapsed
        return self.done / took if self.done and took > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds until the rest finish at the current rate (None: done, or no rate yet)."""
        rate = self.rate
        return (self.size - self.done) / rate if self.active and rate else None


@dataclass(slots=True)
class ScheduleRecord:
    """A schedule as stored: plain values only (its function and arguments are blobs).

    Stored like a job record (a pickled tuple of plain values after a format number, read
    with the unpickler that refuses classes and functions), so listing schedules never
    runs code from the store.
    """

    name: str
    fn_name: str
    every: float | None = None
    cron: str | None = None
    tz: str = "UTC"
    tz_source: str = "given"
    anchor: float = 0.0  # interval slots are anchor + k * every
    missed: str = "once"
    next_at: float = 0.0
    paused: bool = False
    tags: tuple[str, ...] = ()
    timeout: float | None = None
    soft_timeout: float | None = None
    fn_digest: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    last_slot: float | None = None  # the latest slot fired, and its job
    last_job_id: str | None = None
    fired: int = 0

    def evolve(self, **changes: Any) -> ScheduleRecord:
        return dataclasses.replace(self, **changes)

    def encode(self) -> bytes:
        return pickle.dumps((_FORMAT, *(getattr(self, n) for n in _SCHEDULE_ORDER)), 5)

    @classmethod
    def decode(cls, data: bytes) -> ScheduleRecord:
        """A schedule from its stored form; raises `PayloadLoadError` when it is corrupt."""
        try:
            values = _PlainUnpickler(io.BytesIO(data)).load()
            if type(values) is not tuple or values[0] != _FORMAT:
                raise ValueError(f"not a schedule record (format {values[0]!r})")
            return cls(*values[1 : len(_SCHEDULE_ORDER) + 1])
        except Exception as exc:
            raise PayloadLoadError(f"corrupt schedule record: {exc!r}") from exc


_SCHEDULE_ORDER = tuple(f.name for f in dataclasses.fields(ScheduleRecord))
