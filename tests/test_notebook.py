"""The quickstart notebook, run the way a reader runs it: top to bottom in a real kernel.

Each run executes a copy of notebooks/quickstart.ipynb headless with nbclient, in a temporary
working folder, with NBJOBS_STORE pointing at a temporary store. The second test runs it twice
against the same store, each time in a new kernel process (a real restart): the keyed submit must
hand back the job that already succeeded instead of running it again.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

import nbjobs

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "quickstart.ipynb"
EXPECTED_RESULT = "2499750.0"
RESUBMIT_LINE = re.compile(
    r"id=(?P<id>\S+) attempts=(?P<attempts>\d+) started_at=(?P<started_at>\S+) "
    r"status=(?P<status>\w+)"
)


def run_notebook(workdir: Path) -> nbformat.NotebookNode:
    """Execute a copy of the quickstart in `workdir` (the kernel's working folder)."""
    workdir.mkdir(parents=True, exist_ok=True)
    copy = workdir / NOTEBOOK.name
    shutil.copyfile(NOTEBOOK, copy)
    nb = nbformat.read(copy, as_version=4)
    client = NotebookClient(
        nb,
        timeout=120,
        kernel_name="python3",
        allow_errors=False,
        resources={"metadata": {"path": str(workdir)}},
    )
    client.execute()
    nbformat.write(nb, copy)
    return nb


def output_texts(nb: nbformat.NotebookNode) -> list[str]:
    """Text of every output of every code cell: streams, results and errors."""
    texts: list[str] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                texts.append(out.text)
            elif out.output_type in ("execute_result", "display_data"):
                texts.append(str(out.get("data", {}).get("text/plain", "")))
            elif out.output_type == "error":
                texts.append(f"{out.ename}: {out.evalue}")
    return texts


def error_outputs(nb: nbformat.NotebookNode) -> list[str]:
    return [
        f"{out.ename}: {out.evalue}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error"
    ]


def resubmitted_job(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """The id, attempts, start time and status the notebook printed for the resubmitted key."""
    found = [m.groupdict() for text in output_texts(nb) for m in RESUBMIT_LINE.finditer(text)]
    assert len(found) == 1, f"expected one 'id=... attempts=...' line, got {found}"
    return found[0]


@pytest.fixture
def notebook_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary store for the kernels started by nbclient (they inherit our environment);
    the detached workers the notebook starts are stopped afterwards."""
    store = tmp_path / "store"
    monkeypatch.setenv("NBJOBS_STORE", str(store))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    yield store
    if store.is_dir():
        with nbjobs.Store(store) as s:
            s.stop_worker(wait=True, timeout=60, grace=0)
            assert s.workers() == []


def test_quickstart_runs_top_to_bottom(tmp_path: Path, notebook_env: Path) -> None:
    workdir = tmp_path / "work"
    nb = run_notebook(workdir)

    assert error_outputs(nb) == []
    texts = output_texts(nb)
    assert any(EXPECTED_RESULT in text for text in texts), texts
    assert any("same job: True" in text for text in texts), texts
    assert any("ValueError" in text and "x must be >= 0" in text for text in texts), texts
    assert any("scores: [4999.95, 9999.9, 24999.75]" in text for text in texts), texts
    assert any("total: 26, best south: 8" in text for text in texts), texts
    assert any("sweep: 20 jobs, 18 succeeded, 2 failed" in text for text in texts), texts
    assert any("live workers: 1; overnight result: 0." in text for text in texts), texts
    assert any("heartbeat runs: True; removed: True" in text for text in texts), texts
    assert any("schedule:heartbeat:" in text for text in texts), texts
    job = resubmitted_job(nb)
    assert job["status"] == "succeeded"
    assert job["attempts"] == "1"
    # NBJOBS_STORE was honoured: the store is there, not in the notebook's folder.
    assert notebook_env.is_dir()
    assert not (workdir / ".nbjobs").exists()


def test_quickstart_after_kernel_restart_returns_the_stored_job(
    tmp_path: Path, notebook_env: Path
) -> None:
    first = run_notebook(tmp_path / "first")
    # A second nbclient run starts a new kernel process on the same store: a real restart.
    second = run_notebook(tmp_path / "second")

    assert error_outputs(first) == []
    assert error_outputs(second) == []
    assert any(EXPECTED_RESULT in text for text in output_texts(second))
    # The worker the first run started is still serving: the second run reuses it.
    assert any("live workers: 1; overnight result: 0." in text for text in output_texts(second))
    with nbjobs.Store(notebook_env) as s:
        assert s.get("overnight").attempts == 1  # found again, not run twice
    before, after = resubmitted_job(first), resubmitted_job(second)
    assert after["status"] == "succeeded"
    # Same job, not run again: same id, still one attempt, started at the same instant.
    assert after == before
