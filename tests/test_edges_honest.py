"""Honest at the edges (issue #16): the mistakes notebook users make get clear answers.

- `cancel()` of a running thread job that never reaches a cooperative point: `cancelled` in
  the store at once, its slot refilled, its late result dropped, and a warning that says the
  thread runs on.
- A job that succeeded after retries looks succeeded everywhere (repr, to_dict, exception,
  traceback, the CLI, the widgets); its earlier errors are in its attempt history.
- A job's traceback starts at the user's function (thread, process and worker jobs), in
  `result()`'s note, `traceback()`, the CLI and the panel; nbjobs frames are kept only when
  no frame of user code is in it.
- Ctrl-C (the kernel's stop button) during `result()`/`wait()` says plainly that only the wait
  stopped, that the job keeps running and that `job.cancel()` stops it, with a short traceback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import poll, wait_for_file
from kernel_helpers import Kernel

import nbjobs

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def marks(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "marks"
    folder.mkdir()
    yield folder
    (folder / "ALL.open").touch()  # no test leaves a job blocked


def held(folder: str, name: str) -> str:
    """Write `<name>.started` (our thread id), block until `<name>.open`, write `<name>.ended`.
    Never calls `nbjobs.progress()`: no cooperative point."""
    base = Path(folder)
    (base / f"{name}.tmp").write_text(str(threading.get_ident()))
    (base / f"{name}.tmp").rename(base / f"{name}.started")
    wait_for_file(base / f"{name}.open", base / "ALL.open")
    (base / f"{name}.ended").touch()
    return f"{name} finished late"


def thread_of(folder: Path, name: str) -> int:
    return int((folder / f"{name}.started").read_text())


def thread_gone(ident: int) -> bool:
    return all(t.ident != ident for t in threading.enumerate())


# ------------------------------------------------------------------ cancel of a running thread job
def test_cancel_of_a_running_thread_job_is_true_to_its_word(
    tmp_path: Path, marks: Path, wait_for: Any
) -> None:
    path = tmp_path / "store"
    with nbjobs.Store(path, workers=1) as store, nbjobs.Store(path) as other:
        job = store.submit(held, str(marks), "stuck")
        wait_for(lambda: (marks / "stuck.started").exists(), timeout=60)
        stuck = thread_of(marks, "stuck")

        with pytest.warns(UserWarning, match=r"cannot stop.*runs on.*progress\(\)"):
            assert job.cancel() is True
        # At once, in this kernel and in the store (another process would see it too).
        assert job.status == "cancelled"
        assert other.get(job.id).status == "cancelled"
        with pytest.raises(nbjobs.JobCancelled):
            job.result(timeout=0)

        # workers=1: the slot went to a new thread, while the old one is still blocked.
        after = store.submit(pow, 2, 10)
        assert after.result(timeout=60) == 1024
        assert not thread_gone(stuck) and not (marks / "stuck.ended").exists()

        # The gate opens: the late result is dropped, the job stays cancelled.
        (marks / "stuck.open").touch()
        wait_for(lambda: thread_gone(stuck), timeout=60)
        store.flush()
        assert job.status == "cancelled"
        assert other.get(job.id).status == "cancelled"
        with pytest.raises(nbjobs.JobCancelled):
            job.result(timeout=0)
        assert job.attempt_history()[-1]["cancelled"] is True


def test_a_cancelled_thread_job_stays_cancelled_when_its_kernel_ends(
    tmp_path: Path, marks: Path, wait_for: Any
) -> None:
    path = tmp_path / "store"
    store = nbjobs.Store(path, workers=1)
    job = store.submit(held, str(marks), "stuck")
    wait_for(lambda: (marks / "stuck.started").exists(), timeout=60)
    with pytest.warns(UserWarning):
        assert job.cancel() is True
    store.close()  # the thread is still blocked: what a kernel restart leaves behind
    with nbjobs.Store(path) as after:
        assert after.get(job.id).status == "cancelled"


# ------------------------------------------------------------------ success after retries
def flaky_once(flag: str) -> str:
    if not os.path.exists(flag):
        Path(flag).write_text("failed once")
        raise ConnectionError("the service hung up")
    return "fetched"


def cli(store: nbjobs.Store, *args: str) -> str:
    """`nbjobs --store PATH ARGS...` in a terminal of its own; its stdout."""
    root = str(Path(nbjobs.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run(
        [sys.executable, "-m", "nbjobs", "--store", str(store.path), *args],
        capture_output=True, text=True, timeout=120, env=env, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_job_that_succeeded_after_a_retry_looks_succeeded_everywhere(
    store: nbjobs.Store, tmp_path: Path
) -> None:
    job = store.submit(
        flaky_once, str(tmp_path / "flag"), retries=2, retry_on=ConnectionError, backoff=0
    )
    assert job.result(timeout=60) == "fetched"
    store.flush()
    assert job.attempts == 2

    assert "error" not in repr(job) and "ConnectionError" not in repr(job)
    assert job.error is None and job.to_dict()["error"] is None
    assert job.exception(timeout=0) is None
    assert job.traceback() is None
    assert "ConnectionError" not in job._repr_html_()
    # The earlier attempt's error is kept where history is shown.
    first, last = job.attempt_history()
    assert first["error"]["type"] == "ConnectionError" and last["ok"] is True

    listed = [line for line in cli(store, "ls").splitlines() if line.startswith(job.id)]
    assert len(listed) == 1 and "succeeded" in listed[0]
    assert "ConnectionError" not in listed[0]
    shown = cli(store, "show", job.id)
    assert "Traceback inside the job" not in shown
    attempts = shown.split("Attempts:")[1]
    assert "ConnectionError: the service hung up" in attempts
    assert "error " not in shown.split("Attempts:")[0]

    pytest.importorskip("ipywidgets")
    from nbjobs.widgets.details import details_html
    from nbjobs.widgets.job_view import JobView
    from nbjobs.widgets.panel_view import Panel

    panel = Panel(store)
    panel.refresh()
    row = next(row for row in panel.rows if row.job_id == job.id)
    assert "fetched" in row.right.value and "ConnectionError" not in row.right.value
    details = details_html(store, job.record())
    assert "ConnectionError" in details  # in the attempt history only
    assert ">traceback<" not in details
    view = JobView(job)
    view.tick()
    assert "ConnectionError" not in view.outcome.value
    assert view.tb_button.layout.display == "none"
    view.close()
    panel.close()


# ------------------------------------------------------------------ tracebacks start at user code
def fails_deep(x: int) -> None:
    check(x)


def check(x: int) -> None:
    raise ValueError(f"bad input {x}")


async def fails_async(x: int) -> None:
    check(x)


def frames(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip().startswith('File "')]


def from_user_code(text: str, first: str) -> bool:
    shown = frames(text)
    ours = f"{os.sep}nbjobs{os.sep}"
    return bool(shown) and shown[0].endswith(f"in {first}") and not any(ours in f for f in shown)


@pytest.mark.parametrize("executor", ["thread", "process", "worker"])
def test_a_jobs_traceback_starts_at_its_function(store: nbjobs.Store, executor: str) -> None:
    if executor == "worker":
        store.start_worker(workers=1, idle_timeout=120)
    try:
        job = store.submit(fails_deep, 3, executor=executor)
        with pytest.raises(ValueError, match="bad input 3") as caught:
            job.result(timeout=120)
    finally:
        if executor == "worker":
            store.stop_worker(wait=True, timeout=30, grace=0)
    note = caught.value.__notes__[-1]
    assert from_user_code(note, "fails_deep"), note
    assert frames(note)[-1].endswith("in check")
    tb = job.traceback()
    assert tb is not None and from_user_code(tb, "fails_deep"), tb
    assert from_user_code(job.attempt_history()[-1]["error"]["traceback"], "fails_deep")
    if executor != "thread":
        return
    shown = cli(store, "show", job.id).split("Traceback inside the job:")[1]
    assert from_user_code(shown, "fails_deep"), shown
    pytest.importorskip("ipywidgets")
    from nbjobs.widgets.details import details_html

    details = details_html(store, job.record()).split(">traceback<")[1]
    assert "in fails_deep" in details and "in invoke" not in details and "call_job" not in details


def test_an_async_jobs_traceback_starts_at_its_coroutine(store: nbjobs.Store) -> None:
    job = store.submit(fails_async, 4)
    with pytest.raises(ValueError):
        job.result(timeout=60)
    tb = job.traceback()
    assert tb is not None and from_user_code(tb, "fails_async"), tb
    assert "asyncio" not in tb


def test_without_user_code_in_it_a_traceback_keeps_the_nbjobs_frames(store: nbjobs.Store) -> None:
    job = store.submit(pow, "a", 2)  # a builtin fails: no Python frame of the user's
    with pytest.raises(TypeError):
        job.result(timeout=60)
    tb = job.traceback()
    assert tb is not None and frames(tb) and frames(tb)[-1].endswith("in invoke"), tb


# ------------------------------------------------------------------ Ctrl-C while waiting
LONG_JOB = """\
import os, sys, threading, time, nbjobs

