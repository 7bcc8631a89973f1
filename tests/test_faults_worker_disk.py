"""A full disk under a detached worker: a store on a real 20 MB tmpfs, filled to the brim.

The worker lives on: it says in its log that the disk is full (naming the store and the free
space), takes no new job while it cannot write, lets its running jobs run (their outcomes are
held and written once there is room), waits without spinning, and works again as soon as
space is freed, saying so.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from disk_helpers import Disk, MiB
from gates import Gates, blocked, poll

import nbjobs
from nbjobs.store.owners import owner_alive

pytestmark = pytest.mark.timeout(240)

StartWorker = Callable[..., nbjobs.WorkerInfo]
_FULL_FOR_S = 3.0  # how long the test watches a worker on a full disk


def _alive(pid: int) -> bool:
    if not owner_alive(f"{os.uname().nodename}:{pid}:?"):
        return False
    return _stat(pid)[0] != b"Z"  # a zombie has exited


def _stat(pid: int) -> list[bytes]:
    """The fields of /proc/PID/stat after the command name (state first)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return [b"Z"] + [b"0"] * 20


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time the process (all its threads, not its children) used."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def start_worker(disk: Disk) -> Iterator[StartWorker]:
    """`start_worker(store, **options)`: a worker of a store on `disk`, stopped at teardown
    (with room on the disk to say so) before the tmpfs is unmounted."""
    started: list[tuple[nbjobs.Store, nbjobs.WorkerInfo]] = []

    def start(store: nbjobs.Store, **options: Any) -> nbjobs.WorkerInfo:
        info = store.start_worker(idle_timeout=120, **options)
        started.append((store, info))
        return info

    try:
        yield start
    finally:
        if disk.filler.exists():
            disk.unfill()
        for store, info in started:
            with contextlib.suppress(nbjobs.NbjobsError):
                store.stop_worker(wait=True, timeout=30, grace=0)
            if _alive(info.pid):
                os.kill(info.pid, signal.SIGKILL)


def _log(info: nbjobs.WorkerInfo) -> str:
    return Path(info.log).read_text(errors="replace")


def _line_with(text: str, *words: str) -> int:
    """The index of the first line of `text` that has all `words` (-1: none has)."""
    for i, line in enumerate(text.splitlines()):
        if all(w in line for w in words):
            return i
    return -1


def test_a_worker_lives_through_a_full_disk_and_works_again_once_space_is_freed(
    disk: Disk, tmp_path: Path, start_worker: StartWorker, wait_for: Any
) -> None:
    store = disk.store()
    info = start_worker(store, workers=2)
    gates = Gates(tmp_path / "gates")
    small = store.submit(blocked, *gates.task("small"), 7, executor="worker")
    big = store.submit(blocked, *gates.task("big"), b"r" * (2 * MiB), executor="worker")
    wait_for(lambda: gates.started("small") and gates.started("big"), timeout=60)
    queued = store.submit(pow, 2, 10, executor="worker")
    store.flush()

    disk.fill()
    cpu_before = _cpu_seconds(info.pid)
    # Both return: one a small value (its success cannot be written yet), one a result that
    # does not fit. A slot is free, a job is queued: the worker must not try to take it.
    gates.open("small")
    gates.open("big")
    died = poll(lambda: not _alive(info.pid), deadline_s=_FULL_FOR_S, every=0.05)
    assert not died, f"the worker died on a full disk; its log:\n{_log(info)[-3000:]}"
    # A spinning loop would use about a CPU second per second here; a waiting one, a little.
    cpu = _cpu_seconds(info.pid) - cpu_before
    assert cpu < _FULL_FOR_S / 6, f"{cpu:.2f} CPU s in {_FULL_FOR_S} s of a full disk"
    assert queued.status == "pending"  # not taken while the worker cannot write
    assert small.status == "running"  # its end is held by the worker, not lost

    disk.unfill()
    assert small.result(timeout=60) == 7
    error = big.exception(timeout=60)
    assert type(error) is nbjobs.StoreFull, error
    assert str(store.path) in str(error) and "result" in str(error)
    assert queued.result(timeout=60) == 1024
    assert [w.pid for w in store.workers()] == [info.pid]
    assert disk.temporary_files() == []

    log = wait_for(lambda: (text := _log(info)) and "space again" in text and text, timeout=30)
    full = _line_with(log, "worker", str(store.path), "bytes free", "no new job")
    back = _line_with(log, "worker", "space again", "takes jobs again")
    assert 0 <= full < back, log
    assert "Traceback" not in log and "Logging error" not in log, log


def test_dask_jobs_that_start_on_a_full_disk_run_once_space_is_freed(
    disk: Disk, wait_for: Any
) -> None:
    distributed = pytest.importorskip("distributed")
    store = disk.store()
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        assert store.submit(pow, 2, 2, executor=client).result(timeout=60) == 4
        store.flush()
        disk.fill()
        # A keyless submit returns; its start cannot be written (a task reads it): the
        # thread that hands jobs to Dask meets the full disk.
        job = store.submit(pow, 2, 3, executor=client)
        wait_for(lambda: job.status == "running", timeout=60)
        with pytest.raises(nbjobs.StoreFull):
            store.flush()

        disk.unfill()
        assert job.result(timeout=60) == 8
        assert store.submit(pow, 2, 4, executor=client).result(timeout=60) == 16


def test_a_remote_dask_result_that_does_not_fit_fails_its_job_with_the_cause(
    disk: Disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, wait_for: Any
) -> None:
    distributed = pytest.importorskip("distributed")
    import nbjobs.executors.dask as dask_executor

    # Its workers cannot write the store, as with a remote cluster: the result comes back
    # to this process, which writes it.
    monkeypatch.setattr(dask_executor, "_reaches", lambda *args: False)
    store = disk.store()
    gates = Gates(tmp_path / "gates")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        job = gates.start(
            functools.partial(store.submit, executor=client), "big", b"r" * (2 * MiB), wait_for
        )
        store.flush()  # its start is on disk
        disk.fill()
        disk.free_up(512 * 1024)  # room for records, not for a 2 MB result
        gates.open("big")
        error = job.exception(timeout=30)
        assert type(error) is nbjobs.StoreFull, error
        assert "result" in str(error) and str(store.path) in str(error)
        assert job.status == "failed"
        assert disk.temporary_files() == []
        disk.unfill()
        assert store.submit(pow, 2, 5, executor=client).result(timeout=60) == 32


def test_a_worker_stopped_on_a_full_disk_exits_cleanly_and_its_job_runs_again_later(
    disk: Disk, tmp_path: Path, start_worker: StartWorker, wait_for: Any
) -> None:
    store = disk.store()
    info = start_worker(store, workers=1)
    gates = Gates(tmp_path / "gates")
    job = store.submit(blocked, *gates.task("job"), 5, executor="worker")
    wait_for(lambda: gates.started("job"), timeout=60)
    disk.fill()
    os.kill(info.pid, signal.SIGTERM)  # stop_worker() itself would raise StoreFull
    assert poll(lambda: not _alive(info.pid), deadline_s=60, every=0.05)
    assert job.status == "running"  # nothing could be written: another worker requeues it

    disk.unfill()
    log = _log(info)
    assert _line_with(log, "worker", "it stops without saying so in the store") >= 0, log
    assert "Traceback" not in log, log
    gates.open("job")
    start_worker(store, workers=1, new=True)
    assert job.result(timeout=60) == 5
