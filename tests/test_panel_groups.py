"""The panel for sweeps, without a browser (real widgets, a real store): group rows, active
work first, pills and presets; `nbjobs.watch` and `wait(progress=True)` as text."""

from __future__ import annotations

import functools
import io
import threading
from typing import Any

import pytest

import nbjobs
from nbjobs import states
from nbjobs.records import Group
from nbjobs.widgets.group_markup import line, text_line
from nbjobs.widgets.panel_view import Panel
from nbjobs.widgets.tally import Tally

pytest.importorskip("ipywidgets")
UNPICKLABLE = pytest.mark.filterwarnings("ignore:.*cannot be resumed")


def crunch(x: int) -> int:
    if x % 10 == 3:
        raise ValueError(f"bad x: {x}")
    return x


def held(gate: threading.Event, x: int) -> int:
    gate.wait(30)
    return x


@pytest.fixture
def sweep(store: nbjobs.Store, wait_for: Any) -> Any:
    """A finished map of 30 (3 failed), then a map of 6 held running or pending."""
    nbjobs.wait(store.map(crunch, range(30), key="sweep"), timeout=60)
    gate = threading.Event()
    store.configure(workers=2)
    jobs = store.map(functools.partial(held, gate), range(6))
    wait_for(lambda: store.stats()["running"] == 2)
    yield store, jobs
    gate.set()
    nbjobs.wait(jobs, timeout=60)


@UNPICKLABLE
def test_group_rows_come_first_active_groups_first(sweep: Any) -> None:
    store, _ = sweep
    panel = Panel(store)
    panel.refresh()
    shown = [line.group for line in panel.groups.lines if line.box.layout.display != "none"]
    assert [g.name for g in shown if g] == ["held", "sweep"]
    held_group, done = shown
    assert held_group.counts == {"running": 2, "pending": 4} and held_group.active
    assert done.counts == {"succeeded": 27, "failed": 3} and done.size == 30
    text = panel.groups.lines[1].text.value
    assert "sweep" in text and "30 jobs" in text and "30/30" in text and "100%" in text
    assert "nbjobs-stack" in text and "failed" in text


@UNPICKLABLE
def test_the_table_shows_running_then_failed_then_pending_then_finished(sweep: Any) -> None:
    store, _ = sweep
    panel = Panel(store, page_size=12)
    panel.refresh()
    shown = [row.job_id for row in panel.rows if row.job_id]
    statuses = [store.get(i).status for i in shown]
    assert statuses == ["running"] * 2 + ["failed"] * 3 + ["pending"] * 4 + ["succeeded"] * 3
    panel.sort.value = "oldest"
    panel.refresh()
    assert panel.rows[0].job_id == store.get("sweep/0").id


@UNPICKLABLE
def test_a_group_row_click_filters_to_its_jobs_and_back(sweep: Any) -> None:
    store, _ = sweep
    panel = Panel(store, page_size=50)
    panel.refresh()
    sweep_line = next(ln for ln in panel.groups.lines if ln.group and ln.group.name == "sweep")
    sweep_line.button.click()
    panel.refresh()
    keys = {store.get(row.job_id).key for row in panel.rows if row.job_id}
    assert len(keys) == 30 and all(k.startswith("sweep/") for k in keys)
    assert panel.chip.description == "group: sweep" and sweep_line.button.icon == "times"
    assert panel.page_label.value.endswith("of 30</span>")
    panel.chip.click()
    panel.refresh()
    assert len([r for r in panel.rows if r.job_id and r.box.layout.display != "none"]) == 36


@UNPICKLABLE
def test_pills_count_and_filter(sweep: Any) -> None:
    store, _ = sweep
    panel = Panel(store)
    panel.refresh()
    assert panel.pills["failed"].description == "failed 3"
    assert panel.pills["cancelled"].layout.display == "none"
    panel.pills["failed"].click()
    panel.refresh()
    assert panel.status.value == "failed"
    assert {store.get(r.job_id).status for r in panel.rows if r.job_id} == {"failed"}
    panel.pills["failed"].click()
    assert panel.status.value == ""