def long_job(gate):
    deadline = time.monotonic() + 120
    while not os.path.exists(gate) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "done"

def say_when_waiting():
    # Printed once the main thread is inside result(): the interrupt lands in the wait.
    main = threading.main_thread().ident
    def look():
        while True:
            frame, names = sys._current_frames().get(main), set()
            while frame is not None:
                names.add(frame.f_code.co_name)
                frame = frame.f_back
            if "result" in names and "_wait" in names:
                print("waiting in result()", flush=True)
                return
            time.sleep(0.005)
    threading.Thread(target=look, daemon=True).start()

job = nbjobs.submit(long_job, os.environ["NBJOBS_TEST_GATE"], name="long_job")
print(job.id)
"""


def interrupted_cell(kernel: Kernel, code: str) -> dict[str, Any]:
    """Run `code`, press the stop button once it says it is waiting; the cell's error."""
    msg_id = kernel.client.execute(code)
    error: dict[str, Any] = {}
    idle = False
    while not idle:
        msg = kernel.client.get_iopub_msg(timeout=60)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        content = msg["content"]
        if msg["msg_type"] == "stream" and "waiting in result()" in content["text"]:
            kernel.manager.interrupt_kernel()
        elif msg["msg_type"] == "error":
            error = content
        idle = msg["msg_type"] == "status" and content["execution_state"] == "idle"
    return error


