"""Schedules in a store: define (or replace) by name, list, pause, resume, remove, fire.

When a schedule fires is `scheduling`'s business (intervals, cron, time zones); this module
keeps schedules in the `nbjobs_schedules` table and turns a due slot into an ordinary
`executor="worker"` job. Detached workers call `fire_due` from their loop (see
docs/design.md, "Schedules").
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from typing import Any

from nbjobs import codec, validate
from nbjobs.calls import arguments, refs
from nbjobs.calls.call import fn_name, merge_kwargs, new_id, pickle_call
from nbjobs.calls.options import SCHEDULE_NAMES, resolve, unknown
from nbjobs.errors import (
    InvalidArgument,
    InvalidArgumentType,
    PayloadLoadError,
    ScheduleNotFound,
)
from nbjobs.records import CORRUPT, JobRecord, ScheduleRecord
from nbjobs.scheduling import timing
from nbjobs.store.storage import Storage
from nbjobs.store.writer import Sql

log = logging.getLogger("nbjobs")

_FIRE_BATCH = 16  # schedules fired per transaction


def tag(name: str) -> str:
    """The tag every firing of schedule `name` carries: `jobs(tag=tag(name))` lists them."""
    return f"schedule:{name}"


def slot_key(name: str, slot: float) -> str:
    """The idempotency key of the firing of `name` at `slot`: one job per slot, whoever fires.

    >>> slot_key("nightly", 7200.0)
    'schedule:nightly:1970-01-01T02:00:00Z'
    """
    return f"schedule:{name}:{timing.slot_text(slot)}"


def spec_of(rec: ScheduleRecord) -> timing.Spec:
    return timing.Spec(rec.every, rec.cron, rec.tz, rec.anchor)


# --------------------------------------------------------------------------- define
def create(
    storage: Storage,
    fn: Callable[..., Any],
    *,
    every: Any,
    cron: Any,
    args: Any,
    kwargs: Any,
    tz: Any,
    missed: Any,
    options: Mapping[str, Any],
) -> ScheduleRecord:
    """`Store.schedule`: check everything, then write the schedule in one transaction.

    `options`: the job options of every firing (`nbjobs.calls.options.SCHEDULE_NAMES`).
    """
    unknown(options, SCHEDULE_NAMES, "schedule()")
    if not callable(fn):
        raise InvalidArgumentType(f"fn must be callable, not {type(fn).__name__}")
    if not isinstance(args, tuple | list):
        raise InvalidArgumentType(
            f"args must be a tuple of the function's positional arguments, "
            f"not {type(args).__name__}"
        )
    call_args, call_kwargs = tuple(args), merge_kwargs({}, kwargs)
    now = storage.clock.now()
    spec, tz_source = timing.define(every, cron, tz, now)
    policy = timing.missed_policy(missed)
    opts = resolve({**options, "executor": "worker"}, None, fn_name(fn))
    if refs.call_dependencies(fn, call_args, call_kwargs):
        raise InvalidArgument(
            "a schedule's arguments cannot be jobs (each firing is a new job, run on its own); "
            "pass plain values"
        )
    pickled = pickle_call(fn, call_args, call_kwargs, required=True)
    assert not isinstance(pickled, str), "required=True raises PayloadNotPicklable instead"
    arguments.check(fn, len(call_args), call_kwargs)
    digest, fn_bytes, args_bytes = pickled
    rec = ScheduleRecord(
        name=opts.name or fn_name(fn), fn_name=fn_name(fn), every=spec.every, cron=spec.cron,
        tz=spec.tz, tz_source=tz_source, anchor=spec.anchor, missed=policy,
        next_at=timing.next_slot(spec, spec.anchor), tags=opts.tags, timeout=opts.timeout,
        soft_timeout=opts.soft_timeout, fn_digest=digest, created_at=now, updated_at=now,
    )  # fmt: skip
    payload = codec.payload_blob(digest, args_bytes, opts.policy)
    stored: ScheduleRecord = _replace(storage, rec, payload, fn_bytes)
    return stored


def _replace(storage: Storage, rec: ScheduleRecord, payload: bytes, fn_bytes: bytes) -> Any:
    """Write `rec`, replacing a schedule of the same name in place: it keeps its firing
    history, its paused state, and (if its timing did not change) its next slot."""

    def write(sql: Sql) -> ScheduleRecord:
        old = storage.schedule(rec.name, sql)
        new = rec
        if old is not None and old.fn_name != CORRUPT:
            kept = {
                "created_at": old.created_at, "paused": old.paused, "last_slot": old.last_slot,
                "last_job_id": old.last_job_id, "fired": old.fired,
            }  # fmt: skip
            if (old.every, old.cron, old.tz) == (rec.every, rec.cron, rec.tz):
                kept.update(anchor=old.anchor, next_at=old.next_at)
            new = rec.evolve(**kept)
        storage.put_blob_once(sql, f"f:{rec.fn_digest}", fn_bytes)
        storage.put_blob(sql, f"s:{rec.name}", payload)
        storage.put_schedule(sql, new)
        return new

    stored = storage.writer.call(write)
    storage.fn_written.add(f"f:{rec.fn_digest}")  # committed: later submits refer to it
    return stored


# --------------------------------------------------------------------------- control
def find(storage: Storage, name: Any, sql: Sql | None = None) -> ScheduleRecord:
    """The schedule called `name`; raises `ScheduleNotFound` (a KeyError)."""
    validate.lookup(name, "name", "a schedule name")
    rec = storage.schedule(name, sql)
    if rec is None:
        raise ScheduleNotFound(f"no schedule named {name!r} in the store at {storage.path}")
    return rec


def set_paused(storage: Storage, name: str, paused: bool) -> Any:
    """Pause or resume a schedule. Resuming fires nothing for the slots that passed while it
    was paused: it goes on from the next slot."""
    now = storage.clock.now()

    def write(sql: Sql) -> ScheduleRecord:
        rec = find(storage, name, sql)
        if rec.fn_name == CORRUPT:
            raise InvalidArgument(f"schedule {name!r} is corrupt; remove it with unschedule()")
        if rec.paused == paused:
            return rec
        new = rec.evolve(paused=paused, updated_at=now)
        if not paused:
            new.next_at = timing.next_slot(spec_of(rec), now)
        storage.put_schedule(sql, new)
        return new

    return storage.writer.call(write)


def remove(storage: Storage, name: Any) -> bool:
    """Delete a schedule (its past firings stay, as jobs); False if there is none."""
    validate.lookup(name, "name", "a schedule name")
    removed: bool = storage.writer.call(lambda sql: storage.delete_schedule(sql, name))
    return removed


# --------------------------------------------------------------------------- firing
def fire_due(storage: Storage, now: float) -> int:
    """Fire the slots due at `now` (detached workers call this); returns the jobs queued.

    One transaction: each due schedule's `next_at` is advanced with a compare-and-set and its
    firing inserted under the slot's key, so several workers on one store fire each slot
    exactly once (the key is a second guard: a slot never has two jobs).
    """

    def fire(sql: Sql) -> int:
        queued = 0
        for rec in storage.due_schedules(sql, now, _FIRE_BATCH):
            try:
                if rec.fn_name == CORRUPT:
                    raise PayloadLoadError("its record cannot be read")
                slot, next_at = timing.due(spec_of(rec), rec.next_at, now, rec.missed)
            except Exception as exc:  # (a zone gone from tzdata): never stop the worker
                storage.disable_schedule(sql, rec.name)  # listed, paused, not read again
                log.warning("schedule %r cannot be fired (%s): paused", rec.name, exc)
                continue
            moved = rec.evolve(next_at=next_at, updated_at=now)
            if slot is None:
                storage.move_schedule(sql, moved, rec.next_at)
                continue
            key = slot_key(rec.name, slot)
            taken = storage.record_by_key(key, sql)
            job_id = new_id() if taken is None else taken.id
            moved = moved.evolve(last_slot=slot, last_job_id=job_id, fired=rec.fired + 1)
            if storage.move_schedule(sql, moved, rec.next_at) and taken is None:
                storage.insert(sql, _firing(rec, job_id, key, now))
                storage.copy_blob(sql, f"s:{rec.name}", f"p:{job_id}")
                queued += 1
        return queued

    queued: int = storage.writer.call(fire)
    return queued


def _firing(rec: ScheduleRecord, job_id: str, key: str, now: float) -> JobRecord:
    return JobRecord(
        id=job_id, name=rec.name, key=key, tags=(*rec.tags, tag(rec.name)), executor="worker",
        created_at=now, updated_at=now, fn_digest=rec.fn_digest, timeout=rec.timeout,
        soft_timeout=rec.soft_timeout,
    )  # fmt: skip


def describe(rec: ScheduleRecord) -> dict[str, Any]:
    """A schedule as plain data (the CLI prints it, `Schedule.to_dict` returns it)."""
    corrupt = rec.fn_name == CORRUPT
    return {
        "name": rec.name,
        "function": rec.fn_name,
        "when": "corrupt" if corrupt else spec_of(rec).text,
        "every": rec.every,
        "cron": rec.cron,
        "tz": rec.tz,
        "tz_source": rec.tz_source,
        "missed": rec.missed,
        "paused": rec.paused,
        "next_at": None if rec.paused or corrupt else _iso(rec.next_at, rec.tz),
        "last_slot": None if rec.last_slot is None else _iso(rec.last_slot, rec.tz),
        "last_job_id": rec.last_job_id,
        "fired": rec.fired,
        "tags": list(rec.tags),
    }


def local_time(t: float, tz: str) -> datetime.datetime:
    import zoneinfo  # here: `import nbjobs` need not load it

    try:
        zone: datetime.tzinfo = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):  # a zone gone from tzdata: UTC
        zone = datetime.UTC
    return datetime.datetime.fromtimestamp(t, zone)


def _iso(t: float, tz: str) -> str:
    return local_time(t, tz).isoformat(timespec="seconds")
