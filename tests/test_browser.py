"""The job widget and the panel in real JupyterLab 4 and Notebook 7, in headless Chromium.

The notebook submits a job that reports progress for half a minute, one that succeeds at
once and one that fails, shows the job widgets and `nbjobs.panel()`, then keeps the kernel
busy in `time.sleep(6)`. Read from the page: the widgets render, the progress bars advance
while that cell runs (updates come from a thread) and again once the kernel is idle, the
failed job shows its error and the finished one its result. Screenshots go to artifacts/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_helpers import (
    CHROMIUM,
    CHROMIUM_ARGS,
    JS_CELLS,
    OUTPUT_FAILURES,
    Server,
    fit_viewport,
    jupyter_server,
    open_notebook,
    wait_js,
)
from gates import poll
from nbformat.v4 import new_code_cell, new_notebook

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
NOTEBOOK = "panel_demo.ipynb"
CELLS = [
    """import time
import nbjobs

def crunch(n):
    for i in range(n):
        nbjobs.progress(i + 1, n, message=f"chunk {i + 1}/{n}")
        time.sleep(0.5)
    return n

def quick():
    return {"answer": 42}

def broken():
    print("calibrating sensor 3")
    raise ValueError("sensor offline")

nbjobs.schedule(quick, cron="0 6 * * *", tz="UTC", name="morning-report")
done = nbjobs.submit(quick, key="quick")
bad = nbjobs.submit(broken, key="broken")
done.wait(30), bad.wait(30)
long = nbjobs.submit(crunch, 70, key="crunch")""",
    "long",
    "bad",
    "import nbjobs\n\nnbjobs.panel()",
    "time.sleep(6)",
]

# Progress-bar widths (percent) of the running job in its own widget and in the panel.
JS_BARS = """() => {
  const width = el => {
    const bar = el && el.querySelector('.progress-bar');
    return bar ? parseFloat(bar.style.width) : null;
  };
  const panel = document.querySelector('.nbjobs-panel');
  const rows = Array.from(document.querySelectorAll('.nbjobs-panel .nbjobs-row'));
  const row = rows.find(r => r.innerText.includes('crunch'));
  return {
    job: width(document.querySelector('.nbjobs-job')),
    panel: width(row),
    panelText: panel ? panel.innerText : '',
    jobs: Array.from(document.querySelectorAll('.nbjobs-job')).map(j => j.innerText),
  };
}"""


def notebook(path: Path, cells: list[str] = CELLS) -> None:
    nb = new_notebook(cells=[new_code_cell(src) for src in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, path)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium); CI installs it")
    work = tmp_path / "work"
    work.mkdir()
    notebook(work / NOTEBOOK)
    env = {"NBJOBS_STORE": str(tmp_path / "store")}
    with jupyter_server(tmp_path / "root", work, env) as srv:
        yield srv


def run_all(page: Any) -> None:
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def last_cell_busy(page: Any) -> bool:
    snap = page.evaluate(JS_CELLS)
    return bool(snap["cells"][-1]["prompt"] == "[*]:")


def advancing(
    page: Any, moved: Callable[[dict[str, Any], dict[str, Any]], bool] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Two reads of the progress bars: the second once `moved(first, second)` (by default:
    both bars are further along), or after 20 s."""
    moved = moved or (lambda a, b: b["job"] > a["job"] and b["panel"] > a["panel"])
    first = last = page.evaluate(JS_BARS)

    def read() -> bool:
        nonlocal last
        last = page.evaluate(JS_BARS)
        return moved(first, last)

    poll(read, 20, 0.2)
    return first, last


def check_outputs(page: Any) -> None:
    snap = page.evaluate(JS_CELLS)
    for cell in snap["cells"]:
        assert not cell["errors"], cell
        for marker in OUTPUT_FAILURES:
            assert marker not in cell["text"], (marker, cell["text"][:500])


