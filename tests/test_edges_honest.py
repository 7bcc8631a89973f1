"""Honest at the edges (issue #16): the mistakes notebook users make get clear answers.

- `cancel()` of a running thread job that never reaches a cooperative point: `cancelled` in
  the store at once, its slot refilled, its late result dropped, and a warning that says the
  thread runs on.
- A job that succeeded after retries looks succeeded everywhere (repr, to_dict, exception,
  traceback, the CLI, the widgets); its earlier errors are in its attempt history.
- A job's traceback starts at the user's function (thread, process and worker jobs), in
  `result()`'s note, `traceback()`, the CLI and the panel; nbjobs frames are kept only when
  no frame of user code is in it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gates import wait_for_file

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
    from nbjobs.widgets import JobView, Panel, details_html

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
    from nbjobs.widgets import details_html

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
