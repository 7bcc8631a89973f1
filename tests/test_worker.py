"""executor="worker": detached worker processes on the same store.

Every test starts its workers through the `start` fixture, which stops them all at teardown
(even when the test failed) and fails the test if any worker process is left behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import wait_for_file

import nbjobs
from nbjobs.store import worker_table
from nbjobs.store.owners import owner_alive
from nbjobs.store.writer import Call
from nbjobs.worker.process import Worker

pytestmark = pytest.mark.timeout(180)

Start = Callable[..., nbjobs.WorkerInfo]


def alive(pid: int) -> bool:
    return owner_alive(f"{os.uname().nodename}:{pid}:?") and not _zombie(pid)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return True


@pytest.fixture
def start(store: nbjobs.Store) -> Iterator[Start]:
    """`start(**start_worker_options)`: a worker of `store`, stopped at teardown."""
    started: list[nbjobs.WorkerInfo] = []

    def run(**options: Any) -> nbjobs.WorkerInfo:
        options.setdefault("idle_timeout", 120)
        info = store.start_worker(**options)
        started.append(info)
        return info

    try:
        yield run
    finally:
        for w in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(w.pid, signal.SIGCONT)  # a test that paused a worker and failed
        store.stop_worker(wait=True, timeout=30, grace=0)
        orphans = [w.pid for w in started if alive(w.pid)]
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        assert not orphans, f"workers left running: {orphans}"


# --------------------------------------------------------------------------- jobs
def double(x: int) -> int:
    return x * 2


def report_and_wait(gate: str) -> str:
    nbjobs.progress(1, 4, "a quarter")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        print("hello from the worker")  # logs are stored every 0.5 s while a job writes
        time.sleep(0.05)
    return "done"


def attempt_marker(folder: str, gate: str) -> int:
    """Record this run (its attempt number), then wait for `gate`."""
    attempt = nbjobs.current_job().attempt
    Path(folder, f"run-{attempt}-{os.getpid()}").touch()
    wait_for_file(gate)
    return attempt


def runs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("run-*"))


def first_run(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any], **options: Any
) -> tuple[nbjobs.WorkerInfo, nbjobs.Job, Path, Path]:
    """A worker, and a job of it that is running its first attempt until `gate` exists:
    (worker, job, folder of run markers, gate)."""
    folder, gate = tmp_path / "runs", tmp_path / "gate"
    folder.mkdir()
    worker = start(workers=1, **options)
    job = store.submit(attempt_marker, str(folder), str(gate), executor="worker")
    wait_for(lambda: runs(folder))
    return worker, job, folder, gate


def flaky(counter: str, failures: int) -> int:
    with open(counter, "a") as f:
        f.write("x")
    n = len(Path(counter).read_text())
    if n <= failures:
        raise ConnectionError(f"attempt {n} failed")
    return n


def cleans_up() -> str:
    try:
        time.sleep(30)
    except nbjobs.SoftTimeout:
        return "cleaned up"
    return "slept"


def sleeper(pid_file: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(60)


def kill_my_worker() -> None:
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(60)


def count_run(folder: str, i: int) -> int:
    fd = os.open(os.path.join(folder, f"job-{i}"), os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, b"x")
    finally:
        os.close(fd)
    return i


# --------------------------------------------------------------------------- tests
def test_a_worker_runs_a_job_and_the_kernel_gets_its_result(
    store: nbjobs.Store, start: Start
) -> None:
    info = start(workers=2)
    assert [w.id for w in store.workers()] == [info.id]
    assert info.pid != os.getpid() and info.workers == 2 and info.cwd == os.getcwd()
    job = store.submit(double, 21, executor="worker")
    assert store.get(job.id).status in ("pending", "running", "succeeded")  # read at once
    assert job.result(timeout=60) == 42
    rec = job.record()
    assert rec.executor == "worker" and rec.attempts == 1
    assert rec.owner is not None and rec.owner.split(":")[1] == str(info.pid)


def test_map_queues_for_the_worker(store: nbjobs.Store, start: Start) -> None:
    start(workers=2)
    jobs = store.map(double, [1, 2, 3], executor="worker")
    assert [j.result(timeout=60) for j in jobs] == [2, 4, 6]
    assert {j.record().executor for j in jobs} == {"worker"}


def test_progress_and_logs_flow_into_the_store_while_the_worker_runs_the_job(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    start(workers=1)
    gate = tmp_path / "gate"
    job = store.submit(report_and_wait, str(gate), executor="worker")
    progress = wait_for(lambda: job.progress)
    assert (progress.current, progress.total, progress.message) == (1, 4, "a quarter")
    assert job.status == "running"
    wait_for(lambda: "hello from the worker" in job.logs())
    shown = subprocess.run(
        [sys.executable, "-m", "nbjobs", "show", "--store", str(store.path), job.id],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    lease = next(line for line in shown.splitlines() if line.startswith("lease_until"))
    assert re.fullmatch(r"lease_until +\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", lease), shown
    gate.touch()
    assert job.result(timeout=60) == "done"
    done, _ = nbjobs.wait([job], timeout=10)
    assert done == {job}


def test_functions_defined_in_main_or_in_a_test_are_pickled_by_value(
    store: nbjobs.Store, start: Start
) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def triple(x):\n    return 3 * x\n", namespace)
    offset = 5

    def shifted(x: int) -> int:
        return x + offset

    start(workers=1)
    assert store.submit(namespace["triple"], 7, executor="worker").result(timeout=60) == 21
    assert store.submit(shifted, 1, executor="worker").result(timeout=60) == 6


def test_retries_and_time_limits_work_in_the_worker(
    store: nbjobs.Store, start: Start, tmp_path: Path
) -> None:
    start(workers=2)
    counter = tmp_path / "count"
    job = store.submit(
        flaky, str(counter), 2, retries=3, retry_on=ConnectionError, backoff=0.01,
        executor="worker",
    )  # fmt: skip
    assert job.result(timeout=60) == 3
    assert job.attempts == 3
    assert [a["ok"] for a in job.attempt_history()] == [False, False, True]

    slow = store.submit(time.sleep, 30, timeout=0.5, executor="worker")
    with pytest.raises(nbjobs.JobTimeout):
        slow.result(timeout=60)
    soft = store.submit(cleans_up, soft_timeout=0.3, timeout=30, executor="worker")
    assert soft.result(timeout=60) == "cleaned up"


def test_a_retrying_job_of_a_dead_worker_is_adopted_without_counting_a_crash(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    first = start(workers=1)
    counter = tmp_path / "count"
    job = store.submit(
        flaky, str(counter), 1, retries=1, retry_on=ConnectionError, backoff=3.0,
        executor="worker",
    )  # fmt: skip
    wait_for(lambda: job.status == "retrying")
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: not alive(first.pid))
    second = start(workers=1)
    assert job.result(timeout=60) == 2
    rec = job.record()
    assert (rec.attempts, rec.crashes) == (2, 0)
    assert rec.owner is not None and rec.owner.split(":")[1] == str(second.pid)


def test_cancel_a_pending_worker_job(store: nbjobs.Store, start: Start, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    job = store.submit(flaky, str(counter), 0, executor="worker")  # no worker yet: pending
    assert job.status == "pending"
    assert job.cancel()
    start(workers=1)
    after = store.submit(double, 1, executor="worker")
    assert after.result(timeout=60) == 2  # the worker went past the cancelled job
    assert job.status == "cancelled" and not counter.exists()


def test_cancel_a_running_worker_job_kills_its_process(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    start(workers=1)
    pid_file = tmp_path / "pid"
    job = store.submit(sleeper, str(pid_file), executor="worker")
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text()))
    assert job.cancel()
    with pytest.raises(nbjobs.JobCancelled):
        job.result(timeout=10)
    wait_for(lambda: not alive(pid))
    assert store.submit(double, 4, executor="worker").result(timeout=60) == 8  # replaced


def test_a_worker_killed_mid_job_has_its_job_requeued_by_another_worker(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    first, job, folder, gate = first_run(store, start, tmp_path, wait_for)
    os.kill(first.pid, signal.SIGKILL)
    wait_for(lambda: not alive(first.pid))

    with nbjobs.Store(store.path) as kernel:  # a kernel opening the store leaves it alone
        assert kernel.get(job.id).status == "running"

    start(workers=1)
    wait_for(lambda: len(runs(folder)) == 2)
    gate.touch()
    assert job.result(timeout=60) == 2
    rec = job.record()
    assert (rec.crashes, rec.attempts) == (1, 2)
    history = job.attempt_history()
    assert history[0]["error"]["type"].endswith("JobCrashed")
    assert "died" in history[0]["error"]["message"]
    assert first.id not in [w.id for w in store.workers()]


def test_a_job_that_kills_its_worker_every_time_fails_after_three_requeues(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    job = store.submit(kill_my_worker, executor="worker")
    started = 0
    while job.status != "failed":
        assert started < 5, f"still {job.status} after {started} workers"
        w = start(workers=1)
        started += 1
        wait_for(lambda w=w: not alive(w.pid) or job.status == "failed")
    assert started == 5  # 4 died running it, the 5th found it past the cap
    rec = job.record()
    assert rec.crashes == 4 and rec.attempts == 4
    with pytest.raises(nbjobs.JobCrashed, match="requeued 3 times"):
        job.result(timeout=0)


def test_a_hung_worker_loses_its_job_when_its_lease_expires(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    hung, job, folder, gate = first_run(store, start, tmp_path, wait_for, lease=1.0)
    os.kill(hung.pid, signal.SIGSTOP)
    try:
        other = start(workers=1, lease=1.0, new=True)
        wait_for(lambda: len(runs(folder)) == 2)
        rec = job.record()
        assert rec.crashes == 1 and rec.owner is not None
        assert rec.owner.split(":")[1] == str(other.pid)
        gate.touch()
        assert job.result(timeout=60) == 2
    finally:
        os.kill(hung.pid, signal.SIGCONT)
    # The paused worker wakes up, its late outcome is dropped and it gives the job up.
    assert store.submit(double, 5, executor="worker").result(timeout=60) == 10
    assert job.status == "succeeded" and job.result() == 2


def test_an_idle_worker_exits(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    info = start(workers=1, idle_timeout=0.5)
    assert store.submit(double, 3, executor="worker").result(timeout=60) == 6
    wait_for(lambda: not alive(info.pid))
    assert store.workers() == []


def test_stop_worker_hands_running_jobs_back_to_another_worker(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    first, job, folder, gate = first_run(store, start, tmp_path, wait_for)
    stopped = store.stop_worker(first.id, grace=0)
    assert [w.id for w in stopped] == [first.id]
    assert not alive(first.pid) and store.workers() == []
    rec = job.record()
    assert (rec.status, rec.owner, rec.crashes) == ("pending", None, 0)

    start(workers=1)
    wait_for(lambda: len(runs(folder)) == 2)
    gate.touch()
    assert job.result(timeout=60) == 2


def test_two_workers_never_run_the_same_job_twice(
    store: nbjobs.Store, start: Start, tmp_path: Path
) -> None:
    start(workers=2)
    start(workers=2, new=True)
    jobs = [store.submit(count_run, str(tmp_path), i, executor="worker") for i in range(60)]
    assert [j.result(timeout=120) for j in jobs] == list(range(60))
    assert {p.read_text() for p in tmp_path.glob("job-*")} == {"x"}
    assert len(list(tmp_path.glob("job-*"))) == 60


def test_the_nbjobs_worker_command_serves_until_ctrl_c(
    store: nbjobs.Store, wait_for: Callable[..., Any]
) -> None:
    argv = [sys.executable, "-m", "nbjobs", "worker", "--store", str(store.path), "--workers", "1"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        (info,) = wait_for(store.workers)
        assert info.pid == proc.pid
        assert store.submit(lambda x: x * 3, 5, executor="worker").result(timeout=60) == 15
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert "stopped" in out and store.workers() == []


def test_nbjobs_retry_queues_a_worker_job_for_the_workers(
    store: nbjobs.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    from nbjobs.cli.entry import main

    job = store.submit(double, 2, executor="worker")  # no worker: it stays pending
    assert job.cancel()
    assert main(["--store", str(store.path), "retry", job.id]) == 0
    assert "queued 1 job for the detached workers (0 running" in capsys.readouterr().out
    assert job.status == "pending"


def test_the_panel_header_counts_live_workers(store: nbjobs.Store, start: Start) -> None:
    from nbjobs.widgets.panel_view import Panel

    start(workers=1)
    panel = Panel(store)
    panel.refresh()
    assert "workers</span> 1" in panel.header.value


# --------------------------------------------------------------------------- start_worker re-run
def test_starting_a_worker_again_returns_the_live_one(store: nbjobs.Store, start: Start) -> None:
    first = start(workers=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # same settings: nothing to say
        again = start(workers=1)
        default_size = nbjobs.start_worker(store=store, idle_timeout=120)  # workers not given
    assert again.id == default_size.id == first.id and again.pid == first.pid
    assert [w.id for w in store.workers()] == [first.id]
    assert store.submit(double, 4, executor="worker").result(timeout=60) == 8


def test_new_true_starts_another_worker(store: nbjobs.Store, start: Start) -> None:
    first = start(workers=1)
    second = nbjobs.start_worker(1, 120, store=store, new=True)
    assert second.id != first.id and alive(second.pid)
    assert [w.id for w in store.workers()] == [first.id, second.id]
    store.stop_worker(second.id, grace=0)
    assert not alive(second.pid)


def test_a_worker_reused_with_other_settings_warns_naming_them(
    store: nbjobs.Store, start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = start(workers=1)
    with pytest.warns(UserWarning, match=r"runs 1 jobs at once, not 3.*new=True") as caught:
        again = start(workers=3)
    assert again.id == first.id and again.workers == 1
    assert caught[0].filename == __file__  # it points at the caller's line
    monkeypatch.chdir(tmp_path)
    with pytest.warns(UserWarning, match=rf"runs in {first.cwd}, not in .*{tmp_path.name}"):
        assert start(workers=1).id == first.id
    assert len(store.workers()) == 1


def test_a_stopping_worker_is_not_reused(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    stopping, job, _folder, gate = first_run(store, start, tmp_path, wait_for)
    store.stop_worker(stopping.id, wait=False, grace=60)  # it lets its job finish
    assert [w.state for w in store.workers()] == ["stopping"]
    fresh = start(workers=1)
    assert fresh.id != stopping.id
    gate.touch()
    assert job.result(timeout=60) == 1
    wait_for(lambda: not alive(stopping.pid))
    assert [w.id for w in store.workers()] == [fresh.id]


def test_a_dead_worker_is_not_reused(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    dead = start(workers=1)
    os.kill(dead.pid, signal.SIGKILL)
    wait_for(lambda: not alive(dead.pid))
    fresh = start(workers=1)
    assert fresh.id != dead.id and alive(fresh.pid)
    assert store.submit(double, 5, executor="worker").result(timeout=60) == 10


def test_a_reused_worker_serves_another_idle_timeout_then_exits(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    first = start(workers=1, idle_timeout=2.0)
    assert start(workers=1, idle_timeout=2.0).id == first.id  # marks it wanted
    log = Path(first.log)
    # At its idle deadline it finds it was wanted, and serves on instead of exiting.
    wait_for(lambda: "reused by start_worker()" in log.read_text(), timeout=60)
    assert alive(first.pid)
    assert store.submit(double, 6, executor="worker").result(timeout=60) == 12
    wait_for(lambda: not alive(first.pid), timeout=60)  # then idle again: it exits
    assert store.workers() == []


# --------------------------------------------------------------------------- nbjobs.Executor
def test_executor_futures_are_running_while_a_worker_runs_their_jobs(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    start(workers=1)
    folder, gate = tmp_path / "runs", tmp_path / "gate"
    folder.mkdir()
    with nbjobs.Executor(executor="worker", store=store) as pool:
        first = pool.submit(attempt_marker, str(folder), str(gate))
        queued = pool.submit(double, 21)  # the worker's only slot is busy: it waits
        wait_for(lambda: runs(folder))
        wait_for(first.running)
        assert not queued.running() and not queued.done()
        assert first.cancel() is False  # running: as with ThreadPoolExecutor, too late
        gate.touch()
        assert first.result(timeout=60) == 1
        assert queued.result(timeout=60) == 42
    assert not first.running() and not first.cancelled()


def test_cancelling_an_executor_future_cancels_its_queued_worker_job(
    store: nbjobs.Store, start: Start
) -> None:
    with nbjobs.Executor(executor="worker", store=store) as pool:
        future = pool.submit(double, 2)  # no worker yet: it stays pending
        assert future.cancel()
        assert cf.wait([future], timeout=30) == ({future}, set())
        assert future.job.status == "cancelled"  # type: ignore[attr-defined]
        start(workers=1)
        assert pool.submit(double, 3).result(timeout=60) == 6
    assert future.job.status == "cancelled"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda s: s.start_worker(workers=0), "workers"),
        (lambda s: s.start_worker(workers=1, idle_timeout=-1), "idle_timeout"),
        (lambda s: s.start_worker(workers=1, lease=0), "lease"),
        (lambda s: s.start_worker(workers=1, new="yes"), "new"),
        (lambda s: s.stop_worker("no-such-worker"), "worker"),
        (lambda s: s.stop_worker(42), "worker"),
    ],
)
def test_bad_worker_arguments_raise_naming_them(
    store: nbjobs.Store, call: Callable[[nbjobs.Store], Any], named: str
) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=named):
        call(store)
    assert store.workers() == []
    assert not (store.path / "logs").exists()


# --------------------------------------------------------------------------- a real kernel
KERNEL_SUBMIT = """\
import json, os, time, nbjobs

