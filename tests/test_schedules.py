"""Schedules: timing (pure functions), the store side on a fake clock, real detached workers.

The timing tests drive `nbjobs.scheduling.timing` with instants, the store tests fire due slots
the way a worker's loop does (`manage.fire_due` at the fake clock's time), and the last
tests run real worker processes (started and stopped by test_worker's `start` fixture).
"""

from __future__ import annotations

import datetime
import itertools
import os
import threading
import warnings
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_worker import Start, alive, start  # noqa: F401  (the fixture)

import nbjobs
from nbjobs.clock import FakeClock
from nbjobs.scheduling import manage
from nbjobs.scheduling import timing as scheduling
from nbjobs.scheduling.timing import Spec, due, next_slot

NO_WORKER = "ignore:schedule .* is stored, but no detached worker"


def at(text: str, tz: str) -> float:
    """The instant of wall-clock time `text` in `tz` (its first occurrence)."""
    return datetime.datetime.fromisoformat(text).replace(tzinfo=zoneinfo.ZoneInfo(tz)).timestamp()


def walls(slots: list[float], tz: str) -> list[str]:
    """Slots as wall-clock times with their UTC offsets (`01:30-04:00`)."""
    zone = zoneinfo.ZoneInfo(tz)
    return [datetime.datetime.fromtimestamp(t, zone).isoformat()[11:16] + _offset(t, zone)
            for t in slots]  # fmt: skip


def _offset(t: float, zone: zoneinfo.ZoneInfo) -> str:
    return datetime.datetime.fromtimestamp(t, zone).isoformat()[-6:]


def slots_between(spec: Spec, begin: float, end: float) -> list[float]:
    out, t = [], begin
    while (t := next_slot(spec, t)) < end:
        out.append(t)
    return out


# --------------------------------------------------------------------------- intervals
@pytest.mark.parametrize(
    ("every", "seconds"),
    [
        (30, 30.0), (1.5, 1.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("1d", 86400.0),
        ("1h30m", 5400.0), ("1d2h", 93600.0), (" 2M ", 120.0), ("45", 45.0),
        (datetime.timedelta(minutes=5), 300.0), (np.int64(30), 30.0), (np.float32(1.5), 1.5),
    ],
)  # fmt: skip
def test_every_accepts_seconds_timedeltas_and_unit_strings(every: Any, seconds: float) -> None:
    spec, _ = scheduling.define(every, None, "UTC", 1000.0)
    assert spec.every == seconds


@pytest.mark.parametrize(
    "every",
    ["5 minutes", "1x", "", "m", "-5s", 0, -1, float("nan"), "1h 30m", datetime.timedelta(0)],
)
def test_a_bad_interval_raises_naming_every_the_value_and_the_forms(every: Any) -> None:
    with pytest.raises(nbjobs.InvalidArgument) as err:
        scheduling.define(every, None, "UTC", 1000.0)
    message = str(err.value)
    assert message.startswith("every must be")
    assert "'30s', '5m', '1h30m'" in message
    assert repr(every.strip().lower() if isinstance(every, str) else every)[:20] in message


@pytest.mark.parametrize("every", [True, [1], object()])
def test_an_interval_of_the_wrong_type_raises_a_type_error(every: Any) -> None:
    with pytest.raises(TypeError, match="every must be"):
        scheduling.define(every, None, "UTC", 1000.0)


def test_neither_or_both_of_every_and_cron_raise() -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=r"exactly one of every=.*not neither"):
        scheduling.define(None, None, "UTC", 0.0)
    with pytest.raises(nbjobs.InvalidArgument, match="not both"):
        scheduling.define("5m", "0 2 * * *", "UTC", 0.0)


def test_interval_slots_are_whole_multiples_from_the_definition() -> None:
    spec, _ = scheduling.define("30s", None, "UTC", 1000.4)
    assert spec.anchor == 1001.0
    assert next_slot(spec, spec.anchor) == 1031.0  # the first firing: one interval on
    assert next_slot(spec, 1031.0) == 1061.0  # strictly after
    assert slots_between(spec, 1061.0, 1200.0) == [1091.0, 1121.0, 1151.0, 1181.0]


