"""When schedules fire: intervals, cron expressions, time zones, DST, missed slots.

The only module that imports croniter (on first use: `import nbjobs` does not load it). Pure
functions of time: each takes `now` (or `after`) as seconds since the epoch, so tests drive
them with any instant, no clock and no sleeping.

Cron slots are wall-clock times in the schedule's IANA time zone. croniter steps through
naive wall-clock times here and each one is mapped to real instants by `_instants`:

* a wall-clock time that happens twice (the autumn fall-back hour) fires once, at its first
  occurrence; an expression whose hour field is `*` (it runs every hour) follows the clock
  instead and fires in both passes of the repeated hour, as cron does;
* a wall-clock time that does not exist (the spring-forward gap) fires once, at the first
  valid instant after it: the moment the clocks jump (03:00 in New York on 2026-03-08 for
  `30 2 * * *`).

Interval schedules (`every`) are plain elapsed time, unaffected by DST: slots at
`anchor + k * every`.
"""

from __future__ import annotations

import datetime
import math
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nbjobs import validate
from nbjobs.errors import InvalidArgument, InvalidArgumentType

if TYPE_CHECKING:  # zoneinfo is imported where a zone is read: `import nbjobs` need not
    import zoneinfo

#: What `missed=` accepts: after downtime, fire one job for the latest missed slot ("once")
#: or none ("skip"); either way the schedule continues from the next future slot.
MISSED = ("once", "skip")
#: A slot fired within this many seconds of its time is on time, not missed (workers poll).
LATE = 60.0
#: Longest change of UTC offset at a DST transition (Antarctica/Troll: 2 h), plus margin.
_MAX_SHIFT = 3 * 3600
CRON_FORMS = (
    "a cron expression such as '0 2 * * *' (minute hour day month weekday; a 6th field is "
    "seconds) or '@daily', '@hourly', ..."
)


@dataclass(frozen=True, slots=True)
class Spec:
    """When a schedule fires: every `every` seconds from `anchor`, or at `cron` in `tz`."""

    every: float | None
    cron: str | None
    tz: str
    anchor: float = 0.0

    @property
    def text(self) -> str:
        """`every 30m` or `cron 0 2 * * *`, for listings."""
        if self.every is not None:
            return f"every {interval_text(self.every)}"
        return f"cron {self.cron}"


def define(every: Any, cron: Any, tz: Any, now: float) -> tuple[Spec, str]:
    """Check a schedule's timing and return it with where its zone came from.

    Exactly one of `every` (seconds > 0, a `timedelta`, or "30s", "5m", "1h30m", "1d"; slots
    every that long from `now`) and `cron` must be given. `tz`: an IANA zone name, or None
    for this machine's zone. The second value is "given", "local" or "UTC (local zone
    unknown)".

    >>> spec, source = define("1h30m", None, "UTC", 0.0)
    >>> spec.every, source
    (5400.0, 'given')
    """
    if (every is None) == (cron is None):
        raise InvalidArgument(
            "give exactly one of every= (such as '30m') and cron= (such as '0 2 * * *'), "
            f"not {'both' if every is not None else 'neither'}"
        )
    zone, source = _zone(tz)
    if every is not None:
        # Slots on whole seconds from the definition: keys and listings read cleanly.
        return Spec(validate.duration(every, "every"), None, zone, float(math.ceil(now))), source
    spec = Spec(None, _check_cron(cron), zone, now)
    try:
        next_slot(spec, now)
    except Exception as exc:  # croniter: "no such date" (February 30th)
        raise InvalidArgument(f"cron expression {cron!r} never fires: {exc}") from None
    return spec, source


def next_slot(spec: Spec, after: float) -> float:
    """The first slot strictly after `after` (seconds since the epoch).

    >>> next_slot(Spec(60.0, None, "UTC", anchor=0.0), 130.0)
    180.0
    >>> next_slot(Spec(None, "0 2 * * *", "UTC"), 0.0)   # 1970-01-01 02:00 UTC
    7200.0
    """
    if spec.every is not None:
        k = math.floor((after - spec.anchor) / spec.every) + 1
        slot = spec.anchor + k * spec.every
        return slot if slot > after else slot + spec.every
    import zoneinfo

    zone = zoneinfo.ZoneInfo(spec.tz)
    # Near a fall-back the wall clock reads an hour twice: start the walk early enough that
    # the second pass of the repeated hour is seen.
    now_offset = _offset(after, zone)
    back = max(
        _offset(after - _MAX_SHIFT, zone) - now_offset,
        now_offset - _offset(after + _MAX_SHIFT, zone),
        datetime.timedelta(0),
    )
    walk = _cron(spec.cron, _wall(after, zone) - back)
    follows_clock = walk.expanded[1] == ["*"]
    best = math.inf
    while True:
        wall = walk.get_next(datetime.datetime)
        instants = _instants(wall, zone, follows_clock)
        best = min([best, *(t for t in instants if t > after)])
        if instants[0] > after:  # later wall times map to later instants
            return best


def latest_slot(spec: Spec, next_at: float, now: float) -> float | None:
    """The latest slot in `[next_at, now]` (`next_at` being a slot), or None if none is due."""
    if now < next_at:
        return None
    if spec.every is not None:
        slot = spec.anchor + math.floor((now - spec.anchor) / spec.every) * spec.every
        return max(slot, next_at)
    import zoneinfo

    zone = zoneinfo.ZoneInfo(spec.tz)
    back = _cron(spec.cron, _wall(now, zone) + datetime.timedelta(seconds=1))
    guess = _instants(back.get_prev(datetime.datetime), zone, follows_clock=False)[0]
    slot = guess if next_at <= guess <= now else next_at
    while (later := next_slot(spec, slot)) <= now:  # a slot of the repeated hour (rare)
        slot = later
    return slot


