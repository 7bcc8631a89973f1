"""Idempotency keys: one job per key even under racing processes; resubmission semantics."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from gates import wait_for_file

import nbjobs

KEYS = [f"key-{i:02d}" for i in range(50)]


def append_line(path: str, text: str) -> str:
    """Record one run of a job: one line per call, appended atomically (O_APPEND)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{text}\n".encode())
    finally:
        os.close(fd)
    return text


def runs(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def flaky(path: str, label: str) -> str:
    """Fails on its first run, succeeds afterwards."""
    append_line(path, label)
    if len(runs(Path(path))) == 1:
        raise ValueError(f"first run of {label} fails")
    return f"ok {label}"


def echo(key: Any = None, name: Any = None, executor: Any = None, force: Any = None) -> Any:
    return {"key": key, "name": name, "executor": executor, "force": force}


def submit_in_another_kernel(store_path: str, log_path: str, out: multiprocessing.Queue) -> None:
    """Child process: a kernel that submits a keyed job with arguments and waits for it."""
    try:
        store = nbjobs.Store(store_path)
        job = store.submit(append_line, log_path, "from-child", key="shared-key")
        out.put((job.id, job.result(timeout=60)))
        store.close()
    except BaseException as exc:
        out.put(repr(exc))


def submit_all_keys(
    store_path: str, log_path: str, barrier: Any, out: multiprocessing.Queue
) -> None:
    """Child process: submit the same 50 keys as everyone else, at the same moment."""
    try:
        store = nbjobs.Store(store_path)
        barrier.wait(timeout=120)
        jobs = [store.submit(append_line, log_path, key, key=key) for key in KEYS]
        ids = {job.key: job.id for job in jobs}
        for job in jobs:
            job.result(timeout=120)
        store.close()
        out.put(ids)
    except BaseException as exc:
        out.put(repr(exc))


@pytest.mark.slow
def test_eight_processes_submitting_the_same_keys_make_one_job_each(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    nbjobs.Store(store_path).close()  # create the folder once, before the race
    log_path = tmp_path / "runs.log"
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(8)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=submit_all_keys, args=(str(store_path), str(log_path), barrier, out))
        for _ in range(8)
    ]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=240) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=60)
    errors = [r for r in results if not isinstance(r, dict)]
    assert not errors, errors
    assert [p.exitcode for p in procs] == [0] * 8

    # Every process saw the same job id for each key.
    for key in KEYS:
        assert len({r[key] for r in results}) == 1, key

    lines = runs(log_path)
    assert len(lines) == 50, sorted(lines)
    assert sorted(lines) == KEYS

    store = nbjobs.Store(store_path)
    try:
        stats = store.stats()
        assert sum(stats[s] for s in nbjobs.STATES) == 50
        assert stats["succeeded"] == 50
        listed = store.jobs(limit=10**6)
        assert sorted(j.key for j in listed) == KEYS
        assert {j.key: j.id for j in listed} == results[0]
    finally:
        store.close()


