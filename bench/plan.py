"""What the benchmark runs: sizes per mode, sections (one measure, several contenders),
the fixtures they read, and the targets from the product contract."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Params = dict[str, Any]
MB = 1024 * 1024
NAP_SECONDS = 0.010  # the sleep of a "nap" job

RAW, FLOOR, HUEY = "raw", "floor", "huey"
THREAD, PROCESS, WORKER = "nbjobs-thread", "nbjobs-process", "nbjobs-worker"
POOLS = (RAW, FLOOR, HUEY, THREAD, PROCESS, WORKER)


@dataclass(frozen=True)
class Settings:
    """Sizes of one mode. `reps`: runs of cheap measures, `heavy_reps` of the big ones."""

    trivial_jobs: int
    nap_jobs: int
    submits: int
    store_jobs: int
    large_bytes: int
    memory_results: int
    memory_bytes: int
    map_items: int
    map_bytes: int
    reps: int
    heavy_reps: int
    timeout_s: float
    workers: int = 4
    failed_jobs: int = 10
    key_every: int = 100  # one job in key_every of the big store has a key
    startup_rounds: int = 15  # interleaved rounds of the start-up commands per run
    window_procs: int = 8  # processes submitting keyless jobs, one SIGKILLed,
    window_loop_procs: int = 4  # (those submitting in a tight loop)
    window_kills: int = 10  # this many times
    window_run_s: float = 1.0  # after they submitted for this long
    idle_s: float = 10.0  # a shown panel left idle this long
    busy_jobs: int = 400  # then this many 10 ms jobs finish in another process


FULL = Settings(
    trivial_jobs=2_000,
    nap_jobs=200,
    submits=10_000,
    store_jobs=100_000,
    large_bytes=500 * MB,
    memory_results=1_000,
    memory_bytes=10 * MB,
    map_items=1_000,
    map_bytes=100 * MB,
    reps=3,
    heavy_reps=3,
    timeout_s=900,
)
SMOKE = Settings(
    trivial_jobs=200,
    nap_jobs=20,
    submits=300,
    store_jobs=2_000,
    large_bytes=5 * MB,
    memory_results=20,
    memory_bytes=1 * MB,
    map_items=20,
    map_bytes=1 * MB,
    reps=1,
    heavy_reps=1,
    timeout_s=300,
    window_procs=2,
    window_loop_procs=1,
    window_kills=2,
    window_run_s=0.3,
    idle_s=2.0,
    busy_jobs=40,
)


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    fmt: str


@dataclass(frozen=True)
class Fixture:
    """A folder built once per run by `measure` (one child per contender), then read."""

    name: str
    measure: str
    contenders: tuple[str, ...]
    params: Params


@dataclass(frozen=True)
class Section:
    name: str
    title: str
    measure: str
    contenders: tuple[str, ...]
    params: Params
    reps: int
    columns: tuple[Column, ...]
    fixture: Fixture | None = None
    notes: tuple[str, ...] = field(default=())


def _throughput_columns(extra: tuple[Column, ...] = ()) -> tuple[Column, ...]:
    return (
        Column("jobs_per_s", "jobs/s", ",.0f"),
        Column("cpu_ms_per_job", "CPU ms/job", ".3f"),
        *extra,
    )


LATENCY_COLUMNS = (
    Column("p50_us", "p50 µs", ",.1f"),
    Column("p99_us", "p99 µs", ",.1f"),
    Column("mean_us", "mean µs", ",.1f"),
    Column("max_us", "max µs", ",.0f"),
)
STORE_OPS = ("open", "stats", "get", "jobs", "jobs_failed", "panel")
STORE_LABELS = {
    "jobs": "jobs(limit=50)",
    "jobs_failed": 'jobs("failed", 50)',
    "get": "get(key)",
    "panel": "panel refresh",
}


def ideal_nap_rate(s: Settings) -> float:
    return s.workers / NAP_SECONDS


def sections(s: Settings) -> list[Section]:
    return [
        *_throughput_sections(s),
        *_latency_sections(s),
        _store_section(s),
        _startup_section(s),
        _groups_section(s),
        _idle_section(s),
        _large_section(s),
        *_memory_sections(s),
        *_window_sections(s),
    ]


def _throughput_sections(s: Settings) -> list[Section]:
    base = {"workers": s.workers}
    return [
        Section(
            "trivial",
            f"Throughput: {s.trivial_jobs:,} trivial jobs on {s.workers} workers",
            "throughput",
            POOLS,
            base | {"n": s.trivial_jobs, "job": "trivial"},
            s.reps,
            _throughput_columns(),
        ),
        Section(
            "nap",
            f"Throughput: {s.nap_jobs:,} jobs sleeping 10 ms on {s.workers} workers",
            "throughput",
            POOLS,
            base | {"n": s.nap_jobs, "job": "nap"},
            s.reps,
            _throughput_columns((Column("ideal_fraction", "of ideal", ".3f"),)),
            notes=(f"ideal: {s.workers} workers / 10 ms = {ideal_nap_rate(s):,.0f} jobs/s",),
        ),
    ]


def _latency_sections(s: Settings) -> list[Section]:
    base = {"workers": s.workers, "n": s.submits}
    return [
        Section(
            "submit",
            f"submit() latency in the caller, no key ({s.submits:,} submits)",
            "submit_latency",
            POOLS,
            base | {"keyed": False},
            s.reps,
            LATENCY_COLUMNS,
            notes=("raw: ThreadPoolExecutor.submit; huey: enqueue (calling the task)",),
        ),
        Section(
            "submit_key",
            f"submit() latency in the caller, unique key each ({s.submits:,} submits)",
            "submit_latency",
            (FLOOR, THREAD),
            base | {"keyed": True},
            s.reps,
            LATENCY_COLUMNS,
            notes=("floor: a diskcache add() claims the key, then the record is set",),
        ),
    ]


def _store_fixture(s: Settings) -> Fixture:
    return Fixture(
        "store",
        "build_store",
        (FLOOR, THREAD),
        {
            "n": s.store_jobs,
            "fail_every": s.store_jobs // s.failed_jobs,
            "key_every": s.key_every,
            "workers": s.workers,
        },
    )


def _store_section(s: Settings) -> Section:
    fixture = _store_fixture(s)
    columns = tuple(
        Column(f"{op}_ms", STORE_LABELS.get(op, op) + " ms", ",.2f") for op in STORE_OPS
    )
    return Section(
        "store",
        f"A store of {s.store_jobs:,} finished jobs ({s.failed_jobs} failed, "
        f"1 in {s.key_every} keyed)",
        "store_ops",
        (FLOOR, THREAD),
        fixture.params | {"key": f"job-{s.store_jobs // 2 + s.key_every // 2}"},
        s.reps,
        columns,
        fixture,
        notes=(
            "floor: the same reads done naively on diskcache (scans: no index); its panel "
            "refresh is stats() plus a page of 20",
        ),
    )


#: Imported by `import nbjobs` they would cost every kernel, worker and CLI call; each is
#: imported where it is first used (tenacity by retry policies, croniter by cron schedules...).
HEAVY_MODULES = (
    "croniter", "dateutil", "ipywidgets", "IPython", "numpy", "pandas", "dask", "tenacity",
)  # fmt: skip
STARTUP_COMMANDS = ("pass", "import", "stats", "ls")
STARTUP_LABELS = {
    "pass": "python -c pass",
    "import": "import nbjobs",
    "stats": "nbjobs stats",
    "ls": "nbjobs ls",
}


def _startup_section(s: Settings) -> Section:
    fixture = _store_fixture(s)
    columns = tuple(Column(f"{c}_ms", STARTUP_LABELS[c] + " ms", ",.1f") for c in STARTUP_COMMANDS)
    ratios = tuple(
        Column(f"{c}_x", STARTUP_LABELS[c] + " / pass", ".2f") for c in STARTUP_COMMANDS[1:]
    )
    return Section(
        "startup",
        f"Start-up: `import nbjobs`, and the CLI on the store of {s.store_jobs:,} jobs "
        "(wall time of fresh processes)",
        "startup",
        (THREAD,),
        fixture.params | {"rounds": s.startup_rounds, "heavy": HEAVY_MODULES},
        s.reps,
        (*columns, *ratios, Column("heavy_modules", "heavy modules loaded", ",.0f")),
        fixture,
        notes=(
            f"each run: {s.startup_rounds} rounds of the four commands interleaved, medians; "
            "bytecode compiled first (as an installed package has it)",
            "heavy modules: how many of " + ", ".join(HEAVY_MODULES) + " `import nbjobs` loads",
        ),
    )


def _groups_fixture(s: Settings) -> Fixture:
    """A store of `store_jobs` finished jobs in 100 maps (built once, read by two sections)."""
    params = {
        "n": s.store_jobs,
        "groups": 100,
        "fail_every": s.store_jobs // s.failed_jobs,
        "workers": s.workers,
    }
    return Fixture("groups", "build_groups", (THREAD,), params)


def _groups_section(s: Settings) -> Section:
    fixture = _groups_fixture(s)
    return Section(
        "groups",
        f"A store of {s.store_jobs:,} finished jobs in 100 maps: the panel with its group rows",
        "panel_groups",
        (THREAD,),
        fixture.params,
        s.reps,
        (Column("open_ms", "open ms", ",.2f"), Column("panel_ms", "panel refresh ms", ",.2f")),
        fixture,
    )


def _idle_section(s: Settings) -> Section:
    fixture = _groups_fixture(s)
    return Section(
        "panel_idle",
        f"The panel shown on a store of {s.store_jobs:,} jobs in 100 maps: the kernel's CPU",
        "panel_idle",
        (THREAD,),
        fixture.params | {"idle_s": s.idle_s, "busy_jobs": s.busy_jobs, "busy_workers": 2},
        s.reps,
        (
            Column("idle_pct", "idle % of a core", ".2f"),
            Column("busy_pct", "busy % of a core", ".2f"),
            Column("busy_updates", "updates sent", ",.0f"),
            Column("lag_ms", "last counts shown after ms", ",.0f"),
        ),
        fixture,
        notes=(
            f"idle: the {s.idle_s:g} s after show(), nothing written (its fastest polling); "
            f"busy: while another process runs {s.busy_jobs} jobs of 10 ms on 2 threads "
            "(that process's CPU not counted); last counts: from its exit to the panel's pills",
        ),
    )


def _large_section(s: Settings) -> Section:
    return Section(
        "large",
        f"A {s.large_bytes // MB:,} MB NumPy result: write, then read back",
        "large_result",
        (RAW, THREAD),
        {"nbytes": s.large_bytes},
        s.heavy_reps,
        (
            Column("write_s", "write s", ".3f"),
            Column("read_s", "read s", ".3f"),
            Column("write_mb_s", "write MB/s", ",.0f"),
            Column("read_mb_s", "read MB/s", ",.0f"),
        ),
        notes=("raw: pickle.dump / pickle.load to a file; nbjobs: submit() until done, result()",),
    )


def _memory_sections(s: Settings) -> list[Section]:
    fixture = Fixture(
        "results",
        "build_results",
        (THREAD,),
        {"count": s.memory_results, "nbytes": s.memory_bytes, "workers": s.workers},
    )
    return [
        Section(
            "memory",
            f"Kernel RSS reading {s.memory_results:,} results of "
            f"{s.memory_bytes // MB} MB one by one",
            "read_results",
            (THREAD,),
            fixture.params,
            1,  # one contender, one RSS reading: repeating it would read 10 GB more each time
            (
                Column("rss_base_mb", "RSS before MB", ",.0f"),
                Column("rss_growth_mb", "growth MB", "+,.1f"),
                Column("peak_growth_mb", "peak growth MB", "+,.1f"),
                Column("read_mb_s", "read MB/s", ",.0f"),
            ),
            fixture,
        ),
        Section(
            "map",
            f"Kernel RSS: map over {s.map_items:,} items sharing one "
            f"{s.map_bytes // MB} MB argument",
            "map_shared",
            (THREAD,),
            {"count": s.map_items, "nbytes": s.map_bytes, "workers": s.workers},
            s.heavy_reps,
            (
                Column("rss_growth_mb", "growth MB", "+,.1f"),
                Column("store_growth_mb", "store growth MB", "+,.1f"),
                Column("jobs_per_s", "jobs/s", ",.0f"),
            ),
        ),
    ]


def _window_sections(s: Settings) -> list[Section]:
    columns = (
        Column("median_oldest_lost_ms", "median ms", ",.1f"),
        Column("max_oldest_lost_ms", "max ms", ",.1f"),
        Column("median_lost", "lost per kill", ",.0f"),
    )
    base = {"run_s": s.window_run_s, "kills": s.window_kills}
    note = (
        "the age of the oldest returned keyless submit missing from the store after one "
        f"submitting process is SIGKILLed (median and max over {s.window_kills} kills)",
    )
    return [
        Section(
            "window",
            f"Keyless durability window: {s.window_procs} processes each submitting every 2 ms",
            "window",
            (THREAD,),
            base | {"procs": s.window_procs, "interval": 0.002},
            1,
            columns,
            notes=note,
        ),
        Section(
            "window_loop",
            f"Keyless durability window: {s.window_loop_procs} "
            f"process{'es' if s.window_loop_procs != 1 else ''} submitting in a tight loop",
            "window",
            (THREAD,),
            base | {"procs": s.window_loop_procs, "interval": 0.0},
            1,
            columns,
            notes=note,
        ),
    ]


# ---------------------------------------------------------------------- targets
@dataclass(frozen=True)
class Ref:
    section: str
    contender: str
    metric: str


@dataclass(frozen=True)
class Target:
    """`value / versus` compared with `bound` (`at_least` or at most / below)."""

    label: str
    value: Ref
    versus: Ref | float
    bound: float
    at_least: bool
    unit: str


def _relative(label: str, section: str, metric: str, other: str, bound: float) -> Target:
    """nbjobs-thread's `metric` divided by `other`'s, at least `bound`."""
    return Target(label, Ref(section, THREAD, metric), Ref(section, other, metric), bound, True, "")


def _at_least(label: str, section: str, metric: str, reference: float, bound: float) -> Target:
    """nbjobs-thread's `metric` divided by a fixed `reference`, at least `bound`."""
    return Target(label, Ref(section, THREAD, metric), reference, bound, True, "jobs/s")