def our_console_errors(console: list[str], strict: bool) -> list[str]:
    """Errors that mention widgets or nbjobs; with `strict`, every uncaught page error too.

    (Notebook 7 opened from a JupyterLab server logs two start-up page errors of its own.)
    """
    return [
        line
        for line in console
        if (strict and line.startswith("[pageerror]"))
        or (
            line.startswith(("[error]", "[pageerror]"))
            and any(w in line.lower() for w in ("widget", "nbjobs"))
        )
    ]


def test_panel_and_job_widgets_live_in_jupyterlab(server: Server) -> None:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    console: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("console", lambda m: console.append(f"[{m.type}] {m.text}"))
        page.on("pageerror", lambda e: console.append(f"[pageerror] {e}"))
        open_notebook(page, server, f"lab/tree/{NOTEBOOK}")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        run_all(page)
        wait_js(page, JS_BARS, lambda b: b["panel"] is not None and b["job"] is not None, 45,
                "the panel and the job widget")  # fmt: skip
        wait_js(page, JS_CELLS, lambda s: s["cells"][-1]["prompt"] == "[*]:", 20, "sleep cell")

        busy_a, busy_b = advancing(page)
        assert last_cell_busy(page), "the sleep cell should still be running"
        assert busy_b["job"] > busy_a["job"], (busy_a, busy_b)
        assert busy_b["panel"] > busy_a["panel"], (busy_a, busy_b)

        wait_js(page, JS_CELLS, lambda s: s["kernel"] == "idle" and s["cells"][-1]["count"],
                20, "the idle kernel")  # fmt: skip
        idle_a, idle_b = advancing(page)
        assert idle_b["job"] > idle_a["job"], (idle_a, idle_b)
        assert idle_b["panel"] > idle_a["panel"], (idle_a, idle_b)

        text = idle_b["panelText"]
        assert "ValueError: sensor offline" in text, text
        assert "{'answer': 42}" in text, text
        assert "chunk " in text and "crunch" in text, text
        assert "morning-report" in text and "cron 0 6 * * * UTC" in text, text  # the schedules
        assert any("ValueError: sensor offline" in j for j in idle_b["jobs"]), idle_b["jobs"]
        check_outputs(page)
        screenshots(page)
        in_lab = list(console)
        after_restart(page)
        in_notebook7(page, server)
        browser.close()
    (ARTIFACTS / "browser_console.log").write_text("\n".join(console) + "\n")
    assert our_console_errors(in_lab, strict=True) == []
    assert our_console_errors(console, strict=False) == []


JS_THEME = "() => document.body.dataset.jpThemeName"


def screenshots(page: Any) -> None:
    """Light and dark themes, with the failed job's details open."""
    from playwright.sync_api import expect

    page.locator(".nbjobs-panel .nbjobs-row", has_text="broken").locator("button").first.click()
    expect(page.locator(".nbjobs-details").first).to_contain_text("sensor offline", timeout=10_000)
    fit_viewport(page)
    page.screenshot(path=str(ARTIFACTS / "panel_lab_light.png"), full_page=True)
    page.evaluate(
        "() => window.jupyterapp.commands.execute('apputils:change-theme',"
        " {theme: 'JupyterLab Dark'})"
    )
    wait_js(page, JS_THEME, lambda name: name == "JupyterLab Dark", 30, "the dark theme")
    page.screenshot(path=str(ARTIFACTS / "panel_lab_dark.png"), full_page=True)


def run_cell(page: Any, index: int) -> None:
    page.evaluate(
        f"""() => {{ const w = window.jupyterapp.shell.currentWidget;
                    w.content.activeCellIndex = {index};
                    window.jupyterapp.commands.execute('notebook:run-cell'); }}"""
    )


# Set `window.nbjobsRestarted` once the notebook's kernel has left its idle state (restarting,
# starting): after that, an idle kernel is the new one.
JS_WATCH_RESTART = """() => {
  window.nbjobsRestarted = false;
  window.jupyterapp.shell.currentWidget.sessionContext.statusChanged.connect((_, status) => {
    if (status !== 'idle' && status !== 'busy') window.nbjobsRestarted = true;
  });
}"""