def test_presets_open_the_panel_filtered(store: nbjobs.Store) -> None:
    nbjobs.wait(store.map(crunch, range(10), key="p", tags=["etl"]), timeout=60)
    nbjobs.wait([store.submit(crunch, 1, name="other")], timeout=60)
    [group] = store.groups()
    panel = Panel(store, status="succeeded", group=group)
    panel.refresh()
    shown = [store.get(r.job_id) for r in panel.rows if r.job_id]
    assert len(shown) == 9 and {j.status for j in shown} == {"succeeded"}
    by_name = Panel(store, name="other", group_by=None)
    by_name.refresh()
    assert [store.get(r.job_id).name for r in by_name.rows if r.job_id] == ["other"]
    assert by_name.groups.box.layout.display == "none"
    tagged = Panel(store, tag="etl", group_by="tag", sort="oldest", group="k:p")
    tagged.refresh()
    assert tagged.search.value == "tag:etl"
    assert tagged.groups.lines[0].group.name == "etl" and tagged.groups.lines[0].group.size == 10


@pytest.mark.parametrize(
    ("preset", "message"),
    [
        ({"status": "done"}, "status must be one of None, 'pending', .*not 'done'"),
        ({"group_by": "key"}, "group_by must be one of 'map', 'tag', 'name', None, not 'key'"),
        ({"sort": "size"}, "sort must be one of 'active', 'newest', 'oldest', 'name', not 'size'"),
        ({"group": 5}, "group must be a Group, a group id"),
        ({"tag": ["a"]}, "tag must be a tag or None"),
    ],
)
def test_bad_presets_name_the_argument(
    store: nbjobs.Store, preset: dict[str, Any], message: str
) -> None:
    with pytest.raises((nbjobs.InvalidArgument, nbjobs.InvalidArgumentType), match=message):
        nbjobs.panel(store, **preset)


def test_the_text_line_reads_like_tqdm() -> None:
    group = Group("g", "fit", 0.0, 70, {"succeeded": 14, "failed": 2, "pending": 54}, None, 7.0)
    assert line(group) == "16/70 [00:07<00:23, 2.29 jobs/s]"
    assert text_line(group) == (
        "fit              |#####x..................| 16/70 [00:07<00:23, 2.29 jobs/s] 2 failed"
    )


def test_watch_writes_one_line_per_group_until_done(store: nbjobs.Store) -> None:
    swept = store.map(crunch, range(20), key="w")
    single = store.submit(crunch, 4)
    out = io.StringIO()
    nbjobs.watch([*swept, single], file=out, interval=0.01)
    lines = out.getvalue().splitlines()
    assert all(j.done() for j in [*swept, single])
    last = lines[-2:]
    assert last[0].startswith("w ") and "20/20 [" in last[0] and "2 failed" in last[0]
    assert last[1].startswith("crunch ") and "1/1 [" in last[1]


def test_wait_with_progress_draws_on_stderr(
    store: nbjobs.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    jobs = store.map(crunch, range(5))
    done, pending = nbjobs.wait(jobs, timeout=60, progress=True)
    assert len(done) == 5 and not pending
    assert "5/5 [" in capsys.readouterr().err.splitlines()[-1]
    with pytest.raises(nbjobs.InvalidArgumentType, match="progress must be True or False"):
        nbjobs.wait(jobs, progress="yes")  # type: ignore[arg-type]
    with pytest.raises(nbjobs.InvalidArgumentType, match="item 1 is int"):
        nbjobs.watch([jobs[0], 3])  # type: ignore[list-item]


def test_a_tally_reads_only_jobs_still_active(store: nbjobs.Store) -> None:
    jobs = store.map(crunch, range(4))
    nbjobs.wait(jobs, timeout=60)
    asked: list[list[str]] = []

    def statuses(ids: list[str]) -> dict[str, str]:
        asked.append(ids)
        return store.storage.statuses(ids)

    tally = Tally([j.record() for j in jobs], statuses)
    assert [g.counts for g in tally.poll()] == [{"succeeded": 3, "failed": 1}]
    assert asked == [] and tally.done and states.SUCCEEDED
