"""The keyless durability window under load: `python bench/keyless_window.py`, and the
`window` sections of `python bench/run.py`.

A keyless `submit()` returns before its job is committed (the writer thread commits it with
its next batch). How old can a returned submit be and still be lost to a SIGKILL? `--procs`
processes submit keyless jobs to one store in a loop; after each `submit()` returns, a
process writes the job's id and the time to its own file (so the log line exists only for a
submit that returned). One process is killed with SIGKILL; the others stop; the store is
read: the oldest logged submit of the killed process whose job is not in the store gives the
window (the kill time minus its return time). Prints one JSON line per trial, then the
median and the maximum over the trials. `--nbjobs DIR` measures another copy of nbjobs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def child(store_path: str, log_path: str, stop_path: str, interval: str) -> None:
    """Submit keyless trivial jobs, one per `interval` seconds, until `stop_path` exists;
    log each returned submit."""
    from workloads import trivial

    import nbjobs

    store = nbjobs.Store(store_path)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    i = 0
    while not os.path.exists(stop_path):
        job = store.submit(trivial, i)
        os.write(fd, f"{job.id} {time.time():.6f}\n".encode())  # in the kernel: survives SIGKILL
        i += 1
        time.sleep(float(interval))
    store.close()


def trial(procs: int, run_s: float, interval: float, env: dict[str, str]) -> dict[str, float | int]:
    with tempfile.TemporaryDirectory(prefix="nbjobs-window-") as tmp:
        folder = Path(tmp)
        stop = folder / "stop"
        logs = [folder / f"log-{i}" for i in range(procs)]
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(folder / "store"),
                    str(log),
                    str(stop),
                    str(interval),
                ],
                env=env,
                cwd=HERE,
            )
            for log in logs
        ]
        deadline = time.monotonic() + 60
        while not all(log.exists() and log.stat().st_size for log in logs):
            if time.monotonic() > deadline:
                raise RuntimeError("the submitting processes did not start")
            time.sleep(0.01)
        time.sleep(run_s)  # steady state: every process submitting
        victim = children[0]
        killed_at = time.time()
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        stop.touch()
        for other in children[1:]:
            other.wait(timeout=120)
        returned = [line.split() for line in logs[0].read_text().splitlines() if line.strip()]
        found = _stored_ids(folder / "store", [job_id for job_id, _ in returned], env)
        lost = [float(t) for job_id, t in returned if job_id not in found]
        return {
            "submitted": len(returned),
            "lost": len(lost),
            "oldest_lost_ms": 1000 * (killed_at - min(lost)) if lost else 0.0,
        }


def _stored_ids(store: Path, ids: list[str], env: dict[str, str]) -> set[str]:
    """The ids in the store, read by a fresh process of the measured nbjobs."""
    code = (
        "import json, sys, nbjobs\n"
        "ids = json.load(sys.stdin)\n"
        "with nbjobs.Store(sys.argv[1]) as s:\n"
        "    print(json.dumps(sorted(s.storage.statuses(ids))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(store)],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return set(json.loads(out.stdout))


def measure(
    procs: int, interval: float, run_s: float, kills: int, env: dict[str, str]
) -> dict[str, float]:
    """`kills` trials: the median and the maximum of the oldest lost submit's age (ms), and
    the median of submits lost per kill. `run.py` runs this as its `window` sections."""
    results = [trial(procs, run_s, interval, env) for _ in range(kills)]
    windows = [float(r["oldest_lost_ms"]) for r in results]
    return {
        "median_oldest_lost_ms": statistics.median(windows),
        "max_oldest_lost_ms": max(windows),
        "median_lost": statistics.median(float(r["lost"]) for r in results),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=8, help="submitting processes")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--run", type=float, default=1.0, help="seconds before the kill")
    parser.add_argument("--nbjobs", type=Path, help="measure the nbjobs package in DIR")
    parser.add_argument(
        "--interval",
        type=float,
        default=0.002,
        help="seconds each process sleeps between submits (0: a tight loop, which outruns "
        "the writer until its queue is full, and then waits for it)",
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    env = dict(os.environ)
    if args.nbjobs:
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(args.nbjobs.resolve()), env.get("PYTHONPATH")])
        )
    windows, lost = [], []
    for _ in range(args.trials):
        result = trial(args.procs, args.run, args.interval, env)
        windows.append(result["oldest_lost_ms"])
        lost.append(result["lost"])
        print(json.dumps(result), flush=True)
    print(
        json.dumps(
            {
                "procs": args.procs,
                "interval_s": args.interval,
                "median_oldest_lost_ms": statistics.median(windows),
                "max_oldest_lost_ms": max(windows),
                "median_lost": statistics.median(lost),
            }
        )
    )


if __name__ == "__main__":
    main()
