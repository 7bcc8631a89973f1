"""Run one measure of one contender in this (fresh) process and print its metrics as JSON.

    python bench/contenders.py CONTENDER MEASURE PARAMS_JSON

The last line of stdout is a JSON object: the metrics, or {"skipped": reason} when the
contender does not take part. `run.py` starts one such process per repetition.
"""

from __future__ import annotations

import gc
import heapq
import json
import os
import pickle
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol

import keyless_window
import numpy as np
import numpy.typing as npt
import panel_idle
import psutil
import workloads
from pools import (
    FloorPool,
    Handle,
    NbjobsPool,
    Pool,
    Unsupported,
    open_floor_cache,
    open_pool,
)

import nbjobs

# `import nbjobs` loads its names on first use: take `Store` now, so that the timings of opening
# a store below do not include importing the library (the 'startup' section measures that).
Store = nbjobs.Store

Params = dict[str, Any]
Metrics = dict[str, float | int | str]
MB = 1024 * 1024
JOBS: dict[str, Callable[[int], int]] = {"trivial": workloads.trivial, "nap": workloads.nap}


# ---------------------------------------------------------------------- helpers
def cpu_seconds() -> float:
    """CPU time of this process (all its threads) and of its live child processes."""
    me = psutil.Process()
    total = time.process_time()
    for child in me.children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def rss_mb() -> float:
    return float(psutil.Process().memory_info().rss) / MB


def folder_mb(path: Path) -> float:
    """Size of every file below `path` (a store: cache.db, its WAL, blobs/)."""
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / MB


def expect(what: str, got: object, wanted: object) -> None:
    if got != wanted:
        raise RuntimeError(f"{what}: expected {wanted!r}, got {got!r}")


def run_all(pool: Pool, fn: Callable[..., Any], n: int, failures: int = 0) -> None:
    """Submit fn(i) for i < n and wait for every result."""
    handles = [pool.submit(fn, i) for i in range(n)]
    expect("failed jobs", pool.collect(handles), failures)


def percentile_us(samples_ns: Sequence[int], q: int) -> float:
    return statistics.quantiles(samples_ns, n=100, method="inclusive")[q - 1] / 1000


def workdir(params: Params) -> Path:
    return Path(params["workdir"])


# ---------------------------------------------------------------------- 1. throughput
def throughput(contender: str, params: Params) -> Metrics:
    """Jobs per second and CPU per job for `n` jobs of one kind on `workers` workers."""
    n, workers, fn = params["n"], params["workers"], JOBS[params["job"]]
    with open_pool(contender, workdir(params), workers) as pool:
        run_all(pool, fn, workers)  # warm: threads started, function seen once
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        run_all(pool, fn, n)
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    metrics: Metrics = {"jobs_per_s": n / wall, "cpu_ms_per_job": 1000 * cpu / n, "wall_s": wall}
    if fn is workloads.nap:
        metrics["ideal_fraction"] = (n / wall) / (workers / workloads.NAP_SECONDS)
    return metrics


# ---------------------------------------------------------------------- 2. submit latency
def submit_latency(contender: str, params: Params) -> Metrics:
    """Latency of `submit()` in the caller, small arguments, function submitted before.

    Jobs run meanwhile, as they would; they are not waited for (throughput does that).
    """
    n, keyed = params["n"], params["keyed"]
    with open_pool(contender, workdir(params), params["workers"]) as pool:
        if keyed and not pool.keys:
            raise Unsupported(f"{contender} has no idempotency keys")
        run_all(pool, workloads.trivial, 1)
        samples = []
        for i in range(n):
            key = f"key-{i}" if keyed else None
            t0 = time.perf_counter_ns()
            pool.submit(workloads.trivial, i, key=key)
            samples.append(time.perf_counter_ns() - t0)
    return {
        "p50_us": percentile_us(samples, 50),
        "p99_us": percentile_us(samples, 99),
        "mean_us": statistics.fmean(samples) / 1000,
        "max_us": max(samples) / 1000,
    }


