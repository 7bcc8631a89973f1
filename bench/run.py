"""nbjobs benchmarks: `python bench/run.py` (full, a few minutes) or `--smoke` (seconds).

Every run of a contender is a fresh child process (`contenders.py`); repetitions are
interleaved across contenders; tables show medians. Markdown goes to stdout (paste it
into the README), progress to stderr, everything to bench/results/latest.json and .md
(smoke.json and .md for --smoke). `--nbjobs DIR` benchmarks another copy of nbjobs.
Targets are printed with their measured ratio and PASS / MISS, never asserted. The exit
status is 1 only when a contender crashed (an error, not a skip).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from plan import FULL, SMOKE, Fixture, Params, Section, Settings, sections, targets
from report import Results, Runs, judge, section_table, targets_table

HERE = Path(__file__).resolve().parent
CHILD = HERE / "contenders.py"
RESULTS = HERE / "results"
ERROR_TAIL = 2000


def run_child(
    contender: str, measure: str, params: Params, timeout: float, env: dict[str, str]
) -> dict[str, Any]:
    """One measure of one contender in a fresh process: its JSON, or {"error": ...}."""
    cmd = [sys.executable, str(CHILD), contender, measure, json.dumps(params)]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE, env=env
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"error": f"exit {proc.returncode}: {proc.stderr[-ERROR_TAIL:]}"}
    outcome: dict[str, Any] = json.loads(lines[-1])
    return outcome


class Runner:
    """Runs the plan's children in order, with progress on stderr."""

    def __init__(self, settings: Settings, workdir: Path, total: int, env: dict[str, str]) -> None:
        self.settings = settings
        self.workdir = workdir
        self.total = total
        self.env = env
        self.done = 0
        self.fixtures: dict[str, dict[str, Runs]] = {}

    def once(self, label: str, contender: str, measure: str, params: Params, runs: Runs) -> None:
        self.done += 1
        t0 = time.perf_counter()
        runs.add(run_child(contender, measure, params, self.settings.timeout_s, self.env))
        took = time.perf_counter() - t0
        print(
            f"[{self.done}/{self.total}] {label} · {contender}: {runs.summary()} ({took:.1f} s)",
            file=sys.stderr,
            flush=True,
        )

    def fixture(self, fixture: Fixture) -> tuple[Path, dict[str, Runs]]:
        """The fixture's folder, built on first use (one child per contender)."""
        folder = self.workdir / fixture.name
        if fixture.name not in self.fixtures:
            folder.mkdir()
            built = {c: Runs() for c in fixture.contenders}
            params = fixture.params | {"workdir": str(folder)}
            for contender, runs in built.items():
                self.once(f"build {fixture.name}", contender, fixture.measure, params, runs)
            self.fixtures[fixture.name] = built
        return folder, self.fixtures[fixture.name]

    def section(self, section: Section) -> dict[str, Runs]:
        """Every repetition of every contender, interleaved: rep 1 of each, then rep 2..."""
        runs = {c: Runs() for c in section.contenders}
        folder = None
        if section.fixture is not None:
            folder, built = self.fixture(section.fixture)
            _fail_unbuilt(runs, built)
        for rep in range(section.reps):
            for contender, r in runs.items():
                if not r.over:
                    label = f"{section.name} {rep + 1}/{section.reps}"
                    self._in_folder(folder, label, contender, section, r)
        return runs

    def _in_folder(
        self, folder: Path | None, label: str, contender: str, section: Section, runs: Runs
    ) -> None:
        """Run in the fixture's folder, or in a fresh folder removed afterwards."""
        own = folder is None
        where = Path(tempfile.mkdtemp(dir=self.workdir)) if folder is None else folder
        try:
            params = section.params | {"workdir": str(where)}
            self.once(label, contender, section.measure, params, runs)
        finally:
            if own:
                shutil.rmtree(where, ignore_errors=True)