def after_restart(page: Any) -> None:
    """Restart the kernel and run only the panel's cell: every job is read back from the
    store, the job cut short by the restart is `interrupted`, and the panel's resume
    button runs it again."""
    page.evaluate(JS_WATCH_RESTART)
    page.evaluate("() => { window.jupyterapp.commands.execute('kernelmenu:restart'); }")
    page.locator(".jp-Dialog .jp-mod-accept").first.click(timeout=15_000)
    page.wait_for_function("() => window.nbjobsRestarted", timeout=30_000, polling=200)
    wait_js(page, JS_CELLS, lambda s: s["kernel"] == "idle", 30, "the restarted kernel")
    run_cell(page, 3)
    wait_js(page, JS_BARS, lambda b: "interrupted" in b["panelText"], 30, "the new panel")
    text = page.evaluate(JS_BARS)["panelText"]
    assert "{'answer': 42}" in text and "ValueError: sensor offline" in text, text
    page.locator(".nbjobs-panel button", has_text="resume 1 interrupted").click()
    resumed = wait_js(page, JS_BARS, lambda b: "running" in b["panelText"], 20, "the resumed job")
    wait_js(page, JS_BARS, lambda b: b["panel"] != resumed["panel"], 20, "its progress")
    page.locator(".nbjobs-panel").screenshot(path=str(ARTIFACTS / "panel_after_restart.png"))


def in_notebook7(page: Any, server: Server) -> None:
    """The same notebook in Notebook 7: re-running the panel's cell there draws a live panel
    (and the registry closes the one drawn by JupyterLab for that cell)."""
    open_notebook(page, server, f"notebooks/{NOTEBOOK}")
    run_cell(page, 3)
    wait_js(page, JS_BARS, lambda b: b["panel"] is not None, 30, "the panel in Notebook 7")
    first, second = advancing(page, lambda a, b: b["panel"] > a["panel"] or b["panel"] == 100)
    assert second["panel"] > first["panel"] or second["panel"] == 100, (first, second)
    assert "ValueError: sensor offline" in second["panelText"]
    check_outputs(page)
    page.locator(".nbjobs-panel").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "panel_notebook7.png"))


# ---------------------------------------------------------------------- a sweep
SWEEP_NOTEBOOK = "sweep_demo.ipynb"
SWEEP_CELLS = [
    """import time
import nbjobs

nbjobs.start_worker(workers=2, idle_timeout=120)

def sweep_point(x):
    if x in (0, 1, 2, 150):
        raise ValueError(f"diverged at x={x}: " + "residual too large; " * 12)
    time.sleep(0.4)
    return x * x

jobs = nbjobs.map(sweep_point, range(240), key="sweep", executor="worker")""",
    "nbjobs.watch(jobs)",
    "nbjobs.panel()",
]

# Each visible job row of the panel: its text, its visible progress bars, its indeterminate
# bars, and the text and tooltip of every element that has one.
JS_ROWS = """() => {
  const panel = document.querySelector('.nbjobs-panel');
  if (!panel) return null;
  const shown = el => el.offsetParent !== null;
  return Array.from(panel.querySelectorAll('.nbjobs-row')).filter(shown).map(el => ({
    text: el.innerText,
    bars: Array.from(el.querySelectorAll('.progress-bar')).filter(shown).length,
    busy: el.querySelectorAll('.nbjobs-busy').length,
    titled: Array.from(el.querySelectorAll('[title]')).map(
      t => ({text: t.innerText, title: t.getAttribute('title')})),
  }));
}"""