# ---------------------------------------------------------------------- 3. a big store
def build_store(contender: str, params: Params) -> Metrics:
    """Fill a store with `n` finished jobs: one in `fail_every` failed (i = 0 mod fail_every),
    one in `key_every` keyed job-<i> (i = key_every/2 mod key_every, so never a failed one)."""
    n, fail_every, key_every = params["n"], params["fail_every"], params["key_every"]
    fn = partial(workloads.trivial_or_fail, fail_every=fail_every)
    keys = (f"job-{i}" if i % key_every == key_every // 2 else None for i in range(n))
    with open_pool(contender, workdir(params), params["workers"]) as pool:
        if not pool.keys:
            raise Unsupported(f"{contender} keeps no store")
        t0 = time.perf_counter()
        failed = pool.fill(fn, ((i,) for i in range(n)), keys)
        expect("failed jobs", failed, -(-n // fail_every))
        wall = time.perf_counter() - t0
    return {"jobs": n, "build_s": wall, "jobs_per_s": n / wall}


class StoreLike(Protocol):
    def stats(self) -> dict[str, int]: ...

    def get(self, key: str) -> object: ...

    def jobs(self, *, status: str | None = None, limit: int = 100) -> Sequence[object]: ...

    def close(self) -> None: ...


class NaiveFloorStore:
    """The floor's records read back the way diskcache allows without indexes: by scanning."""

    def __init__(self, path: Path) -> None:
        self.cache = open_floor_cache(path)

    def _records(self) -> Iterator[dict[str, Any]]:
        for k in self.cache:  # rowid order; iterkeys() is quadratic (one scan per 100 keys)
            if k.startswith("job:"):
                yield self.cache[k]

    def stats(self) -> dict[str, int]:
        return dict(Counter(rec["status"] for rec in self._records()))

    def get(self, key: str) -> object:
        return next(rec for rec in self._records() if rec["key"] == key)

    def jobs(self, *, status: str | None = None, limit: int = 100) -> Sequence[object]:
        found = (rec for rec in self._records() if status in (None, rec["status"]))
        return heapq.nlargest(limit, found, key=itemgetter("created"))

    def close(self) -> None:
        self.cache.close()


STORE_OPENERS: dict[str, Callable[[Path], StoreLike]] = {
    "nbjobs-thread": lambda folder: Store(folder / NbjobsPool.folder),
    "floor": lambda folder: NaiveFloorStore(folder / FloorPool.folder),
}


def timed_ms(fn: Callable[[], Any], budget_s: float = 0.3, calls: int = 5) -> tuple[float, Any]:
    """Median time of up to `calls` calls (fewer past `budget_s`), and the last answer."""
    times: list[float] = []
    answer = None
    while len(times) < calls and sum(times) < budget_s:
        t0 = time.perf_counter()
        answer = fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), answer


def _panel_refresh(contender: str, store: Any) -> Callable[[], Any]:
    """One refresh of the live panel, without a browser (floor: counts plus one page)."""
    if contender == "floor":
        return lambda: (store.stats(), store.jobs(limit=20))
    from nbjobs.widgets.panel_view import Panel

    return Panel(store).refresh


def store_ops(contender: str, params: Params) -> Metrics:
    """Open a store of `n` finished jobs and read it: counts, one key, two pages."""
    if contender not in STORE_OPENERS:
        raise Unsupported(f"{contender} keeps no store")
    n, failed = params["n"], -(-params["n"] // params["fail_every"])
    open_ms, store = timed_ms(partial(STORE_OPENERS[contender], workdir(params)), calls=1)
    ops: dict[str, Callable[[], Any]] = {
        "stats": store.stats,
        "get": partial(store.get, params["key"]),
        "jobs": partial(store.jobs, limit=50),
        "jobs_failed": partial(store.jobs, status="failed", limit=50),
        "panel": _panel_refresh(contender, store),
    }
    metrics: Metrics = {"open_ms": open_ms}
    answers = {}
    for name, op in ops.items():
        metrics[f"{name}_ms"], answers[name] = timed_ms(op)
    store.close()
    expect("jobs counted", sum(answers["stats"].values()), n)
    expect("failed jobs listed", len(answers["jobs_failed"]), min(failed, 50))
    expect("jobs listed", len(answers["jobs"]), min(n, 50))
    return metrics


def build_groups(contender: str, params: Params) -> Metrics:
    """Fill a store with `n` finished jobs in `groups` maps (one in `fail_every` failed)."""
    if contender != "nbjobs-thread":
        raise Unsupported(f"{contender} has no map")
    n, groups = params["n"], params["groups"]
    fn = partial(workloads.trivial_or_fail, fail_every=params["fail_every"])
    per = n // groups
    t0 = time.perf_counter()
    with nbjobs.Store(workdir(params) / "groups", workers=params["workers"]) as store:
        for g in range(groups):
            jobs = store.map(fn, range(g * per, (g + 1) * per))
            nbjobs.wait(jobs)
    wall = time.perf_counter() - t0
    return {"jobs": n, "build_s": wall, "jobs_per_s": n / wall}


def panel_groups(contender: str, params: Params) -> Metrics:
    """One refresh of the panel on the store of `build_groups`."""
    from nbjobs.widgets.panel_view import Panel

    open_ms, store = timed_ms(lambda: Store(workdir(params) / "groups"), calls=1)
    panel = Panel(store)
    panel_ms, _ = timed_ms(panel.refresh)
    expect("jobs counted", sum(store.stats().values()), params["n"])
    store.close()
    return {"open_ms": open_ms, "panel_ms": panel_ms}


def panel_idling(contender: str, params: Params) -> Metrics:
    """The shown panel's CPU on the store of `build_groups`, idle then busy (`panel_idle.py`)."""
    _require_nbjobs_thread(contender)
    return dict(panel_idle.measure(workdir(params) / "groups", params))


#: The console script's body (`nbjobs ...` runs this), without depending on where it is installed.
CLI = "import sys; from nbjobs.cli.entry import main; sys.exit(main())"


def startup(contender: str, params: Params) -> Metrics:
    """Wall time of fresh interpreters: `python -c pass`, `import nbjobs`, and `nbjobs stats`
    and `nbjobs ls` on the store; `rounds` rounds interleaved, medians. Also how many of the
    `heavy` modules `import nbjobs` loads."""
    if contender != "nbjobs-thread":
        raise Unsupported(f"{contender}: this measure is for nbjobs only")
    store, py = str(workdir(params) / NbjobsPool.folder), sys.executable
    commands = {
        "pass": [py, "-c", "pass"],
        "import": [py, "-c", "import nbjobs"],
        "stats": [py, "-c", CLI, "--store", store, "stats"],
        "ls": [py, "-c", CLI, "--store", store, "ls"],
    }
    # Bytecode is written (round 0, not timed) and read, as an installed package has it.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times: dict[str, list[float]] = {name: [] for name in commands}
    for done in range(params["rounds"] + 1):
        for name, cmd in commands.items():
            t0 = time.perf_counter()
            subprocess.run(cmd, stdout=subprocess.DEVNULL, env=env, check=True)
            if done:
                times[name].append(1000 * (time.perf_counter() - t0))
    metrics: Metrics = {f"{name}_ms": statistics.median(t) for name, t in times.items()}
    for name in ("import", "stats", "ls"):
        metrics[f"{name}_x"] = statistics.median(times[name]) / statistics.median(times["pass"])
    probe = f"import sys, nbjobs; print(sum(m in sys.modules for m in {tuple(params['heavy'])!r}))"
    out = subprocess.run([py, "-c", probe], capture_output=True, text=True, env=env, check=True)
    metrics["heavy_modules"] = int(out.stdout)
    return metrics


# ---------------------------------------------------------------------- 4. large results
def _nbjobs_round_trip(folder: Path, nbytes: int) -> tuple[float, float, Any]:
    with open_pool("nbjobs-thread", folder, 1) as pool:
        run_all(pool, workloads.trivial, 1)
        t0 = time.perf_counter()
        job = pool.submit(workloads.big_array, nbytes)
        job.wait()
        t1 = time.perf_counter()
        value = job.result()
        return t1 - t0, time.perf_counter() - t1, value


def _pickle_round_trip(folder: Path, nbytes: int) -> tuple[float, float, Any]:
    path = folder / "raw.pickle"
    t0 = time.perf_counter()
    with path.open("wb") as f:
        pickle.dump(workloads.big_array(nbytes), f, protocol=pickle.HIGHEST_PROTOCOL)
    t1 = time.perf_counter()
    with path.open("rb") as f:
        value = pickle.load(f)
    return t1 - t0, time.perf_counter() - t1, value


ROUND_TRIPS: dict[str, Callable[[Path, int], tuple[float, float, Any]]] = {
    "nbjobs-thread": _nbjobs_round_trip,
    "raw": _pickle_round_trip,
}


def large_result(contender: str, params: Params) -> Metrics:
    """Write then read back one big NumPy array (built before the clock starts)."""
    if contender not in ROUND_TRIPS:
        raise Unsupported(f"{contender} has no large-result path")
    nbytes = params["nbytes"]
    original = workloads.big_array(nbytes)
    write_s, read_s, value = ROUND_TRIPS[contender](workdir(params), nbytes)
    expect("array read back", np.array_equal(value, original), True)
    return {
        "write_s": write_s,
        "read_s": read_s,
        "write_mb_s": nbytes / MB / write_s,
        "read_mb_s": nbytes / MB / read_s,
    }


# ---------------------------------------------------------------------- 5. kernel memory
def _require_nbjobs_thread(contender: str) -> None:
    if contender != "nbjobs-thread":
        raise Unsupported(f"{contender}: this measure is for nbjobs' kernel only")


def build_results(contender: str, params: Params) -> Metrics:
    """Fill a store with `count` results of `nbytes` each, keyed mem-<i>."""
    _require_nbjobs_thread(contender)
    count, nbytes = params["count"], params["nbytes"]
    with open_pool(contender, workdir(params), params["workers"]) as pool:
        t0 = time.perf_counter()
        handles = [pool.submit(workloads.filled, nbytes, i, key=f"mem-{i}") for i in range(count)]
        nbjobs.wait(handles)
        expect("jobs that failed", sum(job.status != "succeeded" for job in handles), 0)
        return {"results": count, "build_s": time.perf_counter() - t0}


def window(contender: str, params: Params) -> Metrics:
    """How old a returned keyless submit can be and still be lost to a SIGKILL
    (`keyless_window.py`: `procs` processes submitting, one killed, `kills` times)."""
    _require_nbjobs_thread(contender)
    return dict(
        keyless_window.measure(
            params["procs"], params["interval"], params["run_s"], params["kills"], dict(os.environ)
        )
    )


def _read_result(i: int) -> npt.NDArray[np.float64]:
    value: npt.NDArray[np.float64] = nbjobs.get(f"mem-{i}").result()
    return value


def read_results(contender: str, params: Params) -> Metrics:
    """RSS of this process while reading `count` results one by one, dropping each.

    One result is read before the baseline so one-off costs (allocator arenas, caches
    warmed by a first read) are not counted as growth.
    """
    _require_nbjobs_thread(contender)
    count, nbytes = params["count"], params["nbytes"]
    with open_pool(contender, workdir(params), params["workers"]):
        expect("bytes read", _read_result(0).nbytes, nbytes)
        gc.collect()
        base = peak = rss_mb()
        t0 = time.perf_counter()
        for i in range(count):
            expect("bytes read", _read_result(i).nbytes, nbytes)
            peak = max(peak, rss_mb())
        read_s = time.perf_counter() - t0
        gc.collect()
        return {
            "rss_base_mb": base,
            "rss_growth_mb": rss_mb() - base,
            "peak_growth_mb": peak - base,
            "read_mb_s": count * nbytes / MB / read_s,
        }


def map_shared(contender: str, params: Params) -> Metrics:
    """RSS growth of a map over `count` items that all share one big argument, and how
    much the store folder grew (the shared argument should be stored once)."""
    _require_nbjobs_thread(contender)
    nb_map: Callable[..., list[Handle]] | None = getattr(nbjobs, "map", None)
    if nb_map is None:
        raise Unsupported("needs nbjobs.map (not built yet)")
    count = params["count"]
    with open_pool(contender, workdir(params), params["workers"]) as pool:
        store = nbjobs.default_store()
        shared = workloads.filled(params["nbytes"], 1)
        store.flush()
        gc.collect()
        base, folder, t0 = rss_mb(), folder_mb(store.path), time.perf_counter()
        handles = nb_map(partial(workloads.shared_sum, shared), range(count))
        expect("failed jobs", pool.collect(handles), 0)
        wall = time.perf_counter() - t0
        store.flush()
        gc.collect()
        return {
            "rss_growth_mb": rss_mb() - base,
            "store_growth_mb": folder_mb(store.path) - folder,
            "jobs_per_s": count / wall,
        }


MEASURES: dict[str, Callable[[str, Params], Metrics]] = {
    "throughput": throughput,
    "submit_latency": submit_latency,
    "build_store": build_store,
    "store_ops": store_ops,
    "startup": startup,
    "build_groups": build_groups,
    "panel_groups": panel_groups,
    "panel_idle": panel_idling,
    "large_result": large_result,
    "build_results": build_results,
    "read_results": read_results,
    "map_shared": map_shared,
    "window": window,
}


def main(argv: list[str]) -> None:
    contender, measure, params = argv[1], argv[2], json.loads(argv[3])
    try:
        out: Metrics = MEASURES[measure](contender, params)
    except Unsupported as exc:
        out = {"skipped": str(exc)}
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main(sys.argv)
