"""The job widget and the panel, without a browser: what one refresh reads, what it sends,
when polling stops, and the buttons acting through the public API."""

from __future__ import annotations

import ast
import html
import importlib
import pkgutil
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import nbjobs
from nbjobs import states
from nbjobs.clock import FakeClock
from nbjobs.records import JobRecord
from nbjobs.scheduling import manage
from nbjobs.widgets.details import details_html
from nbjobs.widgets.job_view import JobView, job_bundle
from nbjobs.widgets.panel_view import Panel
from nbjobs.widgets.polling import Poller
from nbjobs.widgets.registry import REGISTRY, Registry

W = pytest.importorskip("ipywidgets")
NO_WORKER = "ignore:schedule .* is stored, but no detached worker"
IN_KERNEL = "ignore:job '.*' runs in this kernel but cannot be resumed"  # a threading.Event


def slow(n: int, pause: float = 0.01) -> dict[str, int]:
    for i in range(n):
        nbjobs.progress(i + 1, n, message=f"step {i + 1}")
        threading.Event().wait(pause)
    return {"answer": 42}


def boom(x: int) -> None:
    raise ValueError(f"bad x: {x}")


def blocker(gate: threading.Event) -> str:
    gate.wait(30)
    return "released"


def fill(store: nbjobs.Store, n: int) -> None:
    """Insert `n` finished job records in batches (fast; 20,000 submits would take seconds)."""
    storage = store.storage
    for start in range(0, n, 2000):
        recs = [
            JobRecord(id=f"{i:016x}", name=f"job{i % 7}", status=states.SUCCEEDED,
                      created_at=float(i), updated_at=float(i), attempts=1)
            for i in range(start, min(n, start + 2000))
        ]  # fmt: skip

        def insert(sql: Any, recs: list[JobRecord] = recs) -> None:
            for rec in recs:
                storage.insert(sql, rec)

        storage.writer.call(insert)


@pytest.fixture
def big_store(tmp_path: Path) -> Iterator[nbjobs.Store]:
    s = nbjobs.Store(tmp_path / "big")
    fill(s, 20_000)
    try:
        yield s
    finally:
        s.close()


def all_widgets(widget: Any) -> Iterator[Any]:
    yield widget
    yield widget.layout
    for child in getattr(widget, "children", ()):
        yield from all_widgets(child)


def count_changes(panel: Panel) -> Callable[[], int]:
    """Observe every trait of every widget of the panel; returns a counter."""
    events: list[Any] = []
    for w in all_widgets(panel.widget):
        w.observe(events.append)
    return lambda: len(events)


def test_import_nbjobs_does_not_import_ipywidgets_or_ipython() -> None:
    code = "import sys, nbjobs, nbjobs.widgets; print(sorted(m for m in sys.modules if " \
           "m.split('.')[0] in ('ipywidgets', 'IPython', 'ipykernel')))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_only_the_ui_module_imports_ipywidgets_or_ipython() -> None:
    package = Path(nbjobs.__file__).parent
    importers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n.split(".")[0] in ("ipywidgets", "IPython") for n in names):
                importers.add(path.relative_to(package).as_posix())
    assert importers == {"widgets/ui.py"}


