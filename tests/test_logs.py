"""Per-job logs (issue 7): each job's stdout, stderr and logging records land in its own
bounded log, for thread and process jobs, `job.logs(follow=True)` streams them while the
job runs, and a notebook cell's own prints stay in the cell (real kernel).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gates import poll
from kernel_helpers import Kernel

import nbjobs

pytestmark = pytest.mark.timeout(120)

TAGS = ("alpha", "bravo", "charlie", "delta")
LINES = 50
TRUNCATED = "[... earlier output truncated ...]\n"


def chatter(folder: str, tag: str, others: int) -> str:
    """Start together with `others` other jobs, then interleave tagged lines with them."""
    base = Path(folder)
    (base / f"{tag}.started").touch()
    if not poll(lambda: len(list(base.glob("*.started"))) > others, every=0.001):
        raise TimeoutError("the other jobs never started")
    for i in range(LINES):
        print(f"[{tag}] line {i}")
        time.sleep(0.001)
    return tag


def three_channels(tag: str) -> str:
    print(f"out {tag}")
    print(f"err {tag}", file=sys.stderr)
    logging.getLogger("nbjobs.tests").warning("logged %s", tag)
    return tag


def ticks_until(gate: str) -> int:
    """Print a tick every 20 ms until the gate file exists, then say bye."""
    deadline = time.monotonic() + 60
    i = 0
    while not os.path.exists(gate) and time.monotonic() < deadline:
        print(f"tick {i}")
        i += 1
        time.sleep(0.02)
    print("bye")
    return i


def floods(chars: int) -> int:
    print("HEAD-MARKER")
    line = "x" * 999 + "\n"
    for _ in range(chars // 1000):
        sys.stdout.write(line)
    print("TAIL-MARKER")
    return chars


def prints_then_fails(counter: str) -> str:
    with open(counter, "a") as f:
        f.write("call\n")
    n = len(Path(counter).read_text().splitlines())
    print(f"trying for the {n} time")
    if n == 1:
        raise ConnectionError("first try fails")
    return "ok"


# ---------------------------------------------------------------------- each job its own log
def test_concurrent_thread_jobs_print_into_their_own_logs(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    folder = tmp_path / "starts"
    folder.mkdir()
    jobs = [store.submit(chatter, str(folder), tag, len(TAGS) - 1) for tag in TAGS]
    assert [j.result(timeout=60) for j in jobs] == list(TAGS)
    for tag, job in zip(TAGS, jobs, strict=True):
        lines = job.logs().splitlines()
        assert lines == [f"[{tag}] line {i}" for i in range(LINES)], (tag, lines[:5])


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_stdout_stderr_and_logging_are_captured(store: nbjobs.Store, executor: str) -> None:
    job = store.submit(three_channels, executor, executor=executor)
    assert job.result(timeout=60) == executor
    text = job.logs()
    assert f"out {executor}\n" in text
    assert f"err {executor}\n" in text
    assert f"WARNING:nbjobs.tests:logged {executor}" in text


def test_output_outside_jobs_is_not_captured(
    store: nbjobs.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    job = store.submit(three_channels, "inside")
    job.result(timeout=60)
    print("printed by the test itself")
    out = capsys.readouterr().out
    assert "printed by the test itself" in out
    assert "out inside" not in out
    assert "printed by the test itself" not in job.logs()


def test_process_job_logs_survive_reopening_the_store(store: nbjobs.Store, tmp_path: Path) -> None:
    job = store.submit(three_channels, "kept", executor="process")
    job.result(timeout=60)
    store.close()
    with nbjobs.Store(store.path) as again:
        assert "out kept\n" in again.get(job.id).logs()


def test_each_attempt_is_marked_in_the_log(store: nbjobs.Store, tmp_path: Path) -> None:
    job = store.submit(prints_then_fails, str(tmp_path / "calls"), retries=1, backoff=0)
    assert job.result(timeout=60) == "ok"
    text = job.logs()
    assert text.index("trying for the 1 time") < text.index("--- attempt 2 ---")
    assert text.index("--- attempt 2 ---") < text.index("trying for the 2 time")


# ---------------------------------------------------------------------- follow and the bounded tail
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_follow_yields_new_output_while_the_job_runs_and_ends_with_it(
    store: nbjobs.Store, tmp_path: Path, executor: str
) -> None:
    gate = tmp_path / "gate"
    job = store.submit(ticks_until, str(gate), executor=executor)
    try:
        stream = job.logs(follow=True)
        first = next(stream)
        assert first.startswith("tick 0\n")
        assert job.status == "running", "follow must yield before the job ends"
    finally:
        gate.touch()
    rest = "".join(stream)  # ends when the job ends
    assert job.done()
    ticks = job.result(timeout=60)
    assert first + rest == job.logs()
    assert (first + rest).splitlines() == [f"tick {i}" for i in range(ticks)] + ["bye"]


def test_the_log_keeps_the_last_megabyte_and_says_it_was_truncated(store: nbjobs.Store) -> None:
    job = store.submit(floods, 1_500_000)
    job.result(timeout=60)
    text = job.logs()
    assert text.startswith(TRUNCATED)
    kept = text[len(TRUNCATED) :]
    assert len(kept) == 1_000_000
    assert "HEAD-MARKER" not in kept
    assert kept.endswith("TAIL-MARKER\n")


# ---------------------------------------------------------------------- a real kernel
CHATTY_CELL = """\
import json, time, nbjobs

def chatty():
    for i in range(50):
        print("JOBLINE", i)
        time.sleep(0.01)
    return "done"

job = nbjobs.submit(chatty)
deadline = time.monotonic() + 60
while job.status == "pending" and time.monotonic() < deadline:
    time.sleep(0.001)
while not job.done() and time.monotonic() < deadline:
    print("CELLLINE")
    time.sleep(0.005)
print("CELLLINE", job.result(timeout=60))
"""
REPORT_CELL = """\
print(json.dumps({"logs": job.logs(), "status": job.status}))
"""


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[Kernel]:
    cwd = tmp_path / "notebook"
    cwd.mkdir()
    env = {
        **os.environ,
        "NBJOBS_STORE": str(tmp_path / "kernel-store"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    running = Kernel(cwd, env)
    try:
        yield running
    finally:
        running.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_cells_own_prints_stay_in_the_cell_while_a_job_prints(kernel: Kernel) -> None:
    shown = kernel.run(CHATTY_CELL, streams=("stdout", "stderr"))
    assert "CELLLINE" in shown
    assert shown.count("CELLLINE") >= 2, "the cell printed while the job ran"
    assert "CELLLINE done" in shown
    assert "JOBLINE" not in shown

    report = json.loads(kernel.run(REPORT_CELL).strip().splitlines()[-1])
    assert report["status"] == "succeeded"
    assert report["logs"].splitlines() == [f"JOBLINE {i}" for i in range(50)]
    assert "CELLLINE" not in report["logs"]