# What the panel shows, in page order: its group rows and job rows (visible ones only).
JS_SWEEP = """() => {
  const panel = document.querySelector('.nbjobs-panel');
  const watch = document.querySelector('.nbjobs-watch');
  if (!panel) return null;
  const shown = el => el.offsetParent !== null;
  const lines = Array.from(panel.querySelectorAll('.nbjobs-group, .nbjobs-row')).filter(shown);
  return {
    lines: lines.map(el => ({group: el.classList.contains('nbjobs-group'), text: el.innerText})),
    watch: watch ? watch.innerText : '',
  };
}"""


@pytest.fixture
def sweep_server(tmp_path: Path) -> Iterator[Server]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium); CI installs it")
    work = tmp_path / "work"
    work.mkdir()
    notebook(work / SWEEP_NOTEBOOK, SWEEP_CELLS)
    store = tmp_path / "store"
    try:
        with jupyter_server(tmp_path / "root", work, {"NBJOBS_STORE": str(store)}) as srv:
            yield srv
    finally:
        import nbjobs

        if store.exists():
            with nbjobs.Store(store) as opened:
                opened.stop_worker(timeout=30)


def _sweep_under_way(snap: dict[str, Any] | None) -> bool:
    """The group row and two running jobs are shown, and some jobs already failed."""
    if not snap or not snap["lines"] or "failed" not in snap["lines"][0]["text"]:
        return False
    return sum("running" in line["text"] for line in snap["lines"][1:3]) == 2


def _check_rows(rows: list[dict[str, Any]]) -> None:
    """Keys in the rows; a running job without progress has a moving bar, a failed one its
    duration and no bar; a long error is cut with an ellipsis and whole in its tooltip."""
    assert rows and all("sweep/" in row["text"] for row in rows), [r["text"] for r in rows]
    running = [row for row in rows if "running" in row["text"]]
    failed = [row for row in rows if "failed" in row["text"]]
    assert running and all(row["busy"] == 1 and row["bars"] == 0 for row in running), running
    assert failed and all(row["bars"] == 0 and "took" in row["text"] for row in failed), failed
    whole = "residual too large; " * 12
    for row in failed:
        cut = [t for t in row["titled"] if "diverged at x=" in t["title"]]
        assert cut, row
        assert cut[0]["text"].endswith("…") and whole.strip() in cut[0]["title"], cut[0]


def test_a_sweep_shows_as_a_group_with_running_jobs_first(sweep_server: Server) -> None:
    """240 jobs on 2 detached workers, 4 of them failing: the panel's first row is the
    sweep's group row (its size, counts, bar), then the two running jobs, then the failed
    ones before the pending ones; the watch cell draws the group's tqdm-like line."""
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        open_notebook(page, sweep_server, f"lab/tree/{SWEEP_NOTEBOOK}")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        run_all(page)
        snap = wait_js(page, JS_SWEEP, _sweep_under_way, 90, "the sweep's group and running rows")
        lines = snap["lines"]
        group = lines[0]
        assert group["group"], lines[:3]
        assert "sweep" in group["text"] and "240 jobs" in group["text"], group
        assert "/240 [" in group["text"] and "jobs/s" in group["text"], group
        assert [line["group"] for line in lines[1:3]] == [False, False], lines[:3]
        shown = ("running", "failed", "pending", "succeeded")
        statuses = [next((s for s in shown if s in line["text"]), "") for line in lines[1:]]
        first_pending = statuses.index("pending")
        assert "failed" in statuses[2:first_pending], statuses
        assert "/240 [" in snap["watch"] and "sweep" in snap["watch"], snap["watch"]
        _check_rows(page.evaluate(JS_ROWS))
        check_outputs(page)
        fit_viewport(page)
        page.screenshot(path=str(ARTIFACTS / "panel_sweep.png"), full_page=True)
        page.locator(".nbjobs-group button").first.click()
        wait_js(page, JS_SWEEP, lambda s: s and "group: sweep" in page.inner_text(".nbjobs-panel"),
                20, "the group's jobs")  # fmt: skip
        page.locator(".nbjobs-panel").screenshot(path=str(ARTIFACTS / "panel_sweep_group.png"))
        browser.close()