def due(spec: Spec, next_at: float, now: float, missed: str) -> tuple[float | None, float]:
    """(the slot to fire now or None, the schedule's next `next_at`).

    At most one job per call: after downtime, `missed="once"` fires the latest missed slot,
    `missed="skip"` fires nothing unless that slot is less than `LATE` seconds old. Either
    way the schedule goes on from the first slot after `now`.

    >>> due(Spec(10.0, None, "UTC", anchor=0.0), 10.0, 95.0, "once")
    (90.0, 100.0)
    """
    slot = latest_slot(spec, next_at, now)
    if slot is None:
        return None, next_at
    fire = None if missed == "skip" and now - slot > LATE else slot
    return fire, next_slot(spec, now)


def slot_text(slot: float) -> str:
    """A slot as a UTC ISO time, the way it appears in a firing's key.

    >>> slot_text(7200.0)
    '1970-01-01T02:00:00Z'
    """
    when = datetime.datetime.fromtimestamp(slot, datetime.UTC)
    text = when.isoformat(timespec="milliseconds" if when.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def interval_text(seconds: float) -> str:
    """`5400.0` -> `1h30m` (the short form `every=` accepts).

    >>> interval_text(5400.0), interval_text(1.5), interval_text(86400)
    ('1h30m', '1.5s', '1d')
    """
    whole = int(seconds)
    if whole != seconds or whole == 0:
        return f"{seconds:g}s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        n, whole = divmod(whole, size)
        out += f"{n}{unit}" if n else ""
    return out


def missed_policy(value: Any) -> str:
    if value not in MISSED:
        raise InvalidArgument(
            f"missed must be 'once' (after downtime, fire once for the latest missed slot) "
            f"or 'skip' (fire nothing for missed slots), not {value!r}"
        )
    return str(value)


# --------------------------------------------------------------------------- time zones
def _zone(tz: Any) -> tuple[str, str]:
    if tz is None:
        local = local_zone()
        return (local, "local") if local else ("UTC", "UTC (local zone unknown)")
    if not isinstance(tz, str):
        raise InvalidArgumentType(
            f"tz must be an IANA time zone name such as 'Europe/Berlin' or None (this "
            f"machine's zone), not {type(tz).__name__} {tz!r}"
        )
    if not _known(tz):
        raise InvalidArgument(
            f"tz must be an IANA time zone name such as 'Europe/Berlin', 'America/New_York' "
            f"or 'UTC' (see zoneinfo.available_timezones()), not {tz!r}"
        )
    return tz, "given"


def local_zone() -> str | None:
    """This machine's IANA zone name ($TZ, /etc/localtime, /etc/timezone), or None."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    try:
        target = os.path.realpath("/etc/localtime")
        candidates.append(target.partition("zoneinfo/")[2])
    except OSError:
        pass
    try:
        with open("/etc/timezone") as f:
            candidates.append(f.read().strip())
    except OSError:
        pass
    return next((name for name in candidates if name and _known(name)), None)


def _known(name: str) -> bool:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _wall(t: float, zone: zoneinfo.ZoneInfo) -> datetime.datetime:
    """The naive wall-clock time in `zone` at instant `t`."""
    return datetime.datetime.fromtimestamp(t, zone).replace(tzinfo=None)


def _offset(t: float, zone: zoneinfo.ZoneInfo) -> datetime.timedelta:
    offset = datetime.datetime.fromtimestamp(t, zone).utcoffset()
    return offset or datetime.timedelta(0)


def _instants(wall: datetime.datetime, zone: zoneinfo.ZoneInfo, follows_clock: bool) -> list[float]:
    """The instants a wall-clock slot fires at, earliest first (see the module docstring)."""
    first = wall.replace(tzinfo=zone, fold=0).timestamp()
    second = wall.replace(tzinfo=zone, fold=1).timestamp()
    if first == second:
        return [first]
    if _wall(first, zone) == wall:  # it happens twice: the clocks went back
        return [first, second] if follows_clock else [first]
    return [_clocks_jump(wall, zone, min(first, second), max(first, second))]


def _clocks_jump(wall: datetime.datetime, zone: zoneinfo.ZoneInfo, lo: float, hi: float) -> float:
    """The first instant in `[lo, hi]` whose wall clock reads `wall` or later: the end of
    the spring-forward gap `wall` falls in (transitions fall on whole seconds)."""
    low, high = math.floor(lo), math.ceil(hi)
    while low < high:
        mid = (low + high) // 2
        if _wall(mid, zone) >= wall:
            high = mid
        else:
            low = mid + 1
    return float(low)


# --------------------------------------------------------------------------- croniter
def _check_cron(cron: Any) -> str:
    if not isinstance(cron, str):
        raise InvalidArgumentType(f"cron must be {CRON_FORMS}, not {type(cron).__name__}")
    try:
        _cron(cron, datetime.datetime(2000, 1, 1))
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidArgument(f"cron must be {CRON_FORMS}, not {cron!r} ({exc})") from None
    return cron


def _cron(expr: str | None, start: datetime.datetime) -> Any:
    from croniter import croniter

    return croniter(expr, start)