def nap(gate):
    with open(os.environ["NBJOBS_TEST_LOG"], "a") as f:
        f.write("start\\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "slept"

info = nbjobs.start_worker(workers=1, idle_timeout=120)
job = nbjobs.submit(nap, os.environ["NBJOBS_TEST_GATE"], key="nap", executor="worker")
deadline = time.monotonic() + 60
while not os.path.exists(os.environ["NBJOBS_TEST_LOG"]):
    assert time.monotonic() < deadline, "the job never started"
    time.sleep(0.01)
print(json.dumps({"id": job.id, "pid": info.pid, "kernel": os.getpid()}))
"""
KERNEL_AFTER_RESTART = """\
import json, os, nbjobs
job = nbjobs.get("nap")
print(json.dumps({"id": job.id, "status": job.status, "workers": [w.pid for w in nbjobs.workers()],
                  "kernel": os.getpid()}))
"""
KERNEL_RESUBMIT = """\
def nap(gate):
    raise AssertionError("ran again in the kernel")

job = nbjobs.submit(nap, os.environ["NBJOBS_TEST_GATE"], key="nap", executor="worker")
open(os.environ["NBJOBS_TEST_GATE"], "w").close()
print(json.dumps({"id": job.id, "result": job.result(timeout=60), "attempts": job.attempts}))
"""


@pytest.mark.slow
def test_a_worker_job_outlives_a_kernel_restart_and_its_key_finds_it(tmp_path: Path) -> None:
    from kernel_helpers import Kernel

    store_path, log = tmp_path / "store", tmp_path / "runs.log"
    env = {
        **os.environ,
        "NBJOBS_STORE": str(store_path),
        "NBJOBS_TEST_LOG": str(log),
        "NBJOBS_TEST_GATE": str(tmp_path / "gate"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    cwd = tmp_path / "notebook"
    cwd.mkdir()
    kernel = Kernel(cwd, env)
    worker_pid = None
    try:
        first = kernel.json(KERNEL_SUBMIT)
        worker_pid = first["pid"]
        kernel.restart(now=True)  # killed, as by a crash: the worker has its own session
        after = kernel.json(KERNEL_AFTER_RESTART)
        assert after["kernel"] != first["kernel"]
        assert (after["id"], after["status"], after["workers"]) == (
            first["id"], "running", [worker_pid],
        )  # fmt: skip
        again = kernel.json(KERNEL_RESUBMIT)
        assert again == {"id": first["id"], "result": "slept", "attempts": 1}
        assert log.read_text() == "start\n"
    finally:
        kernel.stop()
        with nbjobs.Store(store_path) as store:
            store.stop_worker(wait=True, timeout=30, grace=0)
        if worker_pid is not None and alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
            pytest.fail(f"the worker {worker_pid} was left running")


# --------------------------------------------------------------------------- dependencies
def _sum_of(values: list[int]) -> int:
    return sum(values)


def test_a_worker_job_waits_for_its_dependencies_and_gets_their_results(
    store: nbjobs.Store, start: Start, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    first = store.submit(report_and_wait, str(gate))  # a kernel thread job, still running
    second = store.submit(double, 21, executor="worker")
    dependent = store.submit(lambda a, b: f"{a}+{b}", first, second, executor="worker")
    start(workers=2)
    assert second.result(timeout=60) == 42
    store.flush()
    assert dependent.status == "pending"  # the worker leaves it queued while `first` runs
    gate.touch()
    assert dependent.result(timeout=60) == "done+42"
    assert store.get(dependent.id).record().deps == (first.id, second.id)


def test_a_worker_fails_a_job_whose_dependency_failed_without_running_it(
    store: nbjobs.Store, start: Start
) -> None:
    bad = store.submit(divmod, 1, 0)
    with pytest.raises(ZeroDivisionError):
        bad.result(timeout=60)
    dependent = store.submit(_sum_of, [bad, 1], executor="worker")
    start(workers=1)
    with pytest.raises(nbjobs.DependencyFailed, match="ZeroDivisionError"):
        dependent.result(timeout=60)
    assert dependent.attempts == 0


# --------------------------------------------------------------------------- wake-ups
def test_a_submit_wakes_a_worker_whose_poll_is_long(
    store: nbjobs.Store, start: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBJOBS_WORKER_POLL", "60")  # the fallback poll: far beyond the deadline
    start(workers=1)
    deadline = time.monotonic() + 30
    for i in range(3):  # each after the worker went back to waiting: only a wake-up starts it
        job = store.submit(double, i, executor="worker")
        assert job.result(timeout=max(0.0, deadline - time.monotonic())) == 2 * i


RACE_TO_START = """
import os, sys, time, nbjobs
store, go = sys.argv[1], sys.argv[2]
deadline = time.monotonic() + 60
while not os.path.exists(go) and time.monotonic() < deadline:
    time.sleep(0.001)
print(nbjobs.Store(store).start_worker(workers=1, idle_timeout=120).id)
"""


def test_two_kernels_starting_a_worker_at_once_start_one(
    store: nbjobs.Store, start: Start, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    kernels = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_TO_START, str(store.path), str(go)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    go.touch()  # both look for a live worker at the same moment
    ids = [k.communicate(timeout=120)[0].strip() for k in kernels]
    assert all(k.returncode == 0 for k in kernels)
    assert ids[0] == ids[1]  # the second found the first one's worker
    assert [w.id for w in store.workers()] == [ids[0]]


def test_a_stale_socket_of_a_dead_worker_breaks_nothing_and_is_cleaned_up(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    dead = start(workers=1)
    bell = store.path / "workers" / f"{dead.id}.sock"
    assert bell.exists()
    os.kill(dead.pid, signal.SIGKILL)
    wait_for(lambda: not alive(dead.pid))
    assert bell.exists() and str(bell) in store.storage.read(
        lambda sql: worker_table.bells(sql, store.path, os.uname().nodename)
    )  # a submit rings it
    jobs = store.map(double, range(5), executor="worker")  # rings the dead worker's socket
    start(workers=1)
    assert [j.result(timeout=60) for j in jobs] == [0, 2, 4, 6, 8]
    wait_for(lambda: not bell.exists())  # reaped with the dead worker's row


def test_a_worker_finds_jobs_by_polling_when_wake_ups_are_lost(
    store: nbjobs.Store, start: Start, wait_for: Callable[..., Any]
) -> None:
    info = start(workers=1)
    bell = store.path / "workers" / f"{info.id}.sock"
    bell.unlink()
    job = store.submit(double, 4, executor="worker")
    assert job.result(timeout=60) == 8


def test_a_worker_stopped_removes_its_socket(store: nbjobs.Store, start: Start) -> None:
    info = start(workers=1)
    bell = store.path / "workers" / f"{info.id}.sock"
    assert bell.exists()
    store.stop_worker(info.id, grace=0)
    assert not bell.exists()


def test_a_submit_wakes_every_worker(
    store: nbjobs.Store, start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    monkeypatch.setenv("NBJOBS_WORKER_POLL", "60")
    start(workers=1)
    start(workers=1, new=True)
    folder, gate = tmp_path / "runs", tmp_path / "gate"
    folder.mkdir()
    jobs = [
        store.submit(attempt_marker, str(folder), str(gate), executor="worker") for _ in range(2)
    ]
    wait_for(lambda: len(runs(folder)) == 2, timeout=30)  # one on each worker
    gate.touch()
    assert [j.result(timeout=30) for j in jobs] == [1, 1]


def test_a_kernel_job_ending_wakes_the_worker_whose_job_waits_for_it(
    store: nbjobs.Store, start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBJOBS_WORKER_POLL", "60")  # only a wake-up can start it in time
    start(workers=1)
    folder, gate = tmp_path / "runs", tmp_path / "gate"
    folder.mkdir()
    first = store.submit(attempt_marker, str(folder), str(gate))  # in this kernel's threads
    then = store.submit(double, first, executor="worker")
    # The worker has looked at its queue since `then` was committed (and left it waiting):
    assert store.submit(double, 1, executor="worker").result(timeout=30) == 2
    gate.touch()
    assert first.result(timeout=30) == 1
    assert then.result(timeout=30) == 2


def marker_after(_dependency: int, folder: str, gate: str) -> int:
    return attempt_marker(folder, gate)


def test_a_full_worker_wakes_another_for_the_jobs_it_cannot_take(
    store: nbjobs.Store, start: Start, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    wait_for: Callable[..., Any],
) -> None:  # fmt: skip
    monkeypatch.setenv("NBJOBS_WORKER_POLL", "60")
    first, gate, later, gate2 = tmp_path / "a", tmp_path / "gate", tmp_path / "b", tmp_path / "g2"
    first.mkdir()
    later.mkdir()
    start(workers=1)
    start(workers=1, new=True)
    dep = store.submit(attempt_marker, str(first), str(gate), executor="worker")
    wait_for(lambda: runs(first), timeout=30)
    jobs = [
        store.submit(marker_after, dep, str(later), str(gate2), executor="worker") for _ in range(2)
    ]
    store.flush()
    gate.touch()  # the worker that ran `dep` takes one dependent and rings the other
    wait_for(lambda: len(runs(later)) == 2, timeout=30)
    gate2.touch()
    assert [j.result(timeout=30) for j in jobs] == [1, 1]


def test_waiting_for_a_worker_job_with_no_worker_says_to_start_one(store: nbjobs.Store) -> None:
    job = store.submit(pow, 2, 3, executor="worker")
    with pytest.raises(nbjobs.WaitTimeout, match=r"no detached worker .* nbjobs.start_worker\(\)"):
        job.result(timeout=0.05)
    assert job.status == "pending"


def test_a_stopping_worker_does_not_hand_back_a_job_whose_success_is_being_recorded(
    store: nbjobs.Store, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    """The worker's pool thread leaves a success to the writer thread; a stop (hand-back)
    between the two must keep it: the job ends succeeded, not back in the queue."""
    folder, gate = tmp_path / "runs", tmp_path / "gate"
    folder.mkdir()
    job = store.submit(attempt_marker, str(folder), str(gate), executor="worker")
    store.flush()
    worker = Worker(str(store.path), slots=1)  # in this process, without its loop
    try:
        worker.claims.ask()
        wait_for(lambda: job.id in worker.held)
        local = worker.held[job.id]
        wait_for(lambda: runs(folder))  # running in the worker's child
        held = threading.Event()
        worker.storage.writer.put(Call(lambda sql: held.wait(30)))  # the writer is busy
        gate.touch()
        wait_for(lambda: local.returning)  # returned; its success waits for the writer
        stopping = threading.Thread(target=worker._hand_back)  # ends with a flush
        stopping.start()
        held.set()
        stopping.join(30)
        assert not stopping.is_alive()
        assert job.result(timeout=30) == 1
        assert store.get(job.id).status == "succeeded"
    finally:
        worker.pool.shutdown()
        worker.storage.close()


def test_the_worker_log_names_each_job_its_attempts_and_outcome(
    store: nbjobs.Store, start: Start, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    log = Path(start(workers=1).log)
    counter = tmp_path / "count"
    job = store.submit(
        flaky, str(counter), 1, retries=2, retry_on=ConnectionError, backoff=0.01,
        key="fetch-1", executor="worker",
    )  # fmt: skip
    assert job.result(timeout=60) == 2
    failed = store.submit(flaky, str(tmp_path / "other"), 5, executor="worker")
    with pytest.raises(ConnectionError):
        failed.result(timeout=60)
    label = f"job {job.id} (flaky, key 'fetch-1')"
    wait_for(lambda: f"{label}: succeeded" in log.read_text())
    text = log.read_text()
    assert "with 1 slot " in text
    assert f"{label}: attempt 1 starts" in text
    assert f"{label}: attempt 2 starts after ConnectionError: attempt 1 failed" in text
    assert f"{label}: succeeded after 2 attempts; the last took " in text
    wait_for(lambda: f"job {failed.id} (flaky): failed after 1 attempt " in log.read_text())
    assert "(ConnectionError: attempt 1 failed)" in log.read_text()


def test_a_claimed_job_holds_its_slot_before_its_attempt_begins() -> None:
    """A worker with one slot claimed a second job while its first was claimed but not yet
    begun by the pool thread (attempt 0 looked like 'its call returned'): under load both
    were held, the second waiting behind the first with its lease renewed."""
    from nbjobs.records import JobRecord, transition
    from nbjobs.running.local_job import LocalJob

    claimed = LocalJob(transition(JobRecord(id="j1", name="f"), "running", 1.0), double, (), {})
    claimed.claimed = True
    assert claimed.still_running and not claimed.returning