# --------------------------------------------------------------------------- cron
@pytest.mark.parametrize("cron", ["0 2 * * *", "*/5 * * * *", "0 9 * * mon-fri", "@daily",
                                  "0 0 1 1 *", "*/10 * * * * 30"])  # fmt: skip
def test_valid_cron_expressions_are_accepted(cron: str) -> None:
    spec, _ = scheduling.define(None, cron, "UTC", 0.0)
    assert spec.cron == cron


@pytest.mark.parametrize("cron", ["bad", "61 * * * *", "* * *", "0 25 * * *", "", "0 0 30 2 *"])
def test_a_bad_cron_expression_raises_at_definition(cron: str) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match="cron"):
        scheduling.define(None, cron, "UTC", 0.0)


def test_cron_slots_follow_the_time_zone() -> None:
    spec = Spec(None, "0 2 * * *", "Europe/Berlin")
    first = next_slot(spec, at("2026-06-01T12:00", "UTC"))
    assert first == at("2026-06-02T02:00", "Europe/Berlin") == at("2026-06-02T00:00", "UTC")
    assert next_slot(spec, first) - first == 86400


def test_an_unknown_time_zone_raises_and_none_means_this_machine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for bad in ("Mars/Olympus", "not a zone", "../etc"):
        with pytest.raises(nbjobs.InvalidArgument, match="tz must be an IANA time zone"):
            scheduling.define("5m", None, bad, 0.0)
    with pytest.raises(TypeError, match="tz must be"):
        scheduling.define("5m", None, 5, 0.0)
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    spec, source = scheduling.define(None, "0 9 * * *", None, 0.0)
    assert (spec.tz, source) == ("Asia/Tokyo", "local")
    monkeypatch.setattr(scheduling, "local_zone", lambda: None)
    spec, source = scheduling.define(None, "0 9 * * *", None, 0.0)
    assert (spec.tz, source) == ("UTC", "UTC (local zone unknown)")


# --------------------------------------------------------------------------- DST
def test_autumn_a_repeated_wall_clock_slot_fires_once() -> None:
    """croniter alone fires these twice on the fall-back day."""
    ny = Spec(None, "30 1 * * *", "America/New_York")
    day = slots_between(ny, at("2026-10-31T12:00", ny.tz), at("2026-11-02T12:00", ny.tz))
    assert walls(day, ny.tz) == ["01:30-04:00", "01:30-05:00"]  # Nov 1 (EDT), Nov 2 (EST)
    berlin = Spec(None, "30 2 * * *", "Europe/Berlin")
    day = slots_between(berlin, at("2026-10-24T12:00", berlin.tz), at("2026-10-26T12:00", "UTC"))
    assert walls(day, berlin.tz) == ["02:30+02:00", "02:30+01:00"]  # Oct 25 (CEST), Oct 26


def test_autumn_an_hourly_expression_follows_the_clock_through_the_repeated_hour() -> None:
    spec = Spec(None, "*/30 * * * *", "America/New_York")
    got = slots_between(spec, at("2026-11-01T00:15", spec.tz), at("2026-11-01T02:45", spec.tz))
    assert walls(got, spec.tz) == [
        "00:30-04:00", "01:00-04:00", "01:30-04:00",
        "01:00-05:00", "01:30-05:00", "02:00-05:00", "02:30-05:00",
    ]  # fmt: skip
    assert got == sorted(got) and len(set(got)) == len(got)
    assert [b - a for a, b in itertools.pairwise(got)] == [1800.0] * 6


def test_spring_a_slot_in_the_skipped_hour_fires_once_when_the_clocks_jump() -> None:
    ny = Spec(None, "30 2 * * *", "America/New_York")
    got = slots_between(ny, at("2026-03-07T12:00", ny.tz), at("2026-03-09T12:00", ny.tz))
    assert walls(got, ny.tz) == ["03:00-04:00", "02:30-04:00"]  # Mar 8 at the jump, Mar 9
    berlin = Spec(None, "30 2 * * *", "Europe/Berlin")
    got = slots_between(berlin, at("2026-03-28T12:00", berlin.tz), at("2026-03-30T12:00", "UTC"))
    assert walls(got, berlin.tz) == ["03:00+02:00", "02:30+02:00"]
    every_20 = Spec(None, "*/20 * * * *", "America/New_York")
    got = slots_between(every_20, at("2026-03-08T01:30", ny.tz), at("2026-03-08T03:30", ny.tz))
    assert walls(got, ny.tz) == ["01:40-05:00", "03:00-04:00", "03:20-04:00"]


