"""A store written before the house plan moved nbjobs' modules still opens and runs.

tests/data/store-0.1 was made by tests/data/make_store_0_1.py with nbjobs at commit 2386d56:
its payloads pickle `nbjobs.refs.JobRef` and `nbjobs.retrying.Retry`, names that moved.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nbjobs

OLD = Path(__file__).parent / "data" / "store-0.1"


@pytest.fixture
def old_store(tmp_path: Path) -> Path:
    copy = tmp_path / "store-0.1"
    shutil.copytree(OLD, copy)
    return copy


@pytest.mark.slow
def test_a_store_written_by_0_1_opens_and_its_queued_jobs_run(old_store: Path) -> None:
    store = nbjobs.Store(old_store)
    try:
        assert store.get("pow").result(timeout=10) == 1024
        with pytest.raises(ValueError, match="boom 7"):
            store.get("boom").result(timeout=10)
        queued = [store.get(k) for k in ("add-ref", "chained")]
        assert [j.status for j in queued] == ["pending", "pending"]
        (hourly,) = store.schedules()
        assert hourly.name == "hourly"
        store.start_worker(workers=1, idle_timeout=60)
        try:
            # a JobRef (nbjobs.refs) in the arguments, a chain on it, a nbjobs.retrying policy
            assert store.get("add-ref").result(timeout=120) == 1025
            assert store.get("chained").result(timeout=120) == 2050
            auto = [j for j in store.jobs() if (j.key or "").startswith("auto:double_it")]
            assert [j.result(timeout=120) for j in auto] == [42]
        finally:
            store.stop_worker()
    finally:
        store.close()


def test_the_old_module_names_still_import_as_the_modules_they_became() -> None:
    # in a fresh interpreter, so that no test has imported the old names already
    code = (
        "import pickle, nbjobs, nbjobs.calls.refs as r, nbjobs.calls.retrying as t;"
        "print(pickle.loads(b'cnbjobs.refs\\nJobRef\\n.') is r.JobRef,"
        " pickle.loads(b'cnbjobs.retrying\\nRetry\\n.') is t.Retry)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "True"]


def test_rows_of_a_0_1_store_show_keys_and_ids_without_an_argument_summary(
    old_store: Path,
) -> None:
    pytest.importorskip("ipywidgets")
    from nbjobs.widgets.panel_view import Panel

    store = nbjobs.Store(old_store)
    try:
        recs = store.records()
        assert recs and all(r.summary is None for r in recs)  # not kept by 0.1
        panel = Panel(store)
        panel.refresh()
        left = {row.job_id: row.left.value for row in panel.rows if row.job_id}
        for rec in recs:
            assert (rec.key or rec.id) in left[rec.id]
    finally:
        store.close()
