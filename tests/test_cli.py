"""The `nbjobs` console script, run for real (`python -m nbjobs`) on stores the library filled."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_corrupt import corrupt_record

import nbjobs

ROOT = Path(nbjobs.__file__).resolve().parent.parent

# Functions the CLI process must import to re-run jobs: a user's module in the notebook's folder.
USER_MODULE = '''
import os
import time
from pathlib import Path


def flaky(flag):
    """Fails the first time (leaving the flag file), succeeds afterwards."""
    if not Path(flag).exists():
        Path(flag).write_text("failed once")
        raise RuntimeError("first call fails")
    return "second time lucky"


def noisy(n):
    print(f"hello from the job {n}")
    return n


def boom():
    raise ValueError("boom in user code")


def reports_then_fails():
    import nbjobs

    nbjobs.progress(3, 10, "three of ten")
    raise ValueError("after reporting")


def fails_then_waits(flag):
    """Fails the first time; afterwards waits until the flag file says "go"."""
    if not Path(flag).exists():
        Path(flag).write_text("failed once")
        raise RuntimeError("first call fails")
    deadline = time.monotonic() + 120
    while Path(flag).read_text() != "go" and time.monotonic() < deadline:
        time.sleep(0.02)
    return "went"


def block_until(flag):
    deadline = time.monotonic() + 120
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.02)
    return "unblocked"
'''


@pytest.fixture(scope="module")
def user_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("notebook")
    (folder / "cli_user_jobs.py").write_text(textwrap.dedent(USER_MODULE))
    sys.path.insert(0, str(folder))
    yield folder
    sys.path.remove(str(folder))


@pytest.fixture
def user(user_dir: Path) -> Any:
    import cli_user_jobs

    return cli_user_jobs


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run(*args: str, store: nbjobs.Store | None = None, cwd: Path | None = None) -> Any:
    """`nbjobs [--store PATH] ARGS...` in a subprocess; returns the CompletedProcess."""
    where = ["--store", str(store.path)] if store is not None else []
    return subprocess.run(
        [sys.executable, "-m", "nbjobs", *where, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=cli_env(),
    )


@pytest.fixture
def filled(store: nbjobs.Store, user: Any) -> nbjobs.Store:
    store.submit(pow, 2, 10, key="pow-10", tags="math").wait(timeout=60)
    store.submit(user.noisy, 7, key="noisy", tags="talk").wait(timeout=60)
    store.submit(user.boom, key="boom").wait(timeout=60)
    return store


def test_ls_lists_newest_first_with_the_error_summary(filled: nbjobs.Store) -> None:
    out = run("ls", store=filled)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "KEY", "NAME", "STATUS"]
    assert [line.split()[1] for line in lines[1:]] == ["boom", "noisy", "pow-10"]
    assert "ValueError: boom in user code" in lines[1]
    assert "succeeded" in lines[3]


def test_ls_filters_and_json(filled: nbjobs.Store) -> None:
    failed = run("ls", "--status", "failed", "--json", store=filled)
    assert failed.returncode == 0, failed.stderr
    assert [(j["key"], j["status"]) for j in json.loads(failed.stdout)] == [("boom", "failed")]
    by_tag = json.loads(run("--json", "ls", "--tag", "math", store=filled).stdout)
    assert [j["key"] for j in by_tag] == ["pow-10"]
    by_name = json.loads(run("ls", "--name", "noisy", "--json", store=filled).stdout)
    assert [j["key"] for j in by_name] == ["noisy"]
    two = json.loads(run("ls", "--status", "failed", "succeeded", "--json", store=filled).stdout)
    assert len(two) == 3
    assert len(json.loads(run("ls", "--limit", "1", "--json", store=filled).stdout)) == 1


def test_show_of_a_failed_job_has_its_traceback_and_attempts(filled: nbjobs.Store) -> None:
    out = run("show", "boom", store=filled)
    assert out.returncode == 0, out.stderr
    assert "failed" in out.stdout
    assert "Traceback" in out.stdout
    assert 'in boom\n    raise ValueError("boom in user code")' in out.stdout
    assert "attempt 1" in out.stdout
    shown = json.loads(run("show", "boom", "--json", store=filled).stdout)
    assert shown["job"]["status"] == "failed"
    assert "ValueError: boom in user code" in shown["traceback"]
    assert [a["number"] for a in shown["attempts"]] == [1]


RAW_EPOCH = re.compile(r"\b1\d{9}(\.\d+)?\b")


def test_show_formats_dates_durations_progress_and_past_runs(
    store: nbjobs.Store, user: Any
) -> None:
    job = store.submit(user.reports_then_fails, key="rep", tags=["a", "b"], timeout=30)
    job.wait(timeout=60)
    job.retry().wait(timeout=60)
    out = run("show", "rep", store=store)
    assert out.returncode == 0, out.stderr
    fields = dict(
        line.split(None, 1) for line in out.stdout.split("\n\n")[0].splitlines() if " " in line
    )
    assert not RAW_EPOCH.search(out.stdout.split("Traceback")[0]), out.stdout
    assert "{" not in fields["progress"] and fields["progress"].startswith("30%")
    assert "three of ten" in fields["progress"]
    assert fields["history"].startswith(
        "run 1: failed after 1 attempt (ValueError: after reporting)"
    )
    assert fields["timeout"] == "30s"
    assert fields["tags"] == "a, b"


def test_logs_prints_the_captured_output(filled: nbjobs.Store) -> None:
    out = run("logs", "noisy", store=filled)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "hello from the job 7\n"
    assert run("logs", "noisy", "--follow", store=filled).stdout == "hello from the job 7\n"
    shown = json.loads(run("logs", "noisy", "--json", store=filled).stdout)
    assert shown == {"id": filled.get("noisy").id, "logs": "hello from the job 7\n"}


def test_cancel_a_pending_job(store: nbjobs.Store, user: Any, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    store.configure(workers=1)
    blocker = store.submit(user.block_until, str(flag))
    waiting = store.submit(pow, 2, 5, key="queued")
    try:
        out = run("cancel", "queued", store=store)
        assert out.returncode == 0, out.stderr
        assert "cancelled" in out.stdout
        with nbjobs.Store(store.path) as other:  # what every other process now reads
            assert other.get("queued").status == "cancelled"
        again = run("cancel", "queued", store=store)
        assert again.returncode == 1
        assert "queued" in again.stderr and "cancelled" in again.stderr
    finally:
        flag.touch()
    assert blocker.result(timeout=60) == "unblocked"
    assert waiting.wait(timeout=60).status == "cancelled"


@pytest.mark.parametrize("as_json", [False, True])
def test_retry_runs_a_failed_job_again_and_waits_for_it(
    store: nbjobs.Store, user: Any, user_dir: Path, tmp_path: Path, as_json: bool
) -> None:
    flag = tmp_path / "flag"
    job = store.submit(user.flaky, str(flag), key="flaky")
    assert job.wait(timeout=60).status == "failed"
    out = run("retry", "flaky", *(["--json"] if as_json else []), store=store, cwd=user_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    if as_json:  # the progress goes to stderr, the records to stdout
        assert [(j["key"], j["status"]) for j in json.loads(out.stdout)] == [("flaky", "succeeded")]
    else:
        assert "succeeded" in out.stdout
    assert job.status == "succeeded"
    assert job.result() == "second time lucky"
    assert job.attempts == 2


def test_retry_of_a_job_that_fails_again_exits_1(filled: nbjobs.Store, user_dir: Path) -> None:
    out = run("retry", "boom", store=filled, cwd=user_dir)
    assert out.returncode == 1
    assert "failed" in out.stdout and "ValueError" in out.stdout


def test_ctrl_c_during_retry_leaves_the_job_interrupted_and_resume_finishes_it(
    store: nbjobs.Store, user: Any, user_dir: Path, tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    flag = tmp_path / "flag"
    job = store.submit(user.fails_then_waits, str(flag), key="slow")
    assert job.wait(timeout=60).status == "failed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbjobs", "--store", str(store.path), "retry", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=user_dir,
        env=cli_env(),
    )
    try:
        wait_for(lambda: job.status == "running", timeout=60)
        assert proc.stdout is not None
        assert "Ctrl-C" in proc.stdout.readline()  # waiting for the job, in the foreground
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert "stopped" in out and "nbjobs resume" in out
    assert job.status == "interrupted"
    flag.write_text("go")
    resumed = run("resume", store=store, cwd=user_dir)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert job.result(timeout=60) == "went"


def test_purge_and_stats(filled: nbjobs.Store) -> None:
    stats = json.loads(run("stats", "--json", store=filled).stdout)
    assert (stats["succeeded"], stats["failed"]) == (2, 1)
    assert "total" in run("stats", store=filled).stdout
    out = run("purge", "--status", "failed", store=filled)
    assert out.returncode == 0, out.stderr
    assert "purged 1 job" in out.stdout
    assert filled.stats()["failed"] == 0
    assert json.loads(run("purge", "--older-than", "1h", "--json", store=filled).stdout) == {
        "purged": 0
    }
    assert filled.stats()["succeeded"] == 2


def test_the_default_store_is_nbjobs_store_from_the_environment() -> None:
    nbjobs.submit(pow, 3, 3, key="nine").wait(timeout=60)
    out = run("ls", "--json")
    assert [j["key"] for j in json.loads(out.stdout)] == ["nine"]


def test_a_missing_job_exits_1_naming_it(filled: nbjobs.Store) -> None:
    for command in ("show", "logs", "cancel", "retry"):
        out = run(command, "no-such-job", store=filled)
        assert out.returncode == 1, (command, out.stdout, out.stderr)
        assert "no-such-job" in out.stderr
        assert "Traceback" not in out.stderr


def test_usage_errors_exit_2_naming_the_argument(filled: nbjobs.Store) -> None:
    bad = run("purge", "--older-than", "soon", store=filled)
    assert bad.returncode == 2
    assert "--older-than" in bad.stderr and "soon" in bad.stderr
    neither = run("purge", store=filled)
    assert neither.returncode == 2
    assert "--older-than" in neither.stderr
    assert run("purge", "--status", "running", store=filled).returncode == 2
    assert run("ls", "--status", "done", store=filled).returncode == 2
    assert run("ls", "--limit", "0", store=filled).returncode == 2
    assert run("frobnicate", store=filled).returncode == 2
    assert sum(filled.stats().values()) == 3


def test_a_folder_without_a_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    out = run("--store", str(tmp_path / "nothing"), "ls")
    assert out.returncode == 1
    assert "no job store" in out.stderr and "nothing" in out.stderr
    assert not (tmp_path / "nothing").exists()


def test_a_corrupt_record_is_listed_as_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "damaged"
    with nbjobs.Store(path) as s:
        s.submit(pow, 2, 3, key="good").wait(timeout=60)
        s.submit(pow, 2, 4, key="bad").wait(timeout=60)
    corrupt_record(path, "bad")
    out = run("--store", str(path), "ls")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[1]: line for line in out.stdout.splitlines()[1:]}
    assert " corrupt " in rows["bad"]
    assert " succeeded " in rows["good"]
    shown = run("--store", str(path), "show", "bad")
    assert shown.returncode == 0, shown.stderr
    assert "corrupt" in shown.stdout
    assert run("--store", str(path), "stats").returncode == 0


# A kernel whose job runs when it is killed.
DOOMED_KERNEL = """
import sys, time, nbjobs
nbjobs.Store(sys.argv[1]).submit(time.sleep, 120, key="left-running")
time.sleep(120)
"""


def _running(path: Path) -> bool:
    out = run("--store", str(path), "stats", "--json")
    return out.returncode == 0 and json.loads(out.stdout)["running"] == 1


def test_the_read_commands_show_the_jobs_of_a_killed_kernel_interrupted(
    tmp_path: Path, wait_for: Callable[..., Any]
) -> None:
    """`ls`, `show` and `stats` read the store without the library's `Store`, yet show
    what opening one does: the jobs a kernel left running when it died are interrupted."""
    path = tmp_path / "store"
    kernel = subprocess.Popen([sys.executable, "-c", DOOMED_KERNEL, str(path)], env=cli_env())
    try:
        wait_for(lambda: _running(path), timeout=60)
    finally:
        kernel.kill()
        kernel.wait(timeout=30)
    listed = json.loads(run("--store", str(path), "ls", "--json").stdout)
    assert [(j["key"], j["status"]) for j in listed] == [("left-running", "interrupted")]
    assert "interrupted" in run("--store", str(path), "show", "left-running").stdout
    stats = json.loads(run("--store", str(path), "stats", "--json").stdout)
    assert (stats["running"], stats["interrupted"]) == (0, 1)


@pytest.mark.filterwarnings("ignore:schedule .* is stored, but no detached worker")
def test_schedules_lists_pauses_resumes_and_removes(store: nbjobs.Store) -> None:
    store.schedule(pow, every="5m", args=(2, 2), name="often")
    store.schedule(print, cron="0 2 * * *", tz="Europe/Berlin", name="nightly")
    out = run("schedules", store=store)
    assert out.returncode == 0, out.stderr
    header, nightly, often = out.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "WHEN", "TZ", "NEXT"]
    assert nightly.split()[:5] == ["nightly", "cron", "0", "2", "*"]
    assert "Europe/Berlin" in nightly and "T02:00:00+0" in nightly
    assert often.split()[:3] == ["often", "every", "5m"]
    listed = json.loads(run("schedules", "--json", store=store).stdout)
    assert [(s["name"], s["every"], s["cron"]) for s in listed] == [
        ("nightly", None, "0 2 * * *"),
        ("often", 300.0, None),
    ]
    paused = run("schedules", "pause", "often", store=store)
    assert (paused.returncode, paused.stdout) == (0, "paused often\n")
    assert store.get_schedule("often").paused
    assert " paused " in run("schedules", store=store).stdout.splitlines()[2]
    resumed = json.loads(run("--json", "schedules", "resume", "often", store=store).stdout)
    assert (resumed["name"], resumed["paused"]) == ("often", False)
    assert not store.get_schedule("often").paused
    assert run("schedules", "rm", "often", store=store).stdout == "removed often\n"
    assert [s.name for s in store.schedules()] == ["nightly"]
    for action in ("pause", "resume", "rm"):
        missing = run("schedules", action, "often", store=store)
        assert missing.returncode == 1, (action, missing.stdout)
        assert "no schedule named 'often'" in missing.stderr
        assert "Traceback" not in missing.stderr
    assert run("schedules", "frob", "x", store=store).returncode == 2
    assert run("schedules", "pause", store=store).returncode == 2


def test_schedules_of_a_store_without_any(store: nbjobs.Store) -> None:
    out = run("schedules", store=store)
    assert out.returncode == 0, out.stderr
    assert "no schedules" in out.stdout
    assert json.loads(run("schedules", "--json", store=store).stdout) == []


def test_resume_and_cancel_with_json_print_json(
    store: nbjobs.Store, user: Any, tmp_path: Path
) -> None:
    nothing = run("resume", "--json", store=store)
    assert nothing.returncode == 0, nothing.stderr
    assert json.loads(nothing.stdout) == []
    store.configure(workers=1)
    go = tmp_path / "go"
    blocker = store.submit(user.block_until, str(go))
    store.submit(pow, 2, 5, key="queued")
    try:
        cancelled = run("cancel", "queued", "--json", store=store)
        assert cancelled.returncode == 0, cancelled.stderr
        assert json.loads(cancelled.stdout)["status"] == "cancelled"
    finally:
        go.touch()
    assert blocker.result(timeout=60) == "unblocked"