@pytest.mark.filterwarnings(NO_WORKER)
@pytest.mark.parametrize(
    ("tz", "cron", "day"),
    [
        ("America/New_York", "30 1 * * *", "2026-11-01"),
        ("Europe/Berlin", "30 2 * * *", "2026-10-25"),
        ("America/New_York", "30 2 * * *", "2026-03-08"),
        ("Europe/Berlin", "30 2 * * *", "2026-03-29"),
    ],
)
def test_a_worker_fires_one_job_on_a_dst_day(tmp_path: Path, tz: str, cron: str, day: str) -> None:
    """A fake clock walks through the DST day in 5-minute steps, firing like a worker."""
    clock = FakeClock(at(f"{day}T00:00", tz) - 3600)
    with nbjobs.Store(tmp_path / "s", clock=clock) as store:
        store.schedule(pow, cron=cron, tz=tz, args=(2, 3), name="nightly")
        while clock.now() < at(f"{day}T00:00", tz) + 86400:
            clock.advance(300)
            manage.fire_due(store.storage, clock.now())
        runs = store.jobs(tag="schedule:nightly")
        assert len(runs) == 1, [job.key for job in runs]
        assert runs[0].key.startswith("schedule:nightly:" + day)


# --------------------------------------------------------------------------- missed slots
def test_due_fires_the_latest_missed_slot_once_or_skips_it() -> None:
    spec = Spec(60.0, None, "UTC", anchor=0.0)
    assert due(spec, 60.0, 59.0, "once") == (None, 60.0)  # not due yet
    assert due(spec, 60.0, 61.0, "once") == (60.0, 120.0)
    assert due(spec, 60.0, 61.0, "skip") == (60.0, 120.0)  # on time: not missed
    assert due(spec, 60.0, 3630.0, "once") == (3600.0, 3660.0)  # one job for 60 missed slots
    assert due(spec, 60.0, 3630.0, "skip") == (3600.0, 3660.0)  # 30 s late: on time
    hourly = Spec(3600.0, None, "UTC", anchor=0.0)
    assert due(hourly, 3600.0, 36000.0 + scheduling.LATE + 1, "once") == (36000.0, 39600.0)
    assert due(hourly, 3600.0, 36000.0 + scheduling.LATE + 1, "skip") == (None, 39600.0)
    cron = Spec(None, "0 * * * *", "UTC")
    assert due(cron, 3600.0, 5 * 86400 + 30.0, "once") == (5 * 86400.0, 5 * 86400 + 3600.0)
    assert due(cron, 3600.0, 5 * 86400 + 30.0, "skip") == (5 * 86400.0, 5 * 86400 + 3600.0)
    assert due(cron, 3600.0, 5 * 86400 + 1800.0, "skip") == (None, 5 * 86400 + 3600.0)


