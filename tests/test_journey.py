"""The first user journey, end to end through the module-level API and the default store."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import nbjobs


def fit(n: int, alpha: float = 0.1, calls: str | None = None) -> float:
    if calls is not None:
        with open(calls, "a") as f:
            f.write("run\n")
    return sum(i * alpha for i in range(n))


def explode(i: int) -> None:
    raise ValueError(f"bad input {i}")


def count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_submit_result_resubmit_get_list_and_stats(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"

    job = nbjobs.submit(fit, 10_000, alpha=0.1, calls=str(calls), key="fit-10k")
    assert isinstance(job, nbjobs.Job)
    assert job.key == "fit-10k"
    assert job.status in nbjobs.STATES
    value = job.result(timeout=60)
    assert value == fit(10_000, alpha=0.1)
    assert value == pytest.approx(4999500.0)
    assert job.status == "succeeded"
    assert count_lines(calls) == 1

    again = nbjobs.submit(fit, 10_000, alpha=0.1, calls=str(calls), key="fit-10k")
    assert again.id == job.id
    assert again.status == "succeeded"
    assert again.result(timeout=60) == value
    assert count_lines(calls) == 1, "a succeeded keyed job was run again"

    got = nbjobs.get("fit-10k")
    assert got.id == job.id
    assert got.status == "succeeded"
    assert nbjobs.get(job.id).key == "fit-10k"

    failing = [nbjobs.submit(explode, i) for i in range(3)]
    for j in failing:
        j.wait(timeout=60)
        assert j.status == "failed"
        assert j.error is not None
        assert j.error["type"] == "ValueError"
    with pytest.raises(ValueError, match="bad input 1"):
        failing[1].result(timeout=60)

    listed = nbjobs.jobs(status="failed", limit=50)
    assert [j.id for j in listed] == [j.id for j in reversed(failing)]
    created = [j.created_at for j in listed]
    assert created == sorted(created, reverse=True)
    assert [j.id for j in nbjobs.jobs(limit=2)] == [failing[2].id, failing[1].id]
    assert [j.id for j in nbjobs.jobs()][-1] == job.id

    both = nbjobs.jobs(status=["failed", "succeeded"], limit=50)
    assert [j.id for j in both] == [*(j.id for j in reversed(failing)), job.id]
    assert nbjobs.jobs(status="running") == []
    assert job.wait(timeout=60).id == job.id
    assert job.done()
    assert job.exception(timeout=60) is None
    assert isinstance(failing[0].exception(timeout=60), ValueError)

    stats = nbjobs.stats()
    assert set(stats) >= set(nbjobs.STATES)
    assert stats["succeeded"] == 1
    assert stats["failed"] == 3
    assert sum(stats[s] for s in nbjobs.STATES) == 4


def test_module_functions_use_the_configured_store(default_store: Path) -> None:
    job = nbjobs.submit(fit, 10, key="where")
    job.result(timeout=60)
    assert (default_store / ".gitignore").exists()
    other = nbjobs.Store(default_store)
    try:
        assert other.get("where").id == job.id
    finally:
        other.close()


#: What `import nbjobs` must not load (each is imported where it is first used): notebook
#: and optional packages, and the standard modules only some features need (start-up time).
DEFERRED = (
    "ipywidgets", "IPython", "ipykernel", "tenacity", "tornado", "croniter", "dateutil",
    "numpy", "pandas", "dask", "distributed",
    "multiprocessing", "subprocess", "socket", "zoneinfo", "html", "importlib.abc",
)  # fmt: skip


def loaded_after(code: str) -> list[str]:
    """The modules of `DEFERRED` loaded by a fresh interpreter after running `code`."""
    check = f"print(json.dumps([m for m in {DEFERRED!r} if m in sys.modules]))"
    probe = f"{code}\nimport json, sys\n{check}"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    loaded: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return loaded


def test_import_does_not_load_notebook_packages() -> None:
    """Kernels, workers and the CLI start fast: no widgets, tenacity (which imports tornado)
    only when a retry policy is given, croniter only when a cron schedule is used, ..."""
    assert loaded_after("import nbjobs") == []


def test_cli_read_commands_load_neither_the_library_store_nor_the_worker(tmp_path: Path) -> None:
    """`nbjobs stats`, `ls` and `show` read the store's tables: they load neither the
    library's `Store` (its executors, pools and runners) nor the detached worker's loop,
    nor the process executor's modules (only the commands that run jobs need them)."""
    folder = tmp_path / "store"
    with nbjobs.Store(folder) as store:
        store.submit(pow, 2, 3, key="eight").wait(timeout=60)
    code = textwrap.dedent(
        f"""
        import contextlib, io, sys
        from nbjobs.cli.entry import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["--store", {str(folder)!r}, "stats"]) == 0
            assert main(["--store", {str(folder)!r}, "ls"]) == 0
            assert main(["--store", {str(folder)!r}, "show", "eight"]) == 0
        for unused in ("nbjobs.api", "nbjobs.running", "nbjobs.executors", "nbjobs.worker.process"):
            assert unused not in sys.modules, unused
        """
    )
    assert loaded_after(code) == []


def test_the_process_child_starts_without_a_runpy_warning() -> None:
    """`python -m nbjobs.running.child` warns when importing nbjobs has already imported it."""
    code = "import sys, nbjobs; print('nbjobs.running.child' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "False"