def _fail_unbuilt(runs: dict[str, Runs], built: dict[str, Runs]) -> None:
    """A contender whose fixture could not be built does not run on it."""
    for contender, r in runs.items():
        if contender in built and built[contender].over:
            r.add({"error": f"building its fixture: {built[contender].summary()}"})


def children_count(plan: list[Section]) -> int:
    fixtures = {s.fixture.name: len(s.fixture.contenders) for s in plan if s.fixture}
    runs: int = sum(len(s.contenders) * s.reps for s in plan)
    return sum(fixtures.values()) + runs


def machine(nbjobs_dir: Path | None) -> dict[str, Any]:
    versions = {p: _version(p) for p in ("nbjobs", "diskcache", "huey", "numpy", "cloudpickle")}
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--", "nbjobs")),
        "nbjobs_from": str(nbjobs_dir) if nbjobs_dir else None,
        "versions": versions,
    }


def child_env(nbjobs_dir: Path | None) -> dict[str, str]:
    """The children's environment: with `--nbjobs DIR`, DIR's nbjobs comes first."""
    env = dict(os.environ)
    if nbjobs_dir is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(nbjobs_dir), env.get("PYTHONPATH")]))
    return env


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    proc = subprocess.run(["git", *args], capture_output=True, text=True, cwd=HERE)
    return proc.stdout.strip()


def markdown(mode: str, info: dict[str, Any], plan: list[Section], results: Results) -> str:
    if info["nbjobs_from"]:
        source = f"nbjobs from {info['nbjobs_from']}"
    else:
        source = f"commit {info['commit']}" + (" (nbjobs/ modified)" if info["dirty"] else "")
    lines = [
        f"### nbjobs benchmarks ({mode})",
        "",
        f"{info['cpus']} CPUs, Python {info['python']}, {source}; "
        "medians of fresh processes, repetitions interleaved.",
        "",
    ]
    if mode == "smoke":
        lines += ["Smoke run: tiny sizes, for checking the wiring; the numbers mean little.", ""]
    for section in plan:
        lines += section_table(section, results[section.name])
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--reps", type=int, help="repetitions of every measure")
    parser.add_argument("--only", nargs="+", metavar="SECTION", help="run only these sections")
    parser.add_argument(
        "--nbjobs",
        type=Path,
        metavar="DIR",
        help="benchmark the nbjobs package in DIR (say, an export of another commit)",
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    if args.reps:
        settings = replace(settings, reps=args.reps, heavy_reps=args.reps)
    plan = [s for s in sections(settings) if not args.only or s.name in args.only]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="nbjobs-bench-") as tmp:
        env = child_env(args.nbjobs and args.nbjobs.resolve())
        runner = Runner(settings, Path(tmp), children_count(plan), env)
        results = {s.name: runner.section(s) for s in plan}
    mode = "smoke" if args.smoke else "full"
    info = machine(args.nbjobs)
    verdicts = [judge(t, results) for t in targets(settings)]
    text = "\n".join([markdown(mode, info, plan, results), *targets_table(verdicts)])
    print(text)
    RESULTS.mkdir(exist_ok=True)
    stem = "smoke" if args.smoke else "latest"  # a smoke run never overwrites a full one
    (RESULTS / f"{stem}.md").write_text(text + "\n")
    record = {
        "mode": mode,
        "started": started,
        "duration_s": time.time() - started,
        "machine": info,
        "settings": asdict(settings),
        "fixtures": {f: {c: r.to_json() for c, r in b.items()} for f, b in runner.fixtures.items()},
        "sections": {
            s.name: {
                "title": s.title,
                "params": s.params,
                "contenders": {c: r.to_json() for c, r in results[s.name].items()},
            }
            for s in plan
        },
        "targets": [v.to_json() for v in verdicts],
    }
    (RESULTS / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {RESULTS / stem}.json in {time.time() - started:.0f} s", file=sys.stderr)
    crashed = [r for by in results.values() for r in by.values() if r.error is not None]
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
