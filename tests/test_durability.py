"""The durability promises of submit(), checked by killing a real process right after it.

docs/design.md states the window: a keyed submit returns after its claim is committed; a
keyless submit is committed by the writer shortly after, and flush() waits for it.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nbjobs

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import nbjobs
    store = nbjobs.Store(sys.argv[1])
    def slow(x):
        time.sleep(float(os.environ.get("NBJOBS_TEST_SLEEP", "60")))
        return x
    mode = sys.argv[2]
    if mode == "keyed":
        store.submit(slow, 1, key="precious")
    elif mode == "keyed-again":  # the function is stored: the claim is one INSERT
        store.submit(slow, 0, key="first")
        store.submit(slow, 1, key="precious")
    elif mode == "running":
        job = store.submit(slow, 1, key="precious")
        while job.status != "running":
            time.sleep(0.01)
        store.flush()  # the start is on disk
    else:
        job = store.submit(slow, 2, name="unkeyed")
        store.flush()
    os._exit(0)  # the kernel dies: no atexit, no flush
    """
)


def _die_after_submit(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / "store"
    script = tmp_path / "submit_and_die.py"
    script.write_text(SCRIPT)
    subprocess.run([sys.executable, str(script), str(path), mode], check=True, timeout=120)
    return path


@pytest.mark.parametrize("mode", ["keyed", "keyed-again"])
def test_a_keyed_submit_survives_a_crash_right_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    path = _die_after_submit(tmp_path, mode)
    monkeypatch.setenv("NBJOBS_TEST_SLEEP", "0")
    with nbjobs.Store(path) as store:
        job = store.get("precious")
        # Its kernel is gone: the job is interrupted, never silently re-run.
        assert job.status == "interrupted"
        assert job.resumable
        # ... and its call was stored with it: resuming runs it.
        resumed = {j.key: j for j in store.resume()}
        assert resumed["precious"].result(timeout=60) == 1


def test_a_flushed_keyless_submit_survives_a_crash(tmp_path: Path) -> None:
    path = _die_after_submit(tmp_path, "flushed")
    with nbjobs.Store(path) as store:
        jobs = store.jobs(name="unkeyed")
        assert [j.status for j in jobs] == ["interrupted"]
        assert store.stats()["interrupted"] == 1


def test_an_interrupted_job_resumes_from_its_stored_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _die_after_submit(tmp_path, "running")
    monkeypatch.setenv("NBJOBS_TEST_SLEEP", "0")
    with nbjobs.Store(path) as store:
        (job,) = store.jobs(status="interrupted")
        assert store.resume() == [job]
        assert job.result(timeout=60) == 1
        assert job.attempts == 2
        assert store.stats()["interrupted"] == 0
