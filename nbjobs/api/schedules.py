"""`Schedule` handles, and `ScheduleControl`: the part of `Store` that defines its schedules."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from typing import Any, Unpack

from nbjobs import render, validate
from nbjobs.api.job import Job
from nbjobs.api.reads import Reads
from nbjobs.calls.options import SCHEDULE_NAMES, ScheduleOptions, entry
from nbjobs.errors import JobNotFound, ScheduleNotFound
from nbjobs.records import ScheduleRecord
from nbjobs.scheduling import manage
from nbjobs.validate import Duration
from nbjobs.worker.control import list_workers


class ScheduleControl(Reads):
    """The schedules of a store: define (or replace), list, pause, resume, remove."""

    @entry(SCHEDULE_NAMES)
    def schedule(
        self,
        fn: Callable[..., Any],
        *,
        every: Duration | None = None,
        cron: str | None = None,
        args: tuple[Any, ...] | list[Any] = (),
        kwargs: dict[str, Any] | None = None,
        tz: str | None = None,
        missed: str = "once",
        **options: Unpack[ScheduleOptions],
    ) -> Schedule:
        """Run `fn(*args, **kwargs)` on a schedule, as a detached-worker job per firing.

        Give exactly one of `every` (seconds, a `timedelta`, or "30s", "5m", "1h", "1d",
        "1h30m": the first firing one interval from now) and `cron` (a croniter expression
        such as "0 2 * * *", computed in `tz`, an IANA zone name; None: this machine's
        zone, or UTC if it cannot be told). Bad timing raises at once and stores nothing.

        Detached workers fire schedules (`start_worker()` or `nbjobs worker`; a warning
        says so when none is running); each firing is an ordinary `executor="worker"` job
        named `name` (default: the function's name), tagged `schedule:<name>`, with the key
        `schedule:<name>:<slot time, UTC ISO>`, so a slot never runs twice however many
        workers serve the store. A worker does not stop for idleness while an active
        schedule is stored. The job options below apply to every firing, as for `submit`.

        Missed slots (no worker was running): `missed="once"` (default) fires one job for
        the latest missed slot, not one per missed slot; `missed="skip"` fires none; both
        then go on from the next slot. DST: a wall-clock time that occurs twice (autumn)
        fires once; one skipped by the clocks (spring) fires once, when the clocks jump.

        Calling `schedule` again with the same name (re-running a cell) replaces the
        definition in place, atomically: its firing history and paused state are kept, and
        its next slot too when the timing is unchanged.

        >>> store.schedule(refresh_prices, every="30m")                     # doctest: +SKIP
        >>> store.schedule(report, cron="0 2 * * *", tz="Europe/Berlin")    # doctest: +SKIP
        """
        rec = manage.create(
            self.storage,
            fn,
            every=every,
            cron=cron,
            args=args,
            kwargs=kwargs,
            tz=tz,
            missed=missed,
            options=options,
        )
        if not any(w.alive for w in list_workers(self.storage)):
            validate.warn(
                f"schedule {rec.name!r} is stored, but no detached worker serves the store at "
                f"{self.storage.path}, and only workers fire schedules: start one with "
                "nbjobs.start_worker() (in a notebook) or `nbjobs worker` (in a terminal)"
            )
        return Schedule(self, rec)

    def schedules(self) -> list[Schedule]:
        """Every schedule of this store, by name (each shows its timing, time zone, next
        fire time, last fired slot and job, and whether it is paused).

        >>> store.schedules()        # doctest: +SKIP
        [<Schedule refresh_prices every 30m tz=UTC next=2026-11-24T10:30:00+00:00>]
        """
        return [Schedule(self, rec) for rec in self.storage.schedules()]

    def get_schedule(self, name: str) -> Schedule:
        """The schedule called `name`; raises `nbjobs.ScheduleNotFound` (a KeyError)."""
        return Schedule(self, manage.find(self.storage, name))

    def unschedule(self, name: str) -> bool:
        """Remove the schedule called `name`; False if there is none. Its past firings stay
        (jobs tagged `schedule:<name>`); a firing already queued still runs.

        >>> store.unschedule("refresh_prices")      # doctest: +SKIP
        True
        """
        return manage.remove(self.storage, name)

    def pause_schedule(self, name: str) -> Schedule:
        """Stop a schedule firing until `resume_schedule(name)`; raises `ScheduleNotFound`."""
        return Schedule(self, manage.set_paused(self.storage, name, True))

    def resume_schedule(self, name: str) -> Schedule:
        """Let a paused schedule fire again, from its next slot (the slots that passed while
        it was paused are not fired); raises `ScheduleNotFound`."""
        return Schedule(self, manage.set_paused(self.storage, name, False))


class Schedule:
    """A schedule in a store, by name. Attributes are read from the store each time you look.

    >>> s = nbjobs.schedule(refresh_prices, every="30m")   # doctest: +SKIP
    >>> s.next_at, s.last_job                              # doctest: +SKIP
    >>> s.pause(); s.resume(); s.remove()                  # doctest: +SKIP
    """

    __slots__ = ("_snap", "_store")

    def __init__(self, store: Reads, rec: ScheduleRecord) -> None:
        self._store = store
        self._snap = rec

    def record(self) -> ScheduleRecord:
        """The stored record; raises `ScheduleNotFound` once the schedule is removed."""
        self._snap = manage.find(self._store.storage, self._snap.name)
        return self._snap

    @property
    def name(self) -> str:
        return self._snap.name

    @property
    def every(self) -> float | None:
        """Seconds between firings, or None for a cron schedule."""
        return self.record().every

    @property
    def cron(self) -> str | None:
        return self.record().cron

    @property
    def tz(self) -> str:
        """The IANA time zone its cron slots are computed in."""
        return self.record().tz

    @property
    def paused(self) -> bool:
        return self.record().paused

    @property
    def next_at(self) -> datetime.datetime | None:
        """When it fires next (in its time zone); None while paused."""
        rec = self.record()
        return None if rec.paused else manage.local_time(rec.next_at, rec.tz)

    @property
    def last_slot(self) -> datetime.datetime | None:
        """The slot it fired last (in its time zone), or None."""
        rec = self.record()
        return None if rec.last_slot is None else manage.local_time(rec.last_slot, rec.tz)

    @property
    def last_job(self) -> Job | None:
        """The job of its last firing, or None (never fired, or that job was forgotten)."""
        job_id = self.record().last_job_id
        if job_id is None:
            return None
        try:
            return self._store.get(job_id)
        except JobNotFound:
            return None

    def runs(self, limit: int = 100) -> list[Job]:
        """Its firings (jobs tagged `schedule:<name>`), newest first."""
        return self._store.jobs(tag=manage.tag(self.name), limit=limit)

    def pause(self) -> Schedule:
        """Stop firing until `resume()`; see `Store.pause_schedule`."""
        self._snap = manage.set_paused(self._store.storage, self.name, True)
        return self

    def resume(self) -> Schedule:
        """Fire again from the next slot; see `Store.resume_schedule`."""
        self._snap = manage.set_paused(self._store.storage, self.name, False)
        return self

    def remove(self) -> bool:
        """Delete the schedule (its past firings stay); False if it was already gone."""
        return manage.remove(self._store.storage, self.name)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (times as ISO strings in the schedule's zone)."""
        return manage.describe(self.record())

    def __repr__(self) -> str:
        try:
            rec = self.record()
        except ScheduleNotFound:
            return f"<Schedule {self.name} (removed)>"
        d = manage.describe(rec)
        state = "paused" if rec.paused else f"next={d['next_at']}"
        last = f" last={d['last_slot']} job={rec.last_job_id}" if rec.last_slot else ""
        return f"<Schedule {rec.name} {d['when']} tz={rec.tz} {state}{last}>"

    def _repr_html_(self) -> str:
        import html  # here: `import nbjobs` and the CLI need not load it

        try:
            d = manage.describe(self.record())
        except ScheduleNotFound:
            return f"<code>schedule {html.escape(self.name)} (removed)</code>"
        cells = "".join(
            f"<tr><th style='text-align:left;color:{render.MUTED}'>{field}</th>"
            f"<td style='text-align:left'>{html.escape(str(d[key]))}</td></tr>"
            for field, key in _HTML_FIELDS
            if d[key] not in (None, "", ())
        )
        return f"<table>{cells}</table>"


_HTML_FIELDS = (
    ("schedule", "name"), ("runs", "function"), ("when", "when"), ("time zone", "tz"),
    ("paused", "paused"), ("next", "next_at"), ("last fired", "last_slot"),
    ("last job", "last_job_id"), ("fired", "fired"), ("missed slots", "missed"),
)  # fmt: skip