def test_different_arguments_under_an_existing_key_warn_and_return_it(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    first = nbjobs.submit(append_line, str(log), "one", key="the-key")
    assert first.result(timeout=60) == "one"

    with pytest.warns(UserWarning, match="the-key"):
        second = nbjobs.submit(append_line, str(log), "two", key="the-key")
    assert second.id == first.id
    assert second.result(timeout=60) == "one"
    assert runs(log) == ["one"]


def test_same_arguments_under_an_existing_key_do_not_warn(
    tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    log = tmp_path / "runs.log"
    first = nbjobs.submit(append_line, str(log), "one", key="k")
    first.result(timeout=60)
    again = nbjobs.submit(append_line, str(log), "one", key="k")
    assert again.id == first.id
    assert [str(w.message) for w in recwarn] == []
    assert runs(log) == ["one"]


def test_resubmitting_a_running_job_returns_it_without_a_second_run(
    tmp_path: Path, wait_for: Any
) -> None:
    log = tmp_path / "runs.log"
    gate = tmp_path / "gate"
    first = nbjobs.submit(run_when_gate_opens, str(log), str(gate), key="slow")
    wait_for(lambda: first.status == "running")
    again = nbjobs.submit(run_when_gate_opens, str(log), str(gate), key="slow")
    assert again.id == first.id
    assert again.status == "running"
    gate.touch()
    assert again.result(timeout=60) == "done"
    assert runs(log) == ["ran"]


def run_when_gate_opens(log: str, gate: str) -> str:
    if not wait_for_file(gate):
        raise TimeoutError("gate never opened")
    append_line(log, "ran")
    return "done"


def test_force_reruns_a_succeeded_job(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    first = nbjobs.submit(append_line, str(log), "x", key="forced")
    first.result(timeout=60)
    again = nbjobs.submit(append_line, str(log), "x", key="forced", force=True)
    assert again.id == first.id
    assert again.result(timeout=60) == "x"
    assert runs(log) == ["x", "x"]
    assert nbjobs.get("forced").status == "succeeded"
    assert nbjobs.stats()["succeeded"] == 1


def test_a_failed_keyed_job_runs_again_under_the_same_id_keeping_history(
    tmp_path: Path,
) -> None:
    log = tmp_path / "runs.log"
    first = nbjobs.submit(flaky, str(log), "f", key="flaky")
    first.wait(timeout=60)
    assert first.status == "failed"
    attempts_before = first.attempts
    assert attempts_before >= 1
    with pytest.raises(ValueError, match="first run of f fails"):
        first.result(timeout=60)

    again = nbjobs.submit(flaky, str(log), "f", key="flaky")
    assert again.id == first.id
    assert again.result(timeout=60) == "ok f"
    assert again.status == "succeeded"
    assert again.attempts > attempts_before
    assert runs(log) == ["f", "f"]
    # The first run's failure is still part of the job's record.
    assert "first run of f fails" in json.dumps(again.to_dict())
    stats = nbjobs.stats()
    assert stats["succeeded"] == 1
    assert stats["failed"] == 0


def test_a_succeeded_keyed_job_is_not_rerun_by_resubmission(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    for _ in range(3):
        job = nbjobs.submit(append_line, str(log), "once", key="once")
        assert job.result(timeout=60) == "once"
    assert runs(log) == ["once"]


def test_forget_refuses_a_pending_job_that_would_still_run(tmp_path: Path) -> None:
    """A queued job is not removed behind its executor's back (it would run anyway)."""
    gate = threading.Event()
    log = tmp_path / "runs.log"
    nbjobs.configure(workers=1)
    with pytest.warns(UserWarning, match="cannot be resumed"):  # an Event is not picklable
        busy = nbjobs.submit(gate.wait, 60)
    queued = nbjobs.submit(append_line, str(log), "queued", key="queued")
    try:
        with pytest.raises(nbjobs.InvalidArgument, match="'queued' is pending; cancel it"):
            nbjobs.forget("queued")
        assert nbjobs.get("queued").status == "pending"
        assert queued.cancel()
        assert nbjobs.forget("queued") is True
    finally:
        gate.set()
    assert busy.result(timeout=60) is True
    nbjobs.submit(append_line, str(log), "after", executor="thread").result(timeout=60)
    assert runs(log) == ["after"]  # the forgotten job never ran


def test_forget_removes_the_job(tmp_path: Path) -> None:
    log = tmp_path / "runs.log"
    job = nbjobs.submit(append_line, str(log), "a", key="gone")
    job.result(timeout=60)
    assert nbjobs.forget("gone") is True
    with pytest.raises(nbjobs.JobNotFound) as info:
        nbjobs.get("gone")
    assert isinstance(info.value, KeyError)
    assert isinstance(info.value, nbjobs.NbjobsError)
    assert "gone" in str(info.value)
    with pytest.raises(KeyError):
        nbjobs.get(job.id)
    assert nbjobs.forget("gone") is False
    assert sum(nbjobs.stats().values()) == 0
    assert nbjobs.jobs() == []

    again = nbjobs.submit(append_line, str(log), "a", key="gone")
    assert again.result(timeout=60) == "a"
    assert runs(log) == ["a", "a"]


def test_get_of_an_unknown_key_raises_job_not_found() -> None:
    with pytest.raises(KeyError):
        nbjobs.get("no-such-job")


def test_kwargs_pass_reserved_names_through_to_the_function() -> None:
    job = nbjobs.submit(echo, kwargs={"key": 1, "name": "n", "executor": "e", "force": "f"})
    assert job.key is None
    assert job.result(timeout=60) == {"key": 1, "name": "n", "executor": "e", "force": "f"}

    keyed = nbjobs.submit(echo, key="opt-key", kwargs={"key": 2})
    assert keyed.key == "opt-key"
    assert keyed.result(timeout=60) == {"key": 2, "name": None, "executor": None, "force": None}
    assert nbjobs.get("opt-key").id == keyed.id


@pytest.mark.slow
def test_a_key_from_another_kernel_warns_only_when_arguments_differ(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    log = tmp_path / "runs.log"
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=submit_in_another_kernel, args=(str(store_path), str(log), out))
    proc.start()
    try:
        got = out.get(timeout=120)
    finally:
        proc.join(timeout=60)
    assert isinstance(got, tuple), got
    job_id, value = got
    assert value == "from-child"

    store = nbjobs.Store(store_path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            same = store.submit(append_line, str(log), "from-child", key="shared-key")
        assert same.id == job_id
        with pytest.warns(UserWarning, match="shared-key"):
            other = store.submit(append_line, str(log), "different", key="shared-key")
        assert other.id == job_id
        assert other.result(timeout=60) == "from-child"
    finally:
        store.close()
    assert runs(log) == ["from-child"]