def test_the_poller_and_the_html_work_without_ipywidgets(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "sys.modules['ipywidgets'] = sys.modules['IPython'] = None  # importing them fails\n"
        "import nbjobs\n"
        "from nbjobs.widgets.polling import Poller\n"
        "from nbjobs.widgets.registry import Registry\n"
        "from nbjobs.widgets.details import details_html\n"
        f"store = nbjobs.Store({str(tmp_path / 's')!r})\n"
        "job = store.submit(sum, [1, 2]); job.wait(30)\n"
        "assert 'sum([1, 2])' in details_html(store, job.record())\n"
        "p = Poller(lambda: 'done'); p.start(); p.join(30)\n"
        "print(p.ticks, p.running)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["1", "False"]


def test_one_refresh_reads_the_counts_and_one_page(big_store: nbjobs.Store) -> None:
    panel = Panel(big_store, page_size=25)
    statements: list[str] = []
    big_store.storage.cache._con.set_trace_callback(statements.append)
    try:
        panel.refresh()
    finally:
        big_store.storage.cache._con.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    job_reads = [s for s in reads if "nbjobs_jobs" in s]
    assert panel.records_read == 26  # one page and one more to know there is a next page
    assert len(job_reads) == 1 and "LIMIT 26" in job_reads[0], job_reads
    assert len([s for s in reads if "nbjobs_schedules" in s]) == 1, reads
    assert len([s for s in reads if "nbjobs_groups" in s]) == 1, reads  # none: no counts read
    # The counts (twice: the header's, then the page's band sizes), the page, the schedules,
    # the groups, and the workers (read every 5 s).
    assert len(reads) <= 6, reads
    assert "20,000" in panel.header.value
    assert "1-25 of 20,000" in panel.page_label.value


def test_paging_and_filters_read_one_page_each(big_store: nbjobs.Store) -> None:
    panel = Panel(big_store, page_size=10)
    panel.refresh()
    first = [row.job_id for row in panel.rows]
    panel.next.click()
    panel.refresh()
    assert panel.offset == 10 and panel.records_read == 11
    assert set(first).isdisjoint(row.job_id for row in panel.rows)
    panel.search.value = "job3"
    panel.refresh()
    assert panel.offset == 0
    assert all("job3" in row.left.value for row in panel.rows)
    panel.search.value = ""
    panel.status.value = "failed"
    panel.refresh()
    assert all(row.job_id is None for row in panel.rows)
    assert "no jobs match" in panel.empty.value


def test_tag_filter(store: nbjobs.Store) -> None:
    tagged = store.submit(slow, 1, 0, tags=["etl"])
    store.submit(slow, 1, 0)
    tagged.wait(timeout=30)
    panel = Panel(store)
    panel.search.value = "tag:etl"
    panel.refresh()
    assert [row.job_id for row in panel.rows if row.job_id] == [tagged.id]


def test_page_size_must_be_positive(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match="page_size"):
        Panel(store, page_size=0)


def test_a_refresh_without_changes_sends_nothing(store: nbjobs.Store) -> None:
    done = [store.submit(slow, 2, 0), store.submit(boom, 3)]
    for job in done:
        job.wait(timeout=30)
    panel = Panel(store, page_size=5)
    assert panel.refresh() is True
    changes = count_changes(panel)
    assert panel.refresh() is False
    assert changes() == 0
    late = store.submit(slow, 2, 0)
    late.wait(timeout=30)
    assert panel.refresh() is True
    assert 0 < changes() < 25  # the header, the pager and the rows that moved, not everything


def test_panel_shows_progress_results_and_errors(store: nbjobs.Store, wait_for: Any) -> None:
    ok = store.submit(slow, 3, 0, key="ok")
    bad = store.submit(boom, 7)
    ok.wait(timeout=30)
    bad.wait(timeout=30)
    panel = Panel(store)
    panel.refresh()
    text = " ".join(row.right.value for row in panel.rows if row.job_id)
    assert "{&#x27;answer&#x27;: 42}" in text
    assert "ValueError: bad x: 7" in text
    assert "100% · step 3" in text
    failed, succeeded = panel.rows[:2]
    assert succeeded.bar.value == 1.0 and succeeded.bar.layout.display == ""
    # a job that never reported progress: its duration, no bar
    assert failed.bar.layout.display == "none" and "took " in failed.gauge.value


def fit(alpha: float, window: int = 5) -> dict[str, Any]:
    return {"alpha": alpha, "window": window, "curve": list(range(60)), "note": "n" * 30, "z": 1}


def test_rows_tell_the_jobs_of_a_sweep_apart(store: nbjobs.Store) -> None:
    jobs = [store.submit(fit, a, window=20) for a in (0.1, 0.2)]
    keyed = store.submit(fit, 0.3, key="fit-0.3")
    for job in [*jobs, keyed]:
        job.wait(timeout=30)
    panel = Panel(store)
    panel.refresh()
    left = {row.job_id: row.left.value for row in panel.rows if row.job_id}
    assert "fit-0.3" in left[keyed.id]
    assert "(0.1, window=20)" in left[jobs[0].id] and "(0.2, window=20)" in left[jobs[1].id]


def test_a_long_result_ends_with_an_ellipsis_and_is_whole_on_hover(store: nbjobs.Store) -> None:
    store.submit(fit, 0.5).wait(timeout=30)
    panel = Panel(store)
    panel.refresh()
    out = panel.rows[0].right.value.split("nbjobs-out")[1]
    shown = re.search(r"title='([^']*)'>([^<]*)<", out)
    assert shown is not None
    whole, text = (html.unescape(g) for g in shown.groups())
    assert whole == repr(fit(0.5))  # in insertion order: alpha first, z last
    assert text.startswith("{'alpha': 0.5, 'window': 5, 'curve': [0, 1, 2,") and text.endswith("…")


@pytest.mark.filterwarnings(IN_KERNEL)
def test_a_running_job_without_progress_has_an_indeterminate_bar(
    store: nbjobs.Store, wait_for: Any
) -> None:
    gate = threading.Event()
    job = store.submit(blocker, gate)
    try:
        wait_for(lambda: job.status == "running", 30)
        panel, view = Panel(store), JobView(job)
        panel.refresh()
        view.apply(job.record())
        row = panel.rows[0]
        assert row.bar.layout.display == "none" and "nbjobs-busy" in row.gauge.value
        assert view.bar.layout.display == "none" and view.busy.layout.display == ""
    finally:
        gate.set()
    job.wait(timeout=30)
    view.apply(job.record())  # finished without progress: the title says how long it took
    assert view.progress_line.layout.display == "none"


def progressing(gate: threading.Event) -> None:
    nbjobs.progress(16, 70)
    gate.wait(30)


@pytest.mark.filterwarnings(IN_KERNEL)
def test_the_job_widget_reads_like_tqdm(
    fake_store: nbjobs.Store, clock: FakeClock, wait_for: Any
) -> None:
    gate = threading.Event()
    job = fake_store.submit(progressing, gate)
    try:
        wait_for(lambda: job.progress is not None and job.progress.current == 16, 30)
        clock.advance(8)
        view = JobView(job, clock=clock)
        view.apply(job.record())
        assert view.bar.layout.display == "" and view.busy.layout.display == "none"
        assert "23% 16/70 [00:08]" in view.label.value  # no rate yet: one report
    finally:
        gate.set()
    job.wait(timeout=30)


def test_a_retrying_job_shows_its_last_error_and_a_countdown(
    fake_store: nbjobs.Store, clock: FakeClock, wait_for: Any
) -> None:
    job = fake_store.submit(boom, 3, retries=2, backoff=60)
    wait_for(lambda: job.status == "retrying", 30)
    clock.advance(20)
    view = JobView(job, clock=clock)
    view.apply(job.record())
    text = html.unescape(view.label.value)
    assert "attempt 1 failed: ValueError: bad x: 3 · next attempt in 40s" in text
    panel = Panel(fake_store, clock=clock)
    panel.refresh()
    assert "retry in 40s" in panel.rows[0].gauge.value
    job.cancel()


@pytest.mark.filterwarnings(IN_KERNEL)
def test_a_pending_job_says_what_it_waits_for(store: nbjobs.Store, wait_for: Any) -> None:
    gate = threading.Event()
    first = store.submit(blocker, gate)
    try:
        then = store.submit(pow, first, 2)
        wait_for(lambda: first.status == "running", 30)
        view = JobView(then)
        view.apply(then.record())
        assert "waiting for a dependency (running)" in view.label.value
        panel = Panel(store)
        panel.refresh()
        row = next(r for r in panel.rows if r.job_id == then.id)  # the running job comes first
        assert "(&lt;job blocker&gt;, 2)" in row.left.value
    finally:
        gate.set()
    queued = store.submit(pow, 2, 3, executor="worker")
    view = JobView(queued)
    view.apply(queued.record())
    assert "waiting for a worker: none is running" in view.label.value


def test_a_failed_worker_lookup_shows_the_error_not_a_count(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    def workers() -> list[Any]:
        raise OSError("cannot list the workers")

    monkeypatch.setattr(store, "workers", workers)
    panel = Panel(store)
    panel.refresh()
    workers_text = panel.header.value.split("workers</span>")[1].strip()
    assert workers_text == "(OSError: cannot list the workers)"


def test_details_show_arguments_traceback_and_history(store: nbjobs.Store) -> None:
    bad = store.submit(boom, 123456)
    bad.wait(timeout=30)
    html = details_html(store, bad.record())
    assert "boom(123456)" in html
    assert "Traceback" in html and "bad x: 123456" in html
    assert "attempt 1" in html or "run 1" in html  # attempt history, or runs before it


def open_details(store: nbjobs.Store, job: nbjobs.Job) -> tuple[Panel, Any]:
    """A panel on the store with the first (newest) row's details open, once `job` is done."""
    job.wait(timeout=30)
    panel = Panel(store)
    panel.refresh()
    row = panel.rows[0]
    row.toggle.click()
    panel.refresh()
    assert row.details is not None
    return panel, row


def test_delete_asks_for_confirmation(store: nbjobs.Store) -> None:
    job = store.submit(boom, 1)
    panel, row = open_details(store, job)
    row.details.buttons["delete"].click()
    assert row.details.buttons["confirm"].layout.display == ""
    assert store.get(job.id).status == "failed"  # nothing deleted yet
    row.details.buttons["confirm"].click()
    with pytest.raises(nbjobs.JobNotFound):
        store.get(job.id)
    panel.refresh()
    assert row.job_id is None


def test_retry_button_runs_a_failed_job_again(store: nbjobs.Store, wait_for: Any) -> None:
    job = store.submit(boom, 2)
    _, row = open_details(store, job)
    assert row.details.buttons["cancel"].layout.display == "none"
    row.details.buttons["retry"].click()
    assert "submitted again" in row.details.note.value
    wait_for(lambda: job.status == "failed" and job.record().runs == 2)


@pytest.mark.filterwarnings("ignore:job 'blocker' runs in this kernel")
def test_cancel_button_cancels_a_pending_job(tmp_path: Path) -> None:
    gate = threading.Event()
    with nbjobs.Store(tmp_path / "one", workers=1) as store:
        running = store.submit(blocker, gate)
        queued = store.submit(blocker, gate)
        panel = Panel(store)
        panel.refresh()
        row = next(r for r in panel.rows if r.job_id == queued.id)
        row.toggle.click()
        panel.refresh()
        assert row.details is not None
        assert row.details.buttons["cancel"].layout.display == ""
        row.details.buttons["cancel"].click()
        assert queued.status == "cancelled"
        assert "cancelled" in row.details.note.value
        gate.set()
        running.wait(timeout=30)


def schedule_lines(panel: Panel) -> list[str]:
    """The text of the panel's schedule lines that are shown (tags stripped)."""
    shown = [line for line in panel.schedules.lines if line.box.layout.display != "none"]
    return [" ".join(re.sub("<[^>]+>", " ", line.text.value).split()) for line in shown]


@pytest.mark.filterwarnings(NO_WORKER)
def test_the_panel_shows_the_schedules_only_while_there_are_some(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    panel = Panel(fake_store, clock=clock)
    panel.refresh()
    assert panel.schedules.box.layout.display == "none"
    fake_store.schedule(pow, every="5m", args=(2, 2), name="prices")
    fake_store.schedule(pow, cron="0 2 * * *", tz="Europe/Berlin", args=(2, 3), name="report")
    assert panel.refresh() is True
    assert panel.schedules.box.layout.display == ""
    prices, report = schedule_lines(panel)
    assert prices == "prices every 5m in 5m 00s not fired yet"
    assert "cron 0 2 * * * Europe/Berlin" in report and "not fired yet" in report
    clock.advance(70)
    changes = count_changes(panel)
    assert panel.refresh() is False  # the clock moving is not a change of the store...
    assert "in 3m 50s" in schedule_lines(panel)[0]
    assert changes() == 2  # ... but the time to each next firing is shown
    fake_store.unschedule("prices")
    fake_store.unschedule("report")
    assert panel.refresh() is True
    assert schedule_lines(panel) == [] and panel.schedules.box.layout.display == "none"


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_schedule_shows_its_last_firing_and_its_job_status(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every="1m", args=(2, 2), name="often")
    panel = Panel(fake_store, clock=clock)
    panel.refresh()
    clock.advance(61)
    assert manage.fire_due(fake_store.storage, clock.now()) == 1
    statements: list[str] = []
    fake_store.storage.cache._con.set_trace_callback(statements.append)
    try:
        assert panel.refresh() is True
        (line,) = schedule_lines(panel)
        assert "last" in line and "pending" in line and "fired 1" in line, line
        assert "in 59s" in line
        firing = fake_store.jobs(tag=manage.tag("often"))[0]
        assert firing.cancel()
        panel.refresh()
        assert "cancelled" in schedule_lines(panel)[0]
        statements.clear()
        assert panel.refresh() is False
    finally:
        fake_store.storage.cache._con.set_trace_callback(None)
    job_reads = [s for s in statements if "nbjobs_jobs" in s]
    assert len(job_reads) == 1, job_reads  # the page: statuses are read only after a change


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_paused_schedule_shows_paused_and_its_button_pauses_and_resumes(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every="1h", args=(2, 2), name="hourly")
    fake_store.pause_schedule("hourly")
    panel = Panel(fake_store, clock=clock)
    panel.refresh()
    (line,) = panel.schedules.lines
    assert "paused" in schedule_lines(panel)[0] and "in " not in schedule_lines(panel)[0]
    assert line.button.icon == "play"
    line.button.click()
    assert not fake_store.get_schedule("hourly").paused
    panel.refresh()
    assert line.button.icon == "pause" and "in 1h 00m" in schedule_lines(panel)[0]
    line.button.click()
    assert fake_store.get_schedule("hourly").paused
    with panel._lock:  # the poller (woken by the clicks) cannot redraw the line meanwhile
        panel.refresh()
        fake_store.unschedule("hourly")
        line.button.click()  # the line still shows the schedule removed meanwhile
    assert "resume hourly failed: no schedule named" in panel.schedules.note.value
    panel.close()
    panel.poller.join(5)


@pytest.mark.filterwarnings(NO_WORKER)
def test_a_corrupt_schedule_is_shown_as_such_without_a_button(
    fake_store: nbjobs.Store, clock: FakeClock
) -> None:
    fake_store.schedule(pow, every=5, args=(2, 2), name="broken")
    fake_store.storage.writer.call(
        lambda sql: sql("UPDATE nbjobs_schedules SET data = ? WHERE name = 'broken'", (b"junk",))
    )
    panel = Panel(fake_store, clock=clock)
    panel.refresh()
    (line,) = panel.schedules.lines
    assert "broken" in line.text.value and "cannot be read" in line.text.value
    assert line.button.disabled


def models(widget: Any) -> Iterator[Any]:
    """Every widget model a view opened: boxes, their children, layouts and styles."""
    yield widget
    yield from (part for name in ("layout", "style") if (part := getattr(widget, name, None)))
    for child in getattr(widget, "children", ()):
        yield from models(child)


def test_closing_a_view_closes_every_widget_model_it_opened(store: nbjobs.Store) -> None:
    """Closed models leave the kernel's widget registry: nothing is kept for the session."""
    job = store.submit(boom, 1)
    panel, _row = open_details(store, job)
    view = JobView(job)
    view.tick()
    opened = [*models(panel.widget), *models(view.widget)]
    panel.close()
    view.close()
    assert [type(m).__name__ for m in opened if m.comm is not None] == []


def test_registry_closes_the_panel_of_a_rerun_cell(store: nbjobs.Store) -> None:
    registry = Registry()
    first, second, third = Panel(store), Panel(store), Panel(store)
    registry.add(first, "cell-a", "run-1")
    registry.add(second, "cell-a", "run-1")  # a second panel in the same run stays
    assert first.widget.comm is not None
    registry.add(third, "cell-a", "run-2")  # the cell was re-run
    assert first.widget.comm is None and second.widget.comm is None
    assert third.widget.comm is not None
    assert registry.views("cell-a") == [third]


def test_poller_stops_when_the_panel_is_closed(store: nbjobs.Store, wait_for: Any) -> None:
    panel = Panel(store, interval=0.01)
    panel.show()
    wait_for(lambda: panel.poller.ticks >= 3)
    panel.close()
    panel.poller.join(5)
    assert not panel.poller.running
    assert panel.widget.comm is None
    ticks = panel.poller.ticks
    threading.Event().wait(0.05)
    assert panel.poller.ticks == ticks


def test_poller_stops_after_the_idle_timeout_and_wakes_again() -> None:
    clock = FakeClock()
    reasons: list[str] = []

    def tick() -> Any:
        clock.advance(60)  # each poll finds nothing new, a minute later
        return "same"

    poller = Poller(tick, interval=0.001, slow_interval=0.001, idle_timeout=300, clock=clock,
                    on_stop=reasons.append)  # fmt: skip
    poller.start()
    poller.join(5)
    assert reasons == ["idle"] and poller.ticks == 5
    poller.start()  # a click or a re-display wakes it
    poller.join(5)
    assert reasons == ["idle", "idle"] and poller.ticks == 10


def test_poller_slows_down_when_nothing_changes() -> None:
    clock = FakeClock()
    waits: list[float] = []
    poller = Poller(lambda: "same", interval=0.001, slow_interval=0.002, slow_after=10,
                    idle_timeout=100, clock=clock)  # fmt: skip
    real_wait = poller._wake.wait

    def wait(timeout: float | None = None) -> bool:
        waits.append(timeout or 0)
        clock.advance(4)
        return real_wait(timeout)

    poller._wake.wait = wait  # type: ignore[method-assign]
    poller.start()
    poller.join(5)
    assert waits[:2] == [0.001, 0.001] and waits[-1] == 0.002


def test_poller_ends_when_the_job_is_finished(store: nbjobs.Store, wait_for: Any) -> None:
    job = store.submit(slow, 20, 0.01)
    view = JobView(job, interval=0.01)
    view.show()
    job.wait(timeout=30)
    view.poller.join(5)
    assert not view.poller.running
    assert "succeeded" in view.title.value
    assert view.bar.value == 1.0 and view.bar.bar_style == "success"
    assert "answer" in view.outcome.value
    REGISTRY.close_all()


def test_job_view_of_a_failed_job_offers_its_traceback(store: nbjobs.Store) -> None:
    job = store.submit(boom, 5)
    job.wait(timeout=30)
    view = JobView(job)
    assert view.tick() == "done"
    assert "ValueError: bad x: 5" in view.outcome.value
    assert view.tb_button.layout.display == ""
    view.tb_button.click()
    assert "Traceback" in view.tb.value and "boom" in view.tb.value


def test_outside_a_kernel_a_job_shows_its_text_and_html_reprs(store: nbjobs.Store) -> None:
    job = store.submit(slow, 2, 0)
    job.wait(timeout=30)
    assert job_bundle(job) is None
    assert job._repr_mimebundle_() is None
    card = job._repr_html_()
    assert "succeeded" in card and "attempt 1" in card and "100% · step 2" in card
    assert "#fff'" not in card and "white;" not in card  # theme variables, not fixed colours
    assert repr(job).startswith("<Job slow ")


def test_a_closed_panel_is_drawn_again_when_displayed_again(
    store: nbjobs.Store, wait_for: Any
) -> None:
    job = store.submit(slow, 1, 0)
    job.wait(timeout=30)
    panel = Panel(store, interval=0.01)
    panel.show()
    panel.close_button.click()
    panel.poller.join(5)
    bundle = panel._repr_mimebundle_()  # `panel` evaluated again in a cell
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert panel.widget.comm is not None and panel.poller.running
    assert [row.job_id for row in panel.rows if row.job_id] == [job.id]
    panel.close()
    panel.poller.join(5)


def test_rerunning_a_cell_closes_its_old_panel(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cell id and request id come from the kernel's parent message, as in JupyterLab."""
    import IPython

    parent: dict[str, Any] = {}

    class Kernel:
        def get_parent(self) -> dict[str, Any]:
            return parent

    class Shell:
        kernel = Kernel()

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    parent.update(metadata={"cellId": "cell-7"}, header={"msg_id": "run-1"})
    old = Panel(store, interval=0.01)
    old._repr_mimebundle_()
    assert old.poller.running
    parent.update(header={"msg_id": "run-2"})
    new = Panel(store, interval=0.01)
    bundle = new._repr_mimebundle_()
    assert "nbjobs.panel() again" in bundle["text/plain"]
    old.poller.join(5)
    assert not old.poller.running and old.widget.comm is None
    assert new.poller.running
    new.close()
    new.poller.join(5)


def test_docstring_examples() -> None:
    import doctest

    import nbjobs.render
    import nbjobs.widgets

    names = [f"nbjobs.widgets.{m.name}" for m in pkgutil.iter_modules(nbjobs.widgets.__path__)]
    for name in ["nbjobs.render", "nbjobs.shorten", "nbjobs.widgets", *names]:
        module = importlib.import_module(name)
        assert doctest.testmod(module).failed == 0, name


def test_a_new_process_shows_every_job_from_the_store(tmp_path: Path) -> None:
    """What a kernel restart amounts to: another process opens the store and draws it."""
    first = (
        "import nbjobs\n"
        "def boom(): raise KeyError('gone')\n"
        f"s = nbjobs.Store({str(tmp_path / 's')!r})\n"
        "s.submit(sum, [1, 2, 3], key='six').wait(30); s.submit(boom).wait(30); s.close()\n"
    )
    second = (
        "import nbjobs\n"
        "from nbjobs.widgets.panel_view import Panel\n"
        f"p = Panel(nbjobs.Store({str(tmp_path / 's')!r}))\n"
        "p.refresh()\n"
        "print('|'.join(r.left.value + r.right.value for r in p.rows))\n"
    )
    subprocess.run([sys.executable, "-c", first], check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-c", second], check=True, timeout=60, capture_output=True, text=True
    ).stdout
    assert "KeyError: &#x27;gone&#x27;" in out and ">6<" in out, out