@pytest.mark.filterwarnings(NO_WORKER)
def test_after_downtime_once_fires_one_job_and_skip_fires_none(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    t0 = clock.now()
    fake_store.schedule(pow, every="10m", args=(2, 2), name="once")
    fake_store.schedule(pow, every="10m", args=(2, 2), name="skip", missed="skip")
    clock.advance(10 * 600 + 90)  # ten slots missed, the last one 90 s ago
    assert manage.fire_due(fake_store.storage, clock.now()) == 1
    (job,) = fake_store.jobs(tag="schedule:once")
    assert job.key == manage.slot_key("once", t0 + 6000)  # the latest missed slot
    assert fake_store.jobs(tag="schedule:skip") == []
    for name in ("once", "skip"):
        assert fake_store.get_schedule(name).record().next_at == t0 + 6600  # in the future
    clock.advance(515)  # 5 s after the next slot
    assert manage.fire_due(fake_store.storage, clock.now()) == 2  # on time: both fire
    assert manage.fire_due(fake_store.storage, clock.now()) == 0  # a slot fires once


# --------------------------------------------------------------------------- the store side
def record_call(folder: str, label: str) -> str:
    Path(folder, label).touch()
    return label


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_firing_is_a_worker_job_keyed_by_slot_named_and_tagged(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    sched = fake_store.schedule(
        pow, every=30, args=(3,), kwargs={"exp": 2}, tags="maths", retries=2, timeout=60
    )
    assert sched.name == "pow"
    assert fake_store.schedules()[0].name == "pow"
    assert sched.last_job is None and sched.last_slot is None
    clock.advance(31)
    assert manage.fire_due(fake_store.storage, clock.now()) == 1
    (job,) = sched.runs()
    slot = fake_store.get_schedule("pow").record().last_slot
    assert slot is not None
    assert job.key == f"schedule:pow:{scheduling.slot_text(slot)}"
    assert job.key.endswith("Z") and "T" in job.key
    rec = job.record()
    assert (rec.name, rec.executor, rec.status, rec.owner) == ("pow", "worker", "pending", None)
    assert set(rec.tags) == {"maths", "schedule:pow"}
    assert rec.timeout == 60
    assert sched.last_job is not None and sched.last_job.id == job.id
    assert sched.record().fired == 1
    job.cancel()
    assert job.rerun_here() == 9  # the stored call: pow(3, exp=2)


@pytest.mark.filterwarnings(NO_WORKER)
def test_schedule_again_with_the_same_name_replaces_it_in_place(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every="1m", args=(2, 1), name="p")
    clock.advance(61)
    manage.fire_due(fake_store.storage, clock.now())
    before = fake_store.get_schedule("p").record()
    clock.advance(10)
    again = fake_store.schedule(pow, every="1m", args=(2, 5), name="p")  # a re-run cell
    assert [s.name for s in fake_store.schedules()] == ["p"]
    rec = again.record()
    assert (rec.next_at, rec.anchor) == (before.next_at, before.anchor)  # same timing: kept
    assert (rec.last_slot, rec.last_job_id, rec.fired) == (
        before.last_slot, before.last_job_id, 1,
    )  # fmt: skip
    clock.advance(60)
    manage.fire_due(fake_store.storage, clock.now())
    newest = fake_store.get_schedule("p").last_job
    assert newest is not None
    newest.cancel()
    assert newest.rerun_here() == 32  # the new arguments
    changed = fake_store.schedule(pow, every="1h", args=(2, 5), name="p").record()
    assert changed.every == 3600.0 and changed.next_at == clock.now() + 3600
    assert changed.fired == 2
    assert len(fake_store.schedules()) == 1


@pytest.mark.filterwarnings(NO_WORKER)
def test_pause_resume_and_remove(fake_store: nbjobs.Store, clock: FakeClock) -> None:
    sched = fake_store.schedule(pow, every="1m", args=(2, 2))
    assert fake_store.storage.earliest_schedule() is not None  # keeps workers serving
    assert sched.pause() is sched and sched.paused and sched.next_at is None
    assert fake_store.storage.earliest_schedule() is None  # ... not while paused
    clock.advance(600)
    assert manage.fire_due(fake_store.storage, clock.now()) == 0
    fake_store.resume_schedule("pow")
    assert sched.record().next_at == clock.now() + 60 - (clock.now() - sched.record().anchor) % 60
    assert manage.fire_due(fake_store.storage, clock.now()) == 0  # paused slots stay missed
    assert fake_store.pause_schedule("pow").paused
    assert not sched.resume().paused
    assert isinstance(sched.next_at, datetime.datetime) and sched.next_at.tzinfo is not None
    assert sched.remove() is True
    assert fake_store.schedules() == []
    assert fake_store.unschedule("pow") is False
    with pytest.raises(nbjobs.ScheduleNotFound, match="no schedule named 'pow'"):
        fake_store.pause_schedule("pow")
    with pytest.raises(KeyError):
        fake_store.get_schedule("pow")
    assert repr(sched) == "<Schedule pow (removed)>"


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"every": "5 min"}, nbjobs.InvalidArgument, "every must be"),
        ({"cron": "61 * * * *"}, nbjobs.InvalidArgument, "cron must be"),
        ({}, nbjobs.InvalidArgument, "exactly one of every="),
        ({"every": 5, "tz": "Nowhere/City"}, nbjobs.InvalidArgument, "tz must be"),
        ({"every": 5, "missed": "all"}, nbjobs.InvalidArgument, "missed must be 'once'"),
        ({"every": 5, "args": 3}, TypeError, "args must be a tuple"),
        ({"every": 5, "kwargs": [1]}, TypeError, "kwargs must be a dict"),
        ({"every": 5, "timeout": 0}, nbjobs.InvalidArgument, "timeout must be"),
        ({"every": 5, "name": ""}, TypeError, "name must be"),
        ({"every": 10**20}, nbjobs.InvalidArgument, "every must be at most"),
        ({"every": 5, "args": (threading.Lock(),)}, nbjobs.PayloadNotPicklable, "argument 0"),
    ],
)
def test_a_refused_schedule_writes_nothing(
    store: nbjobs.Store, options: dict[str, Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        store.schedule(pow, **options)
    assert store.schedules() == []
    assert store.storage._sql("SELECT count(*) FROM nbjobs_blobs").fetchone() == (0,)


def test_a_job_is_refused_as_a_schedule_argument(store: nbjobs.Store) -> None:
    job = store.submit(pow, 2, 2)
    with pytest.raises(nbjobs.InvalidArgument, match="arguments cannot be jobs"):
        store.schedule(pow, every=5, args=(job, 2))
    assert store.schedules() == []


def test_schedule_warns_when_no_worker_serves_the_store(store: nbjobs.Store) -> None:
    with pytest.warns(UserWarning, match=r"nbjobs.start_worker\(\).*`nbjobs worker`"):
        store.schedule(pow, every=5, args=(2, 2))


class Trap:
    """Unpickling this runs code: it creates the file `path`."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (os.mkdir, (self.path,))


@pytest.mark.filterwarnings(NO_WORKER)
def test_listing_schedules_runs_no_code_from_the_store(store: nbjobs.Store, tmp_path: Path) -> None:
    trap = tmp_path / "trap-sprung"
    store.schedule(print, every="1h", args=(Trap(str(trap)),), name="trap", tz="UTC")
    with nbjobs.Store(store.path) as other:
        (sched,) = other.schedules()
        text = repr(sched) + sched._repr_html_() + str(sched.to_dict())
    assert "trap" in text and "every 1h" in text and "tz=UTC" in text
    assert not trap.exists()


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_corrupt_schedule_is_listed_and_paused_never_crashing(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every=5, args=(2, 2), name="broken")
    fake_store.schedule(pow, every=5, args=(2, 3), name="fine")
    fake_store.storage.writer.call(
        lambda sql: sql("UPDATE nbjobs_schedules SET data = ? WHERE name = 'broken'", (b"junk",))
    )
    clock.advance(6)
    assert manage.fire_due(fake_store.storage, clock.now()) == 1  # the fine one
    broken, _ = fake_store.schedules()
    assert broken.to_dict()["when"] == "corrupt" and broken.paused
    assert "broken" in repr(broken)
    with pytest.raises(nbjobs.InvalidArgument, match="corrupt"):
        broken.resume()
    assert broken.remove()


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_schedule_that_cannot_be_computed_is_paused_not_fired(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    """A time zone removed from the system's tzdata since the schedule was defined."""
    sched = fake_store.schedule(pow, cron="* * * * *", tz="Europe/Berlin", args=(2, 2))
    gone = sched.record().evolve(tz="Gone/Zone")
    fake_store.storage.writer.call(lambda sql: fake_store.storage.put_schedule(sql, gone))
    clock.advance(120)
    assert manage.fire_due(fake_store.storage, clock.now()) == 0
    assert sched.paused and "Gone/Zone" in repr(sched)
    assert fake_store.storage.earliest_schedule() is None


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_schedule_persists_across_store_reopen(tmp_path: Path) -> None:
    with nbjobs.Store(tmp_path / "s") as store:
        store.schedule(pow, cron="0 2 * * *", tz="Europe/Berlin", args=(2, 2), name="nightly")
    with nbjobs.Store(tmp_path / "s") as reopened:
        (sched,) = reopened.schedules()
        assert (sched.name, sched.cron, sched.tz) == ("nightly", "0 2 * * *", "Europe/Berlin")
        assert sched.next_at is not None and sched.next_at.hour == 2


@pytest.mark.filterwarnings(NO_WORKER)
def test_two_processes_firing_the_same_store_fire_each_slot_once(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every=1, args=(2, 2), name="race")
    others = [nbjobs.Store(fake_store.path, clock=clock) for _ in range(3)]
    try:
        for _ in range(5):
            clock.advance(1)
            fired: list[int] = []

            def fire(store: nbjobs.Store, fired: list[int] = fired) -> None:
                fired.append(manage.fire_due(store.storage, clock.now()))

            threads = [threading.Thread(target=fire, args=(s,)) for s in [fake_store, *others]]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(fired) == [0, 0, 0, 1]
    finally:
        for s in others:
            s.close()
    assert len(fake_store.jobs(tag="schedule:race")) == 5


def test_module_functions_use_the_default_store(default_store: Path) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="schedule .* is stored")
        nbjobs.schedule(pow, every="5m", args=(2, 2))
    assert [s.name for s in nbjobs.schedules()] == ["pow"]
    assert nbjobs.pause_schedule("pow").paused
    assert not nbjobs.resume_schedule("pow").paused
    assert nbjobs.get_schedule("pow").every == 300.0
    assert nbjobs.unschedule("pow") is True
    assert nbjobs.schedules() == []


# --------------------------------------------------------------------------- real workers
def square(x: int) -> int:
    return x * x


async def async_square(x: int) -> int:
    return x * x


def succeeded(store: nbjobs.Store, name: str, n: int) -> Callable[[], list[nbjobs.Job]]:
    def check() -> list[nbjobs.Job]:
        runs = [j for j in store.jobs(tag=f"schedule:{name}") if j.status == "succeeded"]
        return runs if len(runs) >= n else []

    return check


@pytest.mark.slow
def test_a_worker_fires_a_schedule_every_second_and_stops_when_it_is_removed(
    store: nbjobs.Store,
    start: Start,  # noqa: F811
    wait_for: Callable[..., Any],
) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="schedule .* is stored")
        store.schedule(square, every=1, args=(7,), name="sq")
    info = start(workers=2, idle_timeout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a worker is alive: no warning
        store.schedule(square, every=1, args=(7,), name="sq")  # a re-run cell: replaced
        store.schedule(async_square, every=1, args=(5,), name="async-sq")
    # Firings are ~1 s apart, longer than idle_timeout: the schedules keep the worker serving.
    runs = wait_for(succeeded(store, "sq", 3), timeout=60)
    assert alive(info.pid)
    for job in runs:
        assert job.result() == 49 and job.name == "sq" and job.attempts == 1
        slot = datetime.datetime.fromisoformat(job.key.removeprefix("schedule:sq:"))
        assert slot.microsecond == 0 and slot.tzinfo == datetime.UTC
    assert len({job.key for job in runs}) == len(runs)
    assert wait_for(succeeded(store, "async-sq", 1))[0].result() == 25
    assert store.unschedule("sq") and store.unschedule("async-sq")
    # Nothing active any more: the worker stops for idleness, having fired nothing since.
    wait_for(lambda: not alive(info.pid), timeout=60)
    fired = len(store.jobs(tag="schedule:sq"))
    wait_for(lambda: all(j.done() for j in store.jobs(tag="schedule:sq")))
    assert len(store.jobs(tag="schedule:sq")) == fired


@pytest.mark.slow
def test_two_workers_never_fire_the_same_slot_twice(
    store: nbjobs.Store,
    start: Start,  # noqa: F811
    wait_for: Callable[..., Any],
) -> None:
    start(workers=1)
    start(workers=1, new=True)
    sched = store.schedule(square, every=1, args=(3,), name="shared")
    try:
        wait_for(succeeded(store, "shared", 4), timeout=60)
    finally:
        sched.pause()
    runs = store.jobs(tag="schedule:shared")
    slots = [job.key for job in runs]
    assert len(slots) == len(set(slots))
    # Every firing a worker made created its job: none found its slot already taken.
    assert sched.record().fired == len(runs)
    assert {job.name for job in runs} == {"shared"}
    sched.remove()
