"""The Dask executor on real `dask.distributed.LocalCluster`s (no mocks).

Two clusters start once for the module: `client` (2 worker processes x 1 thread: tasks
run in other processes and write their outcome to the store themselves) and `inproc`
(one in-process worker with one thread: fast, and a full queue for cancel tests).
Functions of this module are pickled by value, since worker processes cannot import it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import nbjobs
from nbjobs.clock import FakeClock
from nbjobs.store.storage import Storage

distributed = pytest.importorskip("distributed")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def inproc() -> Iterator[Any]:
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


# ------------------------------------------------------------------ job functions
def add(a: int, b: int) -> int:
    return a + b


def weigh(x: int, weights: bytes) -> int:
    return x + len(weights)


def who() -> tuple[str, int, int]:
    me = nbjobs.current_job()
    assert me is not None
    return me.id, me.attempt, os.getpid()


async def double(x: int) -> int:
    return 2 * x


def boom(message: str) -> None:
    raise ValueError(message)


def flaky(folder: str, fail_times: int) -> int:
    """Fails `fail_times` times (counted in a file, since attempts run in other processes)."""
    counter = Path(folder) / "attempts"
    with counter.open("a") as f:
        f.write("x")
    n = len(counter.read_text())
    if n <= fail_times:
        raise ConnectionError(f"attempt {n} fails")
    return n


def counted(folder: str, value: int) -> int:
    with (Path(folder) / "runs").open("a") as f:
        f.write("x")
    return value


def wait_for_flag(folder: str, name: str = "go", value: Any = "done") -> Any:
    """Reports progress, then waits for `folder/name`; marks `folder/<name>.ended` when it
    ends (even when stopped at a cooperative point by a cancel or a time limit)."""
    flag = Path(folder) / name
    try:
        nbjobs.progress(1, 10, message="started")
        deadline = time.monotonic() + 60
        while not flag.exists() and time.monotonic() < deadline:
            nbjobs.progress(1, 10, message="waiting")
            print("waiting for", name)
            time.sleep(0.02)
        return value
    finally:
        (Path(folder) / f"{name}.ended").write_text("")


def big(n: int) -> bytes:
    nbjobs.progress(1, 2, message="halfway")
    print("making", n, "bytes")
    return b"x" * n


def _executing(dask_worker: Any) -> int:
    """Tasks running in a Dask worker, counting those whose client dropped them."""
    return int(dask_worker.state.executing_count)


def status_on_disk(path: Path, key: str) -> str:
    """The stored status, read without opening a `Store` (which would reap dead owners)."""
    storage = Storage(path)
    try:
        return storage.record(key).status
    finally:
        storage.close()


# ------------------------------------------------------------------ tests
@pytest.mark.slow
def test_a_job_runs_on_the_cluster_and_its_result_is_in_the_store(
    store: nbjobs.Store, client: Any
) -> None:
    job = store.submit(who, executor=client, key="who")
    job_id, attempt, pid = job.result(timeout=30)
    assert (job_id, attempt) == (job.id, 1)
    assert pid != os.getpid()  # it ran in a Dask worker process
    assert job.executor == "dask"
    assert job.record().address == client.scheduler.address
    again = nbjobs.Store(store.path)
    try:
        assert again.get("who").result() == (job_id, 1, pid)
    finally:
        again.close()
    assert store.submit(double, 21, executor=client).result(timeout=30) == 42


@pytest.mark.slow
def test_a_failure_keeps_its_type_and_traceback(store: nbjobs.Store, client: Any) -> None:
    job = store.submit(boom, "bad input", executor=client)
    with pytest.raises(ValueError, match="bad input"):
        job.result(timeout=30)
    assert job.status == "failed"
    assert "boom" in (job.traceback() or "")
    assert job.attempts == 1


@pytest.mark.slow
def test_retries_with_backoff_are_decided_by_nbjobs(
    store: nbjobs.Store, client: Any, tmp_path: Path
) -> None:
    job = store.submit(
        flaky, str(tmp_path), 2, executor=client, retries=3, retry_on=ConnectionError,
        backoff=0.01,
    )  # fmt: skip
    assert job.result(timeout=30) == 3
    assert job.attempts == 3
    history = job.attempt_history()
    assert [h["ok"] for h in history] == [False, False, True]
    assert history[0]["error"]["type"] == "ConnectionError"


@pytest.mark.slow
def test_a_permanent_error_is_not_retried(store: nbjobs.Store, client: Any, tmp_path: Path) -> None:
    job = store.submit(flaky, str(tmp_path), 5, executor=client, retries=5, retry_on=KeyError)
    with pytest.raises(ConnectionError):
        job.result(timeout=30)
    assert job.attempts == 1


@pytest.mark.slow
def test_a_key_runs_once(store: nbjobs.Store, client: Any, tmp_path: Path) -> None:
    first = store.submit(counted, str(tmp_path), 7, key="once", executor=client)
    assert first.result(timeout=30) == 7
    second = store.submit(counted, str(tmp_path), 7, key="once", executor=client)
    assert second.id == first.id
    assert second.result() == 7
    assert (tmp_path / "runs").read_text() == "x"


@pytest.mark.slow
def test_progress_and_logs_reach_the_store(
    store: nbjobs.Store, client: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    job = store.submit(wait_for_flag, str(tmp_path), executor=client)
    store.flush()  # the record of a keyless submit is committed by the writer
    other = nbjobs.Store(store.path)
    try:
        seen = wait_for(lambda: other.get(job.id).progress)
        assert (seen.current, seen.total) == (1, 10)
        wait_for(lambda: "waiting for go" in other.get(job.id).logs())  # while it runs
        (tmp_path / "go").write_text("")
        assert job.result(timeout=30) == "done"
    finally:
        other.close()
    job = store.submit(big, 10, executor=client)
    assert job.result(timeout=30) == b"x" * 10
    assert "making 10 bytes" in job.logs()
    assert job.progress is not None and job.progress.message == "halfway"


@pytest.mark.slow
def test_a_cluster_that_cannot_reach_the_store_reports_through_dask(
    store: nbjobs.Store,
    client: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    wait_for: Callable[..., Any],
) -> None:
    """Outcomes come back through the future, progress and logs as Dask events."""
    import nbjobs.executors.dask as dask_executor

    # The kernel sees another store identity than the workers do, as with a remote cluster.
    monkeypatch.setattr(dask_executor, "folder_identity", lambda path: (0, 0))
    job = store.submit(wait_for_flag, str(tmp_path), executor=client)
    seen = wait_for(lambda: job.progress)
    assert seen.message in ("started", "waiting")
    (tmp_path / "go").write_text("")
    assert job.result(timeout=30) == "done"
    job = store.submit(big, 1_000_000, executor=client)
    assert job.result(timeout=30) == b"x" * 1_000_000
    assert store.storage.blob_inline(f"r:{job.id}") is False  # a large result went to a file
    assert "making 1000000 bytes" in job.logs()
    with pytest.raises(ValueError, match="remote"):
        store.submit(boom, "remote", executor=client).result(timeout=30)


@pytest.mark.slow
def test_map_and_configure_and_task_take_a_client(store: nbjobs.Store, inproc: Any) -> None:
    jobs = store.map(add, [1, 2, 3], [10, 20, 30], executor=inproc)
    assert [j.result(timeout=30) for j in jobs] == [11, 22, 33]
    assert {j.executor for j in jobs} == {"dask"}
    nbjobs.configure(executor=inproc)
    assert nbjobs.submit(add, 1, 1).executor == "dask"

    @nbjobs.task(executor=inproc)
    def triple(x: int) -> int:
        return 3 * x

    job = triple.submit(5)
    assert job.result(timeout=30) == 15
    assert job.executor == "dask"
    weights = bytes(range(256)) * 4096  # 1 MB shared by every job of the map
    jobs = store.map(weigh, range(5), weights=weights, executor=inproc)
    assert [j.result(timeout=30) for j in jobs] == [i + len(weights) for i in range(5)]
    scattered = [k for k in inproc.who_has() if str(k).startswith("bytes-")]
    assert len(scattered) == 1  # the function and its 1 MB were sent to the cluster once
    with nbjobs.Executor(executor=inproc, store=store.path) as pool:
        assert list(pool.map(add, [1, 2], [3, 4])) == [4, 6]


@pytest.mark.slow
def test_an_executor_future_is_running_while_its_dask_task_runs(
    store: nbjobs.Store, inproc: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    with nbjobs.Executor(executor=inproc, store=store.path) as pool:
        future = pool.submit(wait_for_flag, str(tmp_path))
        wait_for(lambda: future.job.progress)  # type: ignore[attr-defined]
        assert future.running() and future.cancel() is False
        (tmp_path / "go").write_text("")
        assert future.result(timeout=30) == "done"
    assert not future.running()


def soft_limited(folder: str) -> str:
    try:
        wait_for_flag(folder)
    except nbjobs.SoftTimeout:
        return "cleaned up"
    return "not stopped"


@pytest.mark.slow
def test_soft_timeout_and_dependencies(store: nbjobs.Store, inproc: Any, tmp_path: Path) -> None:
    job = store.submit(soft_limited, str(tmp_path), executor=inproc, soft_timeout=0.2)
    assert job.result(timeout=30) == "cleaned up"
    first = store.submit(add, 1, 2, executor=inproc)
    second = store.submit(add, first, 10, executor=inproc)
    assert second.result(timeout=30) == 13


@pytest.mark.slow
def test_a_closed_or_asynchronous_client_is_refused_at_submit(
    store: nbjobs.Store, cluster: Any
) -> None:
    closed = distributed.Client(cluster.scheduler_address)
    closed.close()
    with pytest.raises(nbjobs.InvalidArgument, match="executor"):
        store.submit(add, 1, 2, executor=closed)

    async def with_an_asynchronous_client() -> None:
        async with distributed.Client(cluster.scheduler_address, asynchronous=True) as client:
            with pytest.raises(nbjobs.InvalidArgument, match="asynchronous"):
                store.submit(add, 1, 2, executor=client)

    asyncio.run(with_an_asynchronous_client())
    assert sum(store.stats().values()) == 0


@pytest.mark.slow
def test_cancelling_a_job_queued_in_dask(
    store: nbjobs.Store, inproc: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    blocker = store.submit(wait_for_flag, str(tmp_path), executor=inproc)
    wait_for(lambda: blocker.progress)
    queued = store.submit(counted, str(tmp_path), 1, executor=inproc)
    assert queued.cancel()
    wait_for(lambda: queued.status == "cancelled")
    (tmp_path / "go").write_text("")
    assert blocker.result(timeout=30) == "done"
    assert store.submit(add, 1, 2, executor=inproc).result(timeout=30) == 3
    assert not (tmp_path / "runs").exists()  # the cancelled one never ran


@pytest.mark.slow
def test_cancelling_a_running_job_stops_it_at_its_next_progress(
    store: nbjobs.Store, client: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    job = store.submit(wait_for_flag, str(tmp_path), executor=client)
    wait_for(lambda: job.progress)
    assert job.cancel()
    wait_for(lambda: job.status == "cancelled")
    wait_for((tmp_path / "go.ended").exists)  # stopped without its flag
    assert job.status == "cancelled"
    with pytest.raises(nbjobs.JobCancelled):
        job.result(timeout=5)


@pytest.mark.slow
def test_a_timeout_fails_the_job_at_once_and_drops_the_late_result(
    store: nbjobs.Store, client: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    job = store.submit(wait_for_flag, str(tmp_path), executor=client, timeout=0.5)
    with pytest.raises(nbjobs.JobTimeout):
        job.result(timeout=30)
    assert job.status == "failed"
    wait_for((tmp_path / "go.ended").exists)  # it stopped at a cooperative point
    assert job.status == "failed"


@pytest.mark.slow
def test_a_time_limit_counts_from_when_the_task_starts_not_while_it_waits_in_dask(
    tmp_path: Path, inproc: Any, wait_for: Callable[..., Any]
) -> None:
    clock = FakeClock()
    with nbjobs.Store(tmp_path / "store", clock=clock) as store:
        blocker = store.submit(wait_for_flag, str(tmp_path), executor=inproc)  # its one thread
        wait_for(lambda: blocker.progress)
        queued = store.submit(add, 1, 2, executor=inproc, timeout=10.0)
        wait_for(lambda: queued.status == "running")  # handed to Dask (it shows as running)
        fired = threading.Event()
        store._jobs.runner.alarms.at(clock.now() + 10.0, fired.set)
        clock.advance(60.0)  # far past its limit, all of it spent waiting in Dask's queue
        assert fired.wait(30)  # (the alarms due by now have run)
        (tmp_path / "go").write_text("")
        assert blocker.result(timeout=30) == "done"
        assert queued.result(timeout=30) == 3


@pytest.mark.slow
def test_an_unpicklable_argument_is_refused_at_submit(store: nbjobs.Store, inproc: Any) -> None:
    with pytest.raises(nbjobs.PayloadNotPicklable, match="argument 0"):
        store.submit(add, threading.Lock(), 1, executor=inproc)
    assert sum(store.stats().values()) == 0


def test_other_objects_are_refused_as_executors(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=r"dask\.distributed\.Client"):
        store.submit(add, 1, 2, executor=object())
    assert sum(store.stats().values()) == 0


@pytest.mark.slow
def test_a_task_writes_its_result_when_its_client_went_away(
    store: nbjobs.Store, cluster: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    own = distributed.Client(cluster.scheduler_address)
    job = store.submit(wait_for_flag, str(tmp_path), executor=own, key="orphan")
    wait_for(lambda: job.progress)
    own.close()
    (tmp_path / "go").write_text("")
    assert job.result(timeout=30) == "done"
    assert job.status == "succeeded"


_KERNEL = textwrap.dedent(
    """
    import sys, time
    import cloudpickle, distributed, nbjobs
    sys.path.insert(0, sys.argv[3])
    import test_dask
    cloudpickle.register_pickle_by_value(test_dask)
    store = nbjobs.Store(sys.argv[1])
    client = distributed.Client(sys.argv[2])
    folder = sys.argv[4]
    jobs = [
        store.submit(test_dask.wait_for_flag, folder, "a", 1, key="finishes", executor=client),
        store.submit(test_dask.wait_for_flag, folder, "b", 2, key="late", executor=client),
    ]
    deadline = time.monotonic() + 60
    while not all(j.progress for j in jobs):
        assert time.monotonic() < deadline, "the Dask tasks never reported progress"
        time.sleep(0.01)
    print("ready", flush=True)
    time.sleep(120)  # the kernel is alive until the test kills it
    """
)


@pytest.mark.slow
def test_jobs_of_a_kernel_that_died(
    cluster: Any, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    """A task that wrote its result before the kernel's jobs were marked interrupted keeps
    it; one that ends after finds its job interrupted and drops its result."""
    path = tmp_path / "store"
    folder = tmp_path / "flags"
    folder.mkdir()
    kernel = subprocess.Popen(
        [sys.executable, "-c", _KERNEL, str(path), cluster.scheduler_address,
         str(Path(__file__).parent), str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert kernel.stdout is not None
        assert kernel.stdout.readline().strip() == "ready"
    finally:
        kernel.send_signal(signal.SIGKILL)
        kernel.wait()
    (folder / "a").write_text("")
    wait_for(lambda: status_on_disk(path, "finishes") == "succeeded")  # written by its task
    store = nbjobs.Store(path)
    try:
        assert store.get("finishes").status == "succeeded"
        late = store.get("late")
        assert late.status == "interrupted"
        (folder / "b").write_text("")
        with distributed.Client(cluster.scheduler_address) as client:
            wait_for(lambda: not any(client.run(_executing).values()))  # its task ended
            again = store.submit(
                wait_for_flag, str(folder), "a", 1, key="finishes", executor=client
            )
            assert again.id == store.get("finishes").id
            assert again.result(timeout=5) == 1
            assert store.get("late").status == "interrupted"  # its late result was dropped
            (resumed,) = store.resume()  # on this store's Dask client
            assert resumed.key == "late"
            assert resumed.result(timeout=30) == 2
            assert resumed.executor == "dask"
    finally:
        store.close()


def test_import_nbjobs_does_not_import_dask() -> None:
    code = (
        "import sys, nbjobs; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