@pytest.mark.slow
def test_ctrl_c_during_result_says_the_job_keeps_running(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "NBJOBS_STORE": str(tmp_path / "store"),
        "NBJOBS_TEST_GATE": str(tmp_path / "gate"),
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    }
    (tmp_path / "notebook").mkdir()
    kernel = Kernel(tmp_path / "notebook", env)
    try:
        job_id = kernel.run(LONG_JOB).strip()
        error = interrupted_cell(kernel, "say_when_waiting()\njob.result()")
        assert error["ename"] == "KeyboardInterrupt"
        message = error["evalue"]
        assert job_id in message and "long_job" in message
        assert "keeps running" in message and "job.cancel()" in message
        shown = "\n".join(error["traceback"])
        for internal in ("lifecycle.py", "runner.py", "acquire"):
            assert internal not in shown, shown
        entries = [entry for entry in error["traceback"] if "Cell" in entry or "File" in entry]
        assert len(entries) <= 3, shown  # the cell, result() and where the message is raised
        assert kernel.run("print(job.status)").strip() == "running"
        (tmp_path / "gate").touch()
        assert kernel.run("print(job.result(timeout=60))").strip() == "done"
    finally:
        (tmp_path / "gate").touch()
        kernel.stop()


def interrupt_when_waiting_in(name: str) -> threading.Thread:
    """Send SIGINT to the main thread once it blocks (in a `wait`) inside nbjobs's function
    called `name`."""
    main = threading.main_thread().ident
    assert main is not None
    package = os.path.dirname(nbjobs.__file__)

    def inside() -> bool:
        frame = sys._current_frames().get(main)
        if frame is None or frame.f_code.co_name != "wait":
            return False
        while frame is not None:
            code = frame.f_code
            if code.co_name == name and code.co_filename.startswith(package):
                return True
            frame = frame.f_back
        return False

    def look() -> None:
        if poll(inside):
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=look, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize(
    "how",
    [
        ("_wait", lambda job: job.wait()),
        ("wait", lambda job: nbjobs.wait([job])),
        ("_completed", lambda job: list(nbjobs.as_completed([job]))),
    ],
    ids=["job.wait", "nbjobs.wait", "nbjobs.as_completed"],
)
def test_ctrl_c_during_a_wait_stops_the_wait_not_the_job(
    store: nbjobs.Store, marks: Path, wait_for: Any, how: Any
) -> None:
    where, wait = how
    job = store.submit(held, str(marks), "waited")
    wait_for(lambda: (marks / "waited.started").exists(), timeout=60)
    looking = interrupt_when_waiting_in(where)
    with pytest.raises(KeyboardInterrupt, match=r"keeps? running \(job.cancel\(\) stops") as caught:
        wait(job)
    looking.join(timeout=60)
    assert caught.value.__suppress_context__
    assert job.status == "running"
    (marks / "waited.open").touch()
    assert job.result(timeout=60) == "waited finished late"
