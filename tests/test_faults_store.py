"""Faults of the store itself: a process killed in the middle of a purge, a damaged database.

Real stores, real processes, real SIGKILLs: a purge killed at any moment leaves every job it
did not remove readable, and no file behind; a damaged or foreign database is refused with
one clear error (the CLI prints one line), and what can still be read of it still is.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gates import wait_for_file

import nbjobs

BIG = 300 * 1024  # above the inline limit (nbjobs/blobfiles.py): each result is a file
JOBS = 600  # more than one purge batch (nbjobs/api.py, _PURGE_BATCH = 500)

# The child purges the store; it dies by SIGKILL right after its `kill_at`-th file removal (a moment
# inside the purge chosen exactly), or when the parent kills it (a moment chosen by time).
PURGER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import nbjobs

    store_path, ready, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = nbjobs.Store(store_path)
    if kill_at:
        unlink, seen = os.unlink, [0]

        def dying_unlink(path, *args, **kwargs):
            unlink(path, *args, **kwargs)
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        os.unlink = dying_unlink
    Path(ready).touch()
    store.purge(status="succeeded")
    os._exit(0)
    """
)

# (how the purge dies, at which file removal or after how many ms)
KILLS = [
    ("unlink", 1),
    ("unlink", 120),
    ("unlink", 500),
    ("unlink", 501),
    ("unlink", 590),
    ("timer", 0),
    ("timer", 10),
    ("timer", 25),
    ("timer", 45),
    ("timer", 70),
]


def blob_files(path: Path) -> list[str]:
    return sorted((path / "blobs").iterdir())


@pytest.fixture(scope="module")
def many_big_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store of `JOBS` succeeded jobs, each with its result in a file."""
    path = tmp_path_factory.mktemp("template") / "store"
    with nbjobs.Store(path) as store:
        nbjobs.wait([store.submit(bytes, BIG) for _ in range(JOBS)], timeout=300)
        assert store.stats()["succeeded"] == JOBS
    assert len(blob_files(path)) == JOBS, "results no longer go to files: raise BIG"
    return path


def copy_store(template: Path, to: Path) -> Path:
    """A copy of the store whose blob files are hard links (a purge unlinks, never writes)."""

    def copy(src: str, dst: str) -> None:
        if Path(src).parent.name == "blobs":
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(template, to, copy_function=copy)
    return to


def purge_and_die(path: Path, how: str, when: int) -> int:
    script = path.parent / "purger.py"
    script.write_text(PURGER)
    ready = path.parent / "ready"
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(ready), str(when if how == "unlink" else 0)]
    )
    try:
        if how == "timer":
            assert wait_for_file(ready), "the purging child never started"
            time.sleep(when / 1000)  # the moment of the crash is the point of the trial
            child.send_signal(signal.SIGKILL)
        return child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize(("how", "when"), KILLS, ids=[f"{h}-{w}" for h, w in KILLS])
def test_a_purge_killed_at_any_moment_loses_no_result_and_leaves_no_file(
    many_big_results: Path, tmp_path: Path, how: str, when: int
) -> None:
    path = copy_store(many_big_results, tmp_path / "store")
    code = purge_and_die(path, how, when)
    assert code in (-signal.SIGKILL, 0), code
    with nbjobs.Store(path) as store:
        kept = store.jobs(status="succeeded", limit=JOBS)
        lost = []
        for job in kept:
            try:
                value = job.result(timeout=10)
            except nbjobs.NbjobsError as exc:
                lost.append(f"{job.id}: {exc}")
            else:
                assert len(value) == BIG
        assert not lost, f"{len(lost)} of {len(kept)} succeeded jobs lost their result: {lost[0]}"
        # Opening the store (a writer) removed the files of the jobs the purge removed.
        assert len(blob_files(path)) == len(kept), (len(blob_files(path)), len(kept))
        assert store.purge(status="failed") == 0
        assert len(blob_files(path)) == len(kept)
        assert store.purge(status="succeeded") == len(kept)
        assert blob_files(path) == []


def test_purge_removes_old_files_that_no_job_names_and_keeps_young_ones(
    store: nbjobs.Store,
) -> None:
    kept = store.submit(bytes, BIG)
    assert len(kept.result(timeout=60)) == BIG
    blobs = store.path / "blobs"
    (named,) = blob_files(store.path)
    # Left by processes that died before committing them: a value, and a half-written one.
    old = [blobs / "r-0123456789abcdef-00c0ffee", blobs / ".tmp-abandoned"]
    young = blobs / "r-fedcba9876543210-0badf00d"  # may be on its way to its commit
    for path in (*old, young):
        path.write_bytes(b"x" * 100)
    two_days_ago = time.time() - 2 * 86_400
    for path in (*old, named):
        os.utime(path, (two_days_ago, two_days_ago))
    assert store.purge(status="failed") == 0
    assert blob_files(store.path) == sorted([named, young])
    assert len(kept.result(timeout=60)) == BIG
