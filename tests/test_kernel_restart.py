"""Journeys in a real IPython kernel (jupyter_client), across real kernel restarts.

- `key=nbjobs.auto`: an unchanged cell re-run after a restart is a cache hit; editing the
  function or changing an argument is a miss.
- A keyed job cut short by a restart is `interrupted`, and resubmitting its key runs it again.
- `await job` in a cell (top-level await) leaves the kernel's event loop free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_helpers import Kernel

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def kernel_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "NBJOBS_STORE": str(tmp_path / "store"),
        "NBJOBS_TEST_LOG": str(tmp_path / "runs.log"),
        "NBJOBS_TEST_GATE": str(tmp_path / "gate"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }


@pytest.fixture
def kernel(tmp_path: Path, kernel_env: dict[str, str]) -> Iterator[Kernel]:
    cwd = tmp_path / "notebook"
    cwd.mkdir()
    running = Kernel(cwd, kernel_env)
    try:
        yield running
    finally:
        running.stop()


def runs(tmp_path: Path) -> int:
    log = tmp_path / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


# ------------------------------------------------------------------------ key=nbjobs.auto
DEFINE_FIT = """\
import json, os, nbjobs

def fit(n):
    with open(os.environ["NBJOBS_TEST_LOG"], "a") as f:
        f.write("ran\\n")
    return n * 2
"""
SUBMIT_FIT = """\
job = nbjobs.submit(fit, {n}, key=nbjobs.auto)
print(json.dumps({{"id": job.id, "key": job.key, "result": job.result(timeout=60),
                  "pid": os.getpid()}}))
"""


def test_auto_key_is_a_cache_hit_after_a_restart_and_a_miss_after_an_edit(
    kernel: Kernel, tmp_path: Path
) -> None:
    kernel.run(DEFINE_FIT)
    first = kernel.json(SUBMIT_FIT.format(n=10))
    assert first["result"] == 20
    assert runs(tmp_path) == 1
    assert kernel.json(SUBMIT_FIT.format(n=10))["id"] == first["id"]  # same kernel, again

    kernel.restart(now=False)
    kernel.run(DEFINE_FIT)
    again = kernel.json(SUBMIT_FIT.format(n=10))
    assert again["pid"] != first["pid"]
    assert (again["id"], again["key"], again["result"]) == (
        first["id"],
        first["key"],
        first["result"],
    )
    assert runs(tmp_path) == 1, "an unchanged cell ran again after the restart"

    kernel.run(DEFINE_FIT.replace("return n * 2", "return n * 3"))
    edited = kernel.json(SUBMIT_FIT.format(n=10))
    assert edited["id"] != first["id"]
    assert edited["key"] != first["key"]
    assert edited["result"] == 30
    assert runs(tmp_path) == 2

    changed = kernel.json(SUBMIT_FIT.format(n=11))
    assert changed["id"] not in (first["id"], edited["id"])
    assert changed["result"] == 33
    assert runs(tmp_path) == 3


# ------------------------------------------------------------------------ interrupted by a restart
DEFINE_NAP = """\
import json, os, time, nbjobs

def nap(seconds):
    with open(os.environ["NBJOBS_TEST_LOG"], "a") as f:
        f.write("start\\n")
    time.sleep(seconds)
    return seconds
"""
WAIT_STARTED = """\
deadline = time.monotonic() + 60
while not os.path.exists(os.environ["NBJOBS_TEST_LOG"]):
    assert time.monotonic() < deadline, "the job never started"
    time.sleep(0.01)
print(job.status)
"""
SHOW_NAP = """\
import json, nbjobs
job = nbjobs.get("nap")
print(json.dumps({"id": job.id, "status": job.status, "attempts": job.attempts}))
"""
RESUBMIT_NAP = """\
job = nbjobs.submit(nap, 0.1, key="nap")
print(json.dumps({"id": job.id, "result": job.result(timeout=60), "status": job.status,
                  "attempts": job.attempts}))
"""


@pytest.mark.parametrize("now", [False, True], ids=["shutdown-restart", "kill-restart"])
def test_a_keyed_job_cut_short_by_a_restart_is_interrupted_and_its_key_runs_it_again(
    kernel: Kernel, tmp_path: Path, now: bool
) -> None:
    kernel.run(DEFINE_NAP + 'job = nbjobs.submit(nap, 60, key="nap")\n')
    assert kernel.run(WAIT_STARTED).strip() == "running"
    kernel.restart(now=now)

    before = kernel.json(SHOW_NAP)
    assert before["status"] == "interrupted"
    assert before["attempts"] == 1
    assert runs(tmp_path) == 1, "the interrupted job ran again without being asked"

    kernel.run(DEFINE_NAP)
    after = kernel.json(RESUBMIT_NAP)
    assert after == {"id": before["id"], "result": 0.1, "status": "succeeded", "attempts": 2}
    assert runs(tmp_path) == 2


# ------------------------------------------------------------------------ await in a cell
AWAIT_IN_A_CELL = """\
import asyncio, json, os, time, nbjobs

def gated(gate):
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("the gate never opened: the kernel's event loop was blocked")
        time.sleep(0.005)
    return "freed"

ticks = 0

async def ticker():
    global ticks
    while True:
        ticks += 1
        if ticks == 5:
            open(os.environ["NBJOBS_TEST_GATE"], "w").close()
        await asyncio.sleep(0.01)

job = nbjobs.submit(gated, os.environ["NBJOBS_TEST_GATE"])
tick = asyncio.ensure_future(ticker())
try:
    value = await job
finally:
    tick.cancel()
print(json.dumps({"value": value, "ticks": ticks, "status": job.status}))
"""


def test_await_in_a_cell_leaves_the_kernels_event_loop_free(kernel: Kernel) -> None:
    """The job is released by a task on the kernel's loop: a blocking await never ends."""
    seen = kernel.json(AWAIT_IN_A_CELL, timeout=120)
    assert seen["value"] == "freed"
    assert seen["ticks"] >= 5
    assert seen["status"] == "succeeded"
