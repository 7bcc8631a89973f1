"""Every kind of callable a notebook user hands to submit(), and jobs that misbehave."""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import nbjobs

EXECUTORS = ["thread", "process"]


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: int) -> int:
        return x * self.factor

    def __call__(self, x: int) -> int:
        return x + self.factor


def power(base: int, exp: int) -> int:
    return base**exp


async def async_add(a: int, b: int) -> int:
    await asyncio.sleep(0)
    return a + b


async def async_fails() -> None:
    await asyncio.sleep(0)
    raise RuntimeError("async failure 5")


def exits() -> None:
    sys.exit(3)


def interrupts() -> None:
    raise KeyboardInterrupt("stop from inside the job")


def ok() -> str:
    return "ok"


@pytest.fixture(params=EXECUTORS)
def estore(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    s = nbjobs.Store(tmp_path / "estore", executor=request.param, workers=1)
    try:
        yield s
    finally:
        s.close()


@pytest.mark.parametrize(
    ("make", "args", "want"),
    [
        pytest.param(lambda: Scaler(3).scale, (5,), 15, id="bound-method"),
        pytest.param(lambda: Scaler(3), (5,), 8, id="callable-instance"),
        pytest.param(lambda: functools.partial(power, 2), (10,), 1024, id="partial"),
        pytest.param(lambda: pow, (2, 10), 1024, id="builtin"),
        pytest.param(lambda: lambda x: x * 2, (21,), 42, id="lambda"),
        pytest.param(lambda: async_add, (40, 2), 42, id="async-def"),
    ],
)
def test_kinds_of_callables(estore: nbjobs.Store, make: Any, args: Any, want: Any) -> None:
    job = estore.submit(make(), *args)
    assert job.result(timeout=60) == want
    assert isinstance(job.name, str)
    assert job.name


def test_an_async_job_that_fails_raises_its_error(estore: nbjobs.Store) -> None:
    with pytest.raises(RuntimeError, match="async failure 5"):
        estore.submit(async_fails).result(timeout=60)


@pytest.mark.parametrize("fn", [exits, interrupts], ids=["sys.exit", "KeyboardInterrupt"])
def test_a_job_raising_a_base_exception_fails_and_the_pool_carries_on(
    estore: nbjobs.Store, fn: Any
) -> None:
    job = estore.submit(fn)
    job.wait(timeout=60)
    assert job.status == "failed"
    assert job.error is not None
    assert ("SystemExit" if fn is exits else "KeyboardInterrupt") in job.error["type"]
    # workers=1: the only worker must still be there for the next job.
    assert estore.submit(ok).result(timeout=60) == "ok"


SCRIPT = """
import os, signal, sys, threading, time
import nbjobs

def run_when_gate_opens(gate):
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError("gate never opened")
        time.sleep(0.005)
    return "survived"

store = nbjobs.Store(sys.argv[1])
gate = sys.argv[2]
job = store.submit(run_when_gate_opens, gate, executor=sys.argv[3])
deadline = time.monotonic() + 30
while job.status != "running":
    assert time.monotonic() < deadline, "job never started"
    time.sleep(0.01)
# As Jupyter's stop button does: SIGINT to the kernel's whole process group.
threading.Timer(0.3, os.killpg, (os.getpgid(0), signal.SIGINT)).start()
try:
    job.result(timeout=30)
except KeyboardInterrupt:
    print("interrupted-wait", job.status, flush=True)
else:
    print("wait-not-interrupted", flush=True)
open(gate, "w").close()
print("result", job.result(timeout=30), flush=True)
store.close()
"""


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["thread", "process"])
def test_interrupting_a_blocked_result_interrupts_the_wait_not_the_job(
    tmp_path: Path, executor: str
) -> None:
    script = [sys.executable, "-c", textwrap.dedent(SCRIPT), str(tmp_path / "s")]
    out = subprocess.run(
        [*script, str(tmp_path / "g"), executor],
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,  # its own process group, as a kernel has
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == ["interrupted-wait running", "result survived"], out.stderr