def _at_most(label: str, section: str, metric: str, limit: float, unit: str) -> Target:
    """nbjobs-thread's `metric` divided by a fixed `limit`, at most 1."""
    return Target(label, Ref(section, THREAD, metric), limit, 1.0, False, unit)


def _startup_ratio(command: str, bound: float) -> Target:
    """The wall time of `command` at most `bound` times `python -c pass`'s (same runs)."""
    label = f"{STARTUP_LABELS[command]}: ≤ {bound:g}x python -c pass"
    value, versus = Ref("startup", THREAD, f"{command}_ms"), Ref("startup", THREAD, "pass_ms")
    return Target(label, value, versus, bound, False, "")


def targets(s: Settings) -> list[Target]:
    store_ops = (
        _at_most(f"store: {STORE_LABELS.get(op, op)} < 10 ms", "store", f"{op}_ms", 10.0, "ms")
        for op in STORE_OPS
    )
    return [
        _relative("thread throughput ≥ 1.0x floor", "trivial", "jobs_per_s", FLOOR, 1.0),
        _at_most("panel refresh, 100 maps < 10 ms", "groups", "panel_ms", 10.0, "ms"),
        _at_most("panel shown, idle: < 2% of a core", "panel_idle", "idle_pct", 2.0, "%"),
        _relative("thread throughput ≥ 4x huey", "trivial", "jobs_per_s", HUEY, 4.0),
        _at_most("submit, no key: p50 ≤ 20 µs", "submit", "p50_us", 20.0, "µs"),
        _at_most("submit, no key: p99 ≤ 1 ms", "submit", "p99_us", 1000.0, "µs"),
        _at_most("submit, with key: p50 ≤ 300 µs", "submit_key", "p50_us", 300.0, "µs"),
        _at_least("10 ms jobs ≥ 0.95 of ideal", "nap", "jobs_per_s", ideal_nap_rate(s), 0.95),
        *store_ops,
        Target(
            "import nbjobs loads no heavy module (" + ", ".join(HEAVY_MODULES) + ")",
            Ref("startup", THREAD, "heavy_modules"),
            1.0,
            0.0,
            False,
            "",
        ),
        _startup_ratio("stats", 4.0),
        _startup_ratio("ls", 4.0),
        _relative("large result write ≥ 0.8x pickle", "large", "write_mb_s", RAW, 0.8),
        _relative("large result read ≥ 0.8x pickle", "large", "read_mb_s", RAW, 0.8),
        _at_most("RSS growth reading results < 50 MB", "memory", "rss_growth_mb", 50.0, "MB"),
        _at_most("RSS growth, map sharing an argument < 50 MB", "map", "rss_growth_mb", 50.0, "MB"),
        _at_most(
            "map: shared argument stored once (store growth < 2x its size)",
            "map",
            "store_growth_mb",
            2 * s.map_bytes / MB,
            "MB",
        ),
    ]
