"""The panel's cost to its kernel on a big store: shown and idle, then while another process
finishes jobs in that store. `measure` runs in a contender's process (`contenders.py`);
`python panel_idle.py STORE JOBS WORKERS` is that other process.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import workloads

import nbjobs
from nbjobs.widgets.panel_view import Panel

HERE = Path(__file__).resolve().parent
SETTLE_S = 0.5  # after show(): the poller's first redraw is not idling


def measure(store_path: Path, params: dict[str, Any]) -> dict[str, float]:
    """CPU of this process (all its threads) as a percentage of one core while a shown
    panel polls an unchanged store, then while `jobs` jobs finish in another process;
    and the traits the panel set meanwhile (updates sent), and how long after that
    process ended the panel showed its last counts."""
    store = nbjobs.Store(store_path)
    panel = Panel(store)
    panel.show()  # outside a kernel, it draws and starts polling from its thread
    try:
        time.sleep(SETTLE_S)
        idle_pct, _ = _cpu_pct(lambda: time.sleep(params["idle_s"]))
        before = panel.updates
        busy_pct, ended = _cpu_pct(lambda: _finish_jobs(store_path, params))
        busy_updates = panel.updates - before
        lag_s = _until_shown(panel, store.stats(), ended, deadline_s=30)
    finally:
        panel.close()
        panel.poller.join(10)
    for job in store.jobs(name=workloads.nap.__name__, limit=params["busy_jobs"]):
        store.forget(job.id)  # the fixture is shared: leave it as it was built
    store.close()
    return {
        "idle_pct": idle_pct,
        "busy_pct": busy_pct,
        "busy_updates": busy_updates,
        "lag_ms": 1000 * lag_s,
    }


def _cpu_pct(run: Callable[[], object]) -> tuple[float, float]:
    """(CPU of this process while `run()` runs, as % of one core; when it returned)."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    run()
    t1 = time.perf_counter()
    return 100 * (time.process_time() - cpu0) / (t1 - t0), t1


def _finish_jobs(store_path: Path, params: dict[str, Any]) -> None:
    """Run the other process to its end."""
    cmd = [sys.executable, __file__, str(store_path), str(params["busy_jobs"])]
    subprocess.run([*cmd, str(params["busy_workers"])], check=True, cwd=HERE, timeout=300)


def _until_shown(panel: Panel, counts: dict[str, int], since: float, deadline_s: float) -> float:
    """Seconds from `since` until the panel's pills show `counts`."""
    deadline = time.perf_counter() + deadline_s
    wanted = {status: f"{status} {n:,}" for status, n in counts.items()}
    while any(panel.pills[s].description != text for s, text in wanted.items()):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the panel did not show {counts} within {deadline_s} s")
        time.sleep(0.005)
    return time.perf_counter() - since


def main(argv: list[str]) -> None:
    """The other process: a map of `nap` jobs on its own thread workers, to their end."""
    store_path, jobs, workers = Path(argv[1]), int(argv[2]), int(argv[3])
    with nbjobs.Store(store_path, workers=workers) as store:
        nbjobs.wait(store.map(workloads.nap, range(jobs)))


if __name__ == "__main__":
    main(sys.argv)
