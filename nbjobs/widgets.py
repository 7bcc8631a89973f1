"""Live views of jobs in Jupyter: the job widget and `nbjobs.panel()`.

The only module that imports ipywidgets and IPython. Updates come from a daemon thread per
view (asyncio tasks freeze while another cell runs), at most a few times a second, and only
the widget traits whose values changed are sent (the IOPub rate limit drops floods). A view
stops polling when it is closed, when its cell is re-run (a registry keyed on the cell id),
after a long quiet period (any click or re-display wakes it) and at kernel shutdown.

>>> panel = nbjobs.widgets.Panel(nbjobs.Store("/tmp/jobs"))   # doctest: +SKIP
>>> panel.refresh()          # one read: the counts and one page of records  # doctest: +SKIP
True
"""

from __future__ import annotations

import atexit
import html
import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import ipywidgets as W

from . import codec, render, states, validate
from .clock import SYSTEM, Clock
from .errors import JobNotFound
from .records import JobRecord

if TYPE_CHECKING:
    from .api import Store
    from .job import Job

log = logging.getLogger("nbjobs")
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
Tick = Literal["changed", "same", "done"]
RESTART_HINT = "after a kernel restart, run nbjobs.panel() again to re-display it from the store"

CSS = """<style>
.nbjobs-root { font-family: var(--jp-ui-font-family); font-size: var(--jp-ui-font-size1);
  color: var(--jp-ui-font-color1); }
.nbjobs-root .widget-html-content { line-height: 1.45; }
.nbjobs-panel { border: 1px solid var(--jp-border-color2); border-radius: 6px;
  padding: 6px 10px 8px; background: var(--jp-layout-color1); max-width: 1180px; }
.nbjobs-job { border: 1px solid var(--jp-border-color2); border-radius: 6px;
  padding: 4px 10px; background: var(--jp-layout-color1); max-width: 760px; }
.nbjobs-muted { color: var(--jp-ui-font-color2); }
.nbjobs-err { color: var(--jp-error-color1); }
.nbjobs-ok { color: var(--jp-success-color1); }
.nbjobs-code { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size); }
.nbjobs-row { border-top: 1px solid var(--jp-border-color3); align-items: center; }
.nbjobs-row:hover { background: var(--jp-layout-color2); }
.nbjobs-th { font-size: var(--jp-ui-font-size0); color: var(--jp-ui-font-color2);
  text-transform: uppercase; letter-spacing: .04em; }
.nbjobs-line { display: flex; align-items: center; white-space: nowrap; overflow: hidden; }
.nbjobs-c { flex: 0 0 auto; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  padding-right: 8px; box-sizing: border-box; }
.nbjobs-name { width: 170px; } .nbjobs-status { width: 95px; }
.nbjobs-msg { width: 200px; } .nbjobs-prog { width: 326px; }
.nbjobs-att { width: 48px; text-align: right; }
.nbjobs-start { width: 78px; } .nbjobs-el { width: 64px; text-align: right; }
.nbjobs-out { flex: 1 1 auto; min-width: 60px; padding-left: 8px; }
.nbjobs-pre { font-family: var(--jp-code-font-family); font-size: var(--jp-code-font-size);
  background: var(--jp-layout-color2); color: var(--jp-content-font-color1);
  padding: 6px 8px; margin: 4px 0; max-height: 260px; overflow: auto; white-space: pre; }
.nbjobs-details { border-left: 3px solid var(--jp-brand-color2); margin: 2px 0 8px 34px;
  padding: 4px 10px; background: var(--jp-layout-color1); }
.nbjobs-details table { border-collapse: collapse; }
.nbjobs-details td, .nbjobs-details th { padding: 1px 12px 1px 0; text-align: left;
  vertical-align: top; }
.nbjobs-root .widget-button { height: 24px; line-height: 24px; }
.nbjobs-toggle.widget-button { width: 28px; padding: 0; background: transparent;
  color: var(--jp-ui-font-color2); box-shadow: none; }
</style>"""

_BAR_STYLES = {
    states.RUNNING: "info",
    states.SUCCEEDED: "success",
    states.FAILED: "danger",
    states.RETRYING: "warning",
    states.INTERRUPTED: "warning",
}


# ------------------------------------------------------------------------------ polling
class Poller:
    """Calls `tick()` from a daemon thread until it says "done", it is stopped, or it idles.

    Polls every `interval` s, every `slow_interval` s once nothing changed for `slow_after` s,
    and stops after `idle_timeout` s without a change; `start()` wakes it again.
    `on_stop(reason)` is called from the thread when it ends ("done", "idle", "stopped",
    "error").

    >>> p = Poller(lambda: "done")
    >>> p.start(); p.join(5); p.running
    False
    """

    def __init__(
        self,
        tick: Callable[[], Tick],
        *,
        interval: float = 0.5,
        slow_interval: float = 3.0,
        slow_after: float = 30.0,
        idle_timeout: float = 900.0,
        clock: Clock = SYSTEM,
        on_stop: Callable[[str], None] | None = None,
        name: str = "nbjobs-view",
    ) -> None:
        self._tick = tick
        self.interval, self.slow_interval = interval, slow_interval
        self.slow_after, self.idle_timeout = slow_after, idle_timeout
        self._clock = clock
        self._on_stop = on_stop
        self._name = name
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_thread: threading.Thread | None = None
        self._stopped = False
        self._last_change = clock.monotonic()
        self.ticks = 0

    @property
    def running(self) -> bool:
        with self._lock:
            return self._thread is not None

    def start(self) -> None:
        """Start polling, or wake a poller that is waiting or slowed down (poll now)."""
        with self._lock:
            self._stopped = False
            self._last_change = self._clock.monotonic()
            if self._thread is not None:
                self._wake.set()
                return
            self._thread = self._last_thread = threading.Thread(
                target=self._run, name=self._name, daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop polling (the thread ends at its next wake-up, at once if waiting)."""
        with self._lock:
            self._stopped = True
            self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the polling thread to end (tests; the thread is a daemon)."""
        thread = self._last_thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        reason, failures = "stopped", 0
        while True:
            outcome, failures = self._safe_tick(failures)
            with self._lock:
                reason = self._exit_reason(outcome, failures)
                if reason:
                    self._thread = None
                    break
                self._wake.clear()
                quiet = self._clock.monotonic() - self._last_change
            self._wake.wait(self.interval if quiet < self.slow_after else self.slow_interval)
        if self._on_stop is not None:
            _quietly(self._on_stop, reason)

    def _safe_tick(self, failures: int) -> tuple[Tick, int]:
        try:
            outcome = self._tick()
        except Exception:
            log.debug("nbjobs: a widget refresh failed", exc_info=True)
            return "same", failures + 1
        self.ticks += 1
        return outcome, 0

    def _exit_reason(self, outcome: Tick, failures: int) -> str:
        """Why the thread should end now ('' to go on). Called with the lock held."""
        now = self._clock.monotonic()
        if outcome == "changed":
            self._last_change = now
        if self._stopped:
            return "stopped"
        if outcome == "done":
            return "done"
        if failures >= 5:
            return "error"
        return "idle" if now - self._last_change >= self.idle_timeout else ""


def _quietly(fn: Callable[..., object], *args: Any) -> None:
    try:
        fn(*args)
    except Exception:
        log.debug("nbjobs: widget callback failed", exc_info=True)


def set_traits(widget: W.Widget, **values: Any) -> int:
    """Set only the traits whose value differs; returns how many were set (= messages sent).

    >>> set_traits(W.HTML("a"), value="a")
    0
    """
    n = 0
    for name, value in values.items():
        if getattr(widget, name) != value:
            setattr(widget, name, value)
            n += 1
    return n


# ------------------------------------------------------------------------------ registry
class _Live(Protocol):
    def close(self) -> None: ...


class Registry:
    """Live views by notebook cell: displaying in a cell that was re-run closes the old views.

    The kernel is never told that an output was cleared or its cell re-run, so the cell id
    (sent by JupyterLab and Notebook 7 in the request's metadata) and the request's message
    id tell a re-run (same cell, new request) from a second view in the same run.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cells: dict[str, tuple[str | None, list[weakref.ref[_Live]]]] = {}
        self._all: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, view: _Live, cell_id: str | None, msg_id: str | None) -> None:
        stale: list[_Live] = []
        with self._lock:
            self._all.add(view)
            if cell_id is None:
                return
            old_msg, refs = self._cells.get(cell_id, (msg_id, []))
            if old_msg != msg_id:
                stale = [v for v in (r() for r in refs) if v is not None and v is not view]
                refs = []
            refs.append(weakref.ref(view))
            self._cells[cell_id] = (msg_id, refs)
        for old in stale:
            _quietly(old.close)

    def views(self, cell_id: str) -> list[_Live]:
        with self._lock:
            _msg, refs = self._cells.get(cell_id, (None, []))
            return [v for v in (r() for r in refs) if v is not None]

    def close_all(self) -> None:
        with self._lock:
            views = list(self._all)
        for view in views:
            _quietly(view.close)


REGISTRY = Registry()
atexit.register(REGISTRY.close_all)


def cell_context() -> tuple[str | None, str | None]:
    """(cell id, request message id) of the cell being executed, or (None, None)."""
    try:
        import IPython

        kernel = getattr(IPython.get_ipython(), "kernel", None)
        parent = kernel.get_parent() if kernel is not None else None
    except Exception:
        return None, None
    if not parent:
        return None, None
    cell = (parent.get("metadata") or {}).get("cellId")
    return cell, (parent.get("header") or {}).get("msg_id")


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where widgets can render)."""
    try:
        import IPython
    except ImportError:
        return False
    return getattr(IPython.get_ipython(), "kernel", None) is not None


# ------------------------------------------------------------------------------ content
class Previews:
    """Result previews and error summaries, loaded once per run of a job (results are
    immutable until the job runs again) and only when small (stored inline)."""

    def __init__(self, store: Store, limit: int = 80) -> None:
        self.store = store
        self.limit = limit
        self._cache: dict[tuple[str, int, float | None], str] = {}

    def html(self, rec: JobRecord) -> str:
        """The outcome column: result preview, error summary or a hint, as HTML."""
        if rec.status == states.FAILED:
            return f"<span class='nbjobs-err'>{html.escape(render.error_line(rec))}</span>"
        if rec.status == states.INTERRUPTED:
            return "<span class='nbjobs-muted'>interrupted: resume to run again</span>"
        if rec.status != states.SUCCEEDED or not rec.has_result:
            return ""
        key = (rec.id, rec.runs, rec.finished_at)
        if key not in self._cache:
            if len(self._cache) > 2000:
                self._cache.clear()
            self._cache[key] = self._load(rec)
        return self._cache[key]

    def _load(self, rec: JobRecord) -> str:
        storage = self.store.storage
        row = self._inline(rec.id)
        if row is None:  # a job of this process whose result is still in the write queue
            self.store.flush()
            row = self._inline(rec.id)
        if row is None:
            return "<span class='nbjobs-muted'>(no result stored)</span>"
        if not row[0]:
            return "<span class='nbjobs-muted'>(large result: job.result() loads it)</span>"
        try:
            text = render.short_repr(storage.load_value(f"r:{rec.id}"), self.limit)
        except Exception as exc:
            text = f"(result cannot be loaded here: {type(exc).__name__})"
        return f"<span class='nbjobs-code'>{html.escape(text)}</span>"

    def _inline(self, job_id: str) -> tuple[bool] | None:
        """(stored inline?,) for the job's result, None if there is none. Results above the
        store's inline limit live in files and are not loaded for a preview."""
        inline = self.store.storage.blob_inline(f"r:{job_id}")
        return None if inline is None else (inline,)


def outcome_text(rec: JobRecord, previews: Previews) -> str:
    """The outcome HTML, or the state's hint for jobs not finished yet."""
    if rec.status == states.PENDING:
        return "<span class='nbjobs-muted'>queued</span>"
    return previews.html(rec)


def bar_style(status: str) -> str:
    return _BAR_STYLES.get(status, "")


# ------------------------------------------------------------------------------ job widget
class JobView:
    """The compact live widget shown when a `Job` is the value of a cell.

    >>> JobView(job).widget          # doctest: +SKIP
    """

    def __init__(self, job: Job, *, interval: float = 0.5, clock: Clock = SYSTEM) -> None:
        self.job = job
        self.previews = Previews(job.store, limit=200)
        self._clock = clock
        self.title = W.HTML()
        self.bar = W.FloatProgress(value=0.0, min=0.0, max=1.0, layout=W.Layout(width="220px"))
        self.label = W.HTML(layout=W.Layout(margin="0 0 0 8px"))
        self.outcome = W.HTML()
        self.progress_line = W.HBox([self.bar, self.label])
        self.tb_button = W.Button(
            description="traceback", icon="chevron-down", layout=W.Layout(display="none")
        )
        self.tb = W.HTML(layout=W.Layout(display="none"))
        self.tb_button.on_click(self._toggle_traceback)
        self.widget = W.VBox(
            [
                W.HTML(CSS, layout=W.Layout(display="none")),
                self.title,
                self.progress_line,
                W.HBox([self.outcome, self.tb_button]),
                self.tb,
            ]
        )
        self.widget.add_class("nbjobs-root")
        self.widget.add_class("nbjobs-job")
        # A job may run for hours without reporting progress: poll it slowly for long
        # before giving up (a finished job ends the polling at once).
        self.poller = Poller(
            self.tick,
            interval=interval,
            slow_interval=5.0,
            idle_timeout=4 * 3600.0,
            clock=clock,
            on_stop=self._stopped,
            name="nbjobs-job",
        )
        self._seen: tuple[Any, ...] = ()
        self.updates = 0

    def tick(self) -> Tick:
        """Show the job's current record; "done" once it is finished (or forgotten)."""
        if self.widget.comm is None:
            return "done"
        try:
            rec = self.job.record()
        except JobNotFound:
            self.updates += set_traits(self.title, value=self._title_html(None))
            return "done"
        self.updates += self.apply(rec)
        seen = (rec.status, rec.updated_at, rec.progress)
        changed, self._seen = seen != self._seen, seen
        if rec.status in states.FINISHED:
            return "done"
        return "changed" if changed else "same"

    def apply(self, rec: JobRecord) -> int:
        now = self._clock.now()
        failed = rec.status == states.FAILED
        text = render.progress_text(rec.progress_info(), rec.status)
        return (
            set_traits(self.title, value=self._title_html(rec, now))
            + set_traits(self.bar, value=render.fraction(rec), bar_style=bar_style(rec.status))
            + set_traits(self.label, value=f"<span class='nbjobs-muted'>{html.escape(text)}</span>")
            + set_traits(self.outcome, value=outcome_text(rec, self.previews))
            + set_traits(self.tb_button.layout, display="" if failed else "none")
            + set_traits(self.progress_line.layout, display="" if _has_bar(rec) else "none")
        )

    def _title_html(self, rec: JobRecord | None, now: float = 0.0) -> str:
        if rec is None:
            return f"<b>{html.escape(self.job.name)}</b> <i>(no longer in the store)</i>"
        key = html.escape(rec.key if rec.key and rec.key != rec.name else "")
        return (
            f"<b>{html.escape(rec.name)}</b> <span class='nbjobs-muted nbjobs-code'>{key}</span> "
            f"{render.badge(rec.status)} "
            f"<span class='nbjobs-muted'>{html.escape(render.meta_line(rec, now))}</span>"
        )

    def _toggle_traceback(self, _button: Any = None) -> None:
        if self.tb.layout.display == "none":
            text = _guard(self.job.traceback) or "(no traceback stored)"
            self.tb.value = f"<div class='nbjobs-pre'>{html.escape(text)}</div>"
            self.tb.layout.display = ""
            self.tb_button.icon = "chevron-up"
        else:
            self.tb.layout.display = "none"
            self.tb_button.icon = "chevron-down"

    def show(self) -> None:
        """Register in this cell (closing views of an earlier run of it) and start polling."""
        REGISTRY.add(self, *cell_context())
        self.tick()
        self.poller.start()

    def _stopped(self, reason: str) -> None:
        if reason in ("idle", "error"):
            note = " <i class='nbjobs-muted'>(paused: evaluate the job again to refresh)</i>"
            _quietly(lambda: set_traits(self.title, value=self.title.value + note))

    def close(self) -> None:
        self.poller.stop()
        self.widget.close()


def _has_bar(rec: JobRecord) -> bool:
    """A bar is worth showing while a job is under way or when it reported progress."""
    return rec.progress is not None or rec.status in (states.RUNNING, states.PENDING)


def job_bundle(job: Job, include: Any = None, exclude: Any = None) -> dict[str, Any] | None:
    """The display data of a `Job` in a kernel: its live widget, with the text repr as
    fallback; None outside a kernel (the plain reprs are used)."""
    if (exclude and WIDGET_MIME in exclude) or (include and WIDGET_MIME not in include):
        return None
    if not in_kernel():
        return None
    view = JobView(job)
    view.show()
    bundle: dict[str, Any] = view.widget._repr_mimebundle_()
    bundle["text/plain"] = repr(job)
    return bundle


def _guard(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        return f"({type(exc).__name__}: {exc})"


# ------------------------------------------------------------------------------ the panel
_COLUMNS = (
    ("nbjobs-name", "job"),
    ("nbjobs-status", "status"),
)
_COLUMNS_RIGHT = (
    ("nbjobs-msg", "progress"),
    ("nbjobs-att", "tries"),
    ("nbjobs-start", "started"),
    ("nbjobs-el", "elapsed"),
    ("nbjobs-out", "result / error"),
)


def _cells(spec: Iterable[tuple[str, str]], th: bool = False) -> str:
    cls = " nbjobs-th" if th else ""
    spans = "".join(f"<span class='nbjobs-c {c}{cls}'>{text}</span>" for c, text in spec)
    return f"<div class='nbjobs-line'>{spans}</div>"


def row_html(rec: JobRecord, now: float, previews: Previews) -> tuple[str, str]:
    """The two HTML cells of a table row: (name and status, progress text to outcome)."""
    key = html.escape(rec.key or rec.id)
    name = f"<b title='{key}'>{html.escape(rec.name)}</b>"
    left = _cells((("nbjobs-name", name), ("nbjobs-status", render.badge(rec.status))))
    text = html.escape(render.progress_text(rec.progress_info(), rec.status))
    right = _cells(
        (
            ("nbjobs-msg nbjobs-muted", text),
            ("nbjobs-att", str(rec.attempts)),
            ("nbjobs-start nbjobs-muted", render.clock_time(rec.started_at, now)),
            ("nbjobs-el", render.duration(render.elapsed(rec, now))),
            ("nbjobs-out", outcome_text(rec, previews)),
        )
    )
    return left, right


class _Row:
    """One table row (reused across pages) and its details box, built on first open."""

    def __init__(self, panel: Panel) -> None:
        self.panel = panel
        self.job_id: str | None = None
        self.toggle = W.Button(icon="chevron-right", tooltip="details")
        self.toggle.add_class("nbjobs-toggle")
        self.toggle.on_click(lambda _b: panel._toggle(self))
        self.left = W.HTML(layout=W.Layout(width="265px", flex="0 0 auto"))
        self.bar = W.FloatProgress(
            value=0.0, min=0.0, max=1.0, layout=W.Layout(width="110px", margin="0 10px 0 0")
        )
        self.right = W.HTML(layout=W.Layout(flex="1 1 0%", min_width="0"))
        line = W.HBox([self.toggle, self.left, self.bar, self.right])
        line.add_class("nbjobs-row")
        self.details: _Details | None = None
        self.holder = W.VBox()
        self.box = W.VBox([line, self.holder], layout=W.Layout(display="none"))

    def show(self, rec: JobRecord | None, now: float, is_open: bool) -> int:
        """Show `rec` (None: hide the row); returns the number of traits set."""
        if rec is None:
            self.job_id = None
            return set_traits(self.box.layout, display="none")
        self.job_id = rec.id
        left, right = row_html(rec, now, self.panel.previews)
        n = set_traits(self.box.layout, display="")
        n += set_traits(self.left, value=left) + set_traits(self.right, value=right)
        n += set_traits(self.bar, value=render.fraction(rec), bar_style=bar_style(rec.status))
        n += set_traits(self.toggle, icon="chevron-down" if is_open else "chevron-right")
        if is_open and self.details is None:
            self.details = _Details(self.panel, self)
        if self.details is not None:
            n += set_traits(self.holder.layout, display="" if is_open else "none")
            if is_open:
                if self.holder.children != (self.details.box,):
                    self.holder.children = (self.details.box,)
                n += self.details.show(rec)
        return n


class _Details:
    """Arguments, traceback, log tail, attempt history and the action buttons of one job."""

    def __init__(self, panel: Panel, row: _Row) -> None:
        self.panel, self.row = panel, row
        self.info = W.HTML()
        self.note = W.HTML()
        self.buttons = {
            name: W.Button(description=label, icon=icon, button_style=style)
            for name, label, icon, style in (
                ("cancel", "Cancel", "stop", "warning"),
                ("retry", "Retry", "redo", "info"),
                ("delete", "Delete", "trash", ""),
                ("confirm", "Delete for good", "trash", "danger"),
                ("keep", "Keep it", "", ""),
            )
        }
        for name, button in self.buttons.items():
            button.on_click(lambda _b, name=name: panel._act(name, self.row))
        self.confirming = False
        self._shown: tuple[Any, ...] = ()
        self.box = W.VBox([W.HBox([*self.buttons.values(), self.note]), self.info])
        self.box.add_class("nbjobs-details")

    def show(self, rec: JobRecord) -> int:
        if self._shown[:1] != (rec.id,):  # the row now shows another job
            self.confirming = False
            self.note.value = ""
        status = rec.status
        retry = self.panel.retry_fn() is not None and status in states.RERUN_ON_RESUBMIT
        n = self._button("cancel", status in states.ACTIVE) + self._button("retry", retry)
        deletable = status not in (states.RUNNING, states.RETRYING)
        n += self._button("delete", deletable and not self.confirming)
        n += self._button("confirm", deletable and self.confirming)
        n += self._button("keep", deletable and self.confirming)
        shown = (rec.id, rec.status, rec.updated_at, rec.runs)
        if shown != self._shown:  # payload and traceback are read only when the job changed
            self._shown = shown
            n += set_traits(self.info, value=details_html(self.panel.store, rec))
        return n

    def _button(self, name: str, visible: bool) -> int:
        return set_traits(self.buttons[name].layout, display="" if visible else "none")


class Panel:
    """A live table of a store's jobs: counts, filters, pages, details and actions.

    `nbjobs.panel()` makes one for the default store. `refresh()` does one update (two
    reads: the counts and one page of records) and may be called outside a kernel.

    >>> panel = Panel(nbjobs.Store("/tmp/jobs"), page_size=20)   # doctest: +SKIP
    >>> panel.refresh(); panel.records_read                      # doctest: +SKIP
    20
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        page_size: int = 20,
        interval: float = 0.5,
        idle_timeout: float = 900.0,
        clock: Clock = SYSTEM,
    ) -> None:
        from . import defaults

        self._is_default = store is None
        self.store = defaults.default_store() if store is None else store
        self.page_size = validate.positive_int(page_size, "page_size")
        self.offset = 0
        self.previews = Previews(self.store)
        self._clock = clock
        self._lock = threading.RLock()
        self._open: set[str] = set()
        self._fingerprint: tuple[Any, ...] = ()
        self._workers: tuple[float, str] = (float("-inf"), "-")
        self.records_read = 0
        self.has_next = False
        self.updates = 0
        self._build()
        self.poller = Poller(
            self.tick,
            interval=interval,
            idle_timeout=idle_timeout,
            clock=clock,
            on_stop=self._stopped,
            name="nbjobs-panel",
        )

    # ---- layout
    def _build(self) -> None:
        self.header = W.HTML()
        self.live = W.HTML(layout=W.Layout(margin="0 0 0 auto"))
        self.status = W.Dropdown(
            options=[("all statuses", "")] + [(s, s) for s in states.STATES],
            layout=W.Layout(width="150px"),
        )
        self.search = W.Text(placeholder="name or key  ·  tag:NAME", layout=W.Layout(width="230px"))
        self.status.observe(self._filters_changed, names="value")
        self.search.observe(self._filters_changed, names="value")
        self.refresh_button = self._tool("", "refresh", "refresh now", self.wake)
        self.resume_button = self._tool("resume", "play", "resume interrupted jobs", self._resume)
        self.prev = self._tool("", "chevron-left", "newer", lambda: self._page(-1))
        self.next = self._tool("", "chevron-right", "older", lambda: self._page(1))
        self.page_label = W.HTML()
        self.close_button = self._tool("", "times", "close the panel (stops polling)", self.close)
        self.rows: list[_Row] = []  # created as pages need them: fewer widgets to open
        self.table = W.VBox()
        self.empty = W.HTML()
        self.widget = W.VBox(
            [
                W.HTML(CSS, layout=W.Layout(display="none")),
                W.HBox([self.header, self.live, self.close_button]),
                W.HBox(
                    [
                        self.status,
                        self.search,
                        self.refresh_button,
                        self.resume_button,
                        W.HBox(
                            [self.prev, self.page_label, self.next],
                            layout=W.Layout(margin="0 0 0 auto"),
                        ),
                    ]
                ),
                W.HTML(
                    _cells((*_COLUMNS, ("nbjobs-prog", "progress"), *_COLUMNS_RIGHT[1:]), True),
                    layout=W.Layout(margin="2px 2px 2px 34px"),
                ),
                self.table,
                self.empty,
            ]
        )
        self.widget.add_class("nbjobs-root")
        self.widget.add_class("nbjobs-panel")

    def _tool(self, label: str, icon: str, tip: str, action: Callable[[], object]) -> W.Button:
        button = W.Button(description=label, icon=icon, tooltip=tip)
        button.layout.width = "auto" if label else "34px"
        button.on_click(lambda _b: self._guarded(action))
        return button

    # ---- one update
    def refresh(self) -> bool:
        """Read the counts and one page of records and show them; True if the data changed."""
        with self._lock:
            counts = self.store.stats()  # after this process's queued writes: its new jobs show
            recs = self._read_page()
            fingerprint = (
                tuple(counts.items()),
                tuple((r.id, r.status, r.updated_at, str(r.progress)) for r in recs),
                self.offset,
                self.status.value,
                self.search.value,
                frozenset(self._open),
            )
            changed = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
            self.updates += self._show(counts, recs)
            return changed

    def tick(self) -> Tick:
        """One poll: "done" once the widget was closed."""
        if self.widget.comm is None:
            return "done"
        return "changed" if self.refresh() else "same"

    def _read_page(self) -> list[JobRecord]:
        text = self.search.value.strip()
        tag = text[4:].strip() or None if text.startswith("tag:") else None
        search = None if text.startswith("tag:") else (text or None)
        recs = self.store.records(
            status=self.status.value or None,
            tag=tag,
            search=search,
            limit=self.page_size + 1,
            offset=self.offset,
        )
        self.records_read = len(recs)
        self.has_next = len(recs) > self.page_size
        return recs[: self.page_size]

    def _show(self, counts: dict[str, int], recs: list[JobRecord]) -> int:
        now = self._clock.now()
        n = set_traits(self.header, value=self._header_html(counts))
        n += set_traits(self.page_label, value=self._page_text(counts, len(recs)))
        n += set_traits(self.prev, disabled=self.offset == 0)
        n += set_traits(self.next, disabled=not self.has_next)
        interrupted = counts.get(states.INTERRUPTED, 0)
        n += set_traits(self.resume_button, description=f"resume {interrupted} interrupted")
        n += set_traits(self.resume_button.layout, display="" if interrupted else "none")
        if len(recs) > len(self.rows):
            self.rows += [_Row(self) for _ in range(len(recs) - len(self.rows))]
            self.table.children = tuple(row.box for row in self.rows)
            n += 1
        for i, row in enumerate(self.rows):
            rec = recs[i] if i < len(recs) else None
            n += row.show(rec, now, rec is not None and rec.id in self._open)
        empty = "" if recs else "<i class='nbjobs-muted'>no jobs match</i>"
        if not recs and not sum(counts.values()):
            empty = "<i class='nbjobs-muted'>no jobs yet: nbjobs.submit(fn, ...) adds one</i>"
        return n + set_traits(self.empty, value=empty)

    def _header_html(self, counts: dict[str, int]) -> str:
        total = sum(counts.values())
        parts = [f"{render.badge(s)}&nbsp;{n:,}" for s in states.STATES if (n := counts.get(s, 0))]
        queue = counts.get(states.PENDING, 0) + counts.get(states.RETRYING, 0)
        path = html.escape(str(self.store.path))
        return (
            f"<b>nbjobs</b> <span class='nbjobs-muted' title='{path}'>{total:,} jobs</span> "
            f"&nbsp; {' &nbsp;'.join(parts)} &nbsp;<span class='nbjobs-muted'>queue</span> "
            f"{queue:,} &nbsp;<span class='nbjobs-muted'>workers</span> {self._workers_text()}"
        )

    def _page_text(self, counts: dict[str, int], shown: int) -> str:
        if not shown:
            return ""
        span = f"{self.offset + 1:,}-{self.offset + shown:,}"
        if self.search.value.strip():
            return f"<span class='nbjobs-muted'>{span}</span>"
        status = self.status.value
        total = counts.get(status, 0) if status else sum(counts.values())
        return f"<span class='nbjobs-muted'>{span} of {total:,}</span>"

    def _workers_text(self) -> str:
        """How many detached workers of the store are alive, read at most every 5 s."""
        checked, text = self._workers
        now = self._clock.monotonic()
        if now - checked < 5:
            return text
        fn = self._api_fn("workers")
        if fn is not None:
            found = _guard(fn)
            text = str(len(found)) if hasattr(found, "__len__") else html.escape(str(found))
        self._workers = (now, text)
        return text

    def _api_fn(self, name: str) -> Callable[..., Any] | None:
        """The store's method `name`, or nbjobs' module function for the default store."""
        fn = getattr(self.store, name, None)
        if fn is None and self._is_default:
            import nbjobs

            fn = getattr(nbjobs, name, None)
        return fn if callable(fn) else None

    def retry_fn(self) -> Callable[..., Any] | None:
        return self._api_fn("retry")

    # ---- interaction (button handlers run in the kernel's main thread)
    def wake(self) -> None:
        """Poll now, restarting a poller that stopped after the idle timeout."""
        set_traits(
            self.live, value="<span class='nbjobs-ok' title='polling the store'>● live</span>"
        )
        if self.widget.comm is not None or not in_kernel():
            self.poller.start()

    def _guarded(self, action: Callable[[], object]) -> None:
        try:
            action()
        finally:
            if action is not self.close:
                self.wake()

    def _filters_changed(self, _change: Any = None) -> None:
        self.offset = 0
        self.wake()

    def _page(self, step: int) -> None:
        self.offset = max(0, self.offset + step * self.page_size)

    def _toggle(self, row: _Row) -> None:
        if row.job_id is not None:
            self._open ^= {row.job_id}
        if row.details is not None:
            row.details.confirming = False
        self.wake()

    def _resume(self) -> None:
        self.store.resume()

    def _act(self, action: str, row: _Row) -> None:
        """A details button: cancel, retry, delete (asks first), through the public API."""
        job_id, details = row.job_id, row.details
        if job_id is None or details is None:
            return
        with self._lock:
            details.confirming = action == "delete"
            try:
                note = self._do(action, job_id)
            except Exception as exc:
                note = f"<span class='nbjobs-err'>{html.escape(f'{action} failed: {exc}')}</span>"
            details.note.value = note
            if action != "confirm":
                details.show(self.store.get(job_id).record())
        self.wake()

    def _do(self, action: str, job_id: str) -> str:
        if action == "cancel":
            done = self.store.get(job_id).cancel()
            return "cancelled" if done else "too late to cancel"
        if action == "retry":
            fn = self.retry_fn()
            if fn is not None:
                fn(job_id)
            return "submitted again"
        if action == "confirm":
            self._open.discard(job_id)
            return "deleted" if self.store.forget(job_id) else "already gone"
        if action == "delete":
            return "delete this job, its result and its payload?"
        return ""

    def _stopped(self, reason: str) -> None:
        text = {
            "idle": "paused: nothing changed for a while · ↻ resumes",
            "error": "paused: the store could not be read · ↻ retries",
        }.get(reason, "stopped")
        _quietly(lambda: set_traits(self.live, value=f"<span class='nbjobs-muted'>{text}</span>"))

    # ---- display
    def show(self) -> None:
        """Register in this cell (closing panels of an earlier run of it), draw, poll."""
        REGISTRY.add(self, *cell_context())
        self.refresh()
        self.wake()

    def close(self) -> None:
        """Stop polling and close the widgets (the output disappears)."""
        self.poller.stop()
        _close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        self.show()
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"nbjobs panel of {self.store.path} ({RESTART_HINT})"
        return bundle

    def __repr__(self) -> str:
        return f"<nbjobs panel of {self.store.path}>"


def _close_tree(widget: W.Widget) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


# ------------------------------------------------------------------------------ details
def details_html(store: Store, rec: JobRecord) -> str:
    """Facts, arguments, traceback, log tail and attempt history of one job (HTML)."""
    job = store.get(rec.id)
    parts = [_facts(rec), _section("arguments", _guard(lambda: arguments_text(store, rec)))]
    if rec.status == states.FAILED:
        parts.append(_section("traceback", _guard(job.traceback) or "(none stored)"))
    logs = getattr(job, "logs", None)
    if callable(logs):
        parts.append(_section("log tail", _tail(_guard(logs))))
    parts.append(_history(rec, job))
    return "".join(parts)


def _section(title: str, text: str) -> str:
    return (
        f"<div class='nbjobs-th' style='margin-top:6px'>{title}</div>"
        f"<div class='nbjobs-pre'>{html.escape(str(text))}</div>"
    )


def _tail(text: Any, lines: int = 40) -> str:
    if isinstance(text, list | tuple):
        text = "\n".join(map(str, text))
    kept = str(text or "(no output captured)").splitlines()[-lines:]
    return "\n".join(kept)


def _facts(rec: JobRecord) -> str:
    now = 0.0
    rows = [
        ("id", rec.id),
        ("key", rec.key or ""),
        ("tags", ", ".join(rec.tags)),
        ("executor", rec.executor),
        ("created", render.clock_time(rec.created_at, now)),
        ("finished", render.clock_time(rec.finished_at, now)),
        ("resumable", "yes" if rec.resumable else f"no: {rec.not_resumable_reason or ''}"),
    ]
    cells = "".join(
        f"<tr><td class='nbjobs-muted'>{k}</td><td class='nbjobs-code'>{html.escape(v)}</td></tr>"
        for k, v in rows
        if v
    )
    return f"<table>{cells}</table>"


def arguments_text(store: Store, rec: JobRecord) -> str:
    """`fn(arg, ..., key=value)` with abbreviated reprs, read from the stored payload."""
    if rec.fn_digest is None:
        return "(not stored: " + (rec.not_resumable_reason or "no payload") + ")"
    payload = store.storage.blob(f"p:{rec.id}")
    fn_blob = store.storage.blob(f"f:{rec.fn_digest}")
    if payload is None or fn_blob is None:
        return "(no longer stored)"
    fn, args, kwargs = codec.load_payload(payload, fn_blob)
    shown = [render.short_repr(a, 60) for a in args]
    shown += [f"{k}={render.short_repr(v, 60)}" for k, v in kwargs.items()]
    name = getattr(fn, "__qualname__", None) or rec.name
    return f"{name}({', '.join(shown)})"


def _history(rec: JobRecord, job: Job) -> str:
    """One line per attempt (`job.attempt_history()`), else per run, the current one last."""
    history = getattr(job, "attempt_history", None)
    attempts = _guard(history) if callable(history) else None
    lines = []
    if isinstance(attempts, list) and attempts:
        for a in attempts:
            status = states.SUCCEEDED if a.get("ok") else states.FAILED
            if a.get("finished_at") is None:
                status = rec.status
            lines.append(_history_line(f"attempt {a.get('number', '?')}", status, a))
    else:
        current = {"status": rec.status, "started_at": rec.started_at,
                   "finished_at": rec.finished_at,
                   "error": rec.error.to_dict() if rec.error else None}  # fmt: skip
        for run in [*rec.history, {"run": rec.runs, **current}]:
            lines.append(_history_line(f"run {run.get('run', '?')}", str(run["status"]), run))
    title = "<div class='nbjobs-th' style='margin-top:6px'>history</div>"
    return f"{title}<table>{''.join(lines)}</table>"


def _history_line(label: str, status: str, entry: dict[str, Any]) -> str:
    took = None
    if entry.get("started_at") and entry.get("finished_at"):
        took = entry["finished_at"] - entry["started_at"]
    err = entry.get("error") or {}
    error = f"{err.get('type')}: {err.get('message')}" if err else ""
    return (
        f"<tr><td>{label}</td><td>{render.badge(status)}</td>"
        f"<td class='nbjobs-muted'>{render.clock_time(entry.get('started_at'), 0.0)}</td>"
        f"<td>{render.duration(took)}</td>"
        f"<td class='nbjobs-err'>{html.escape(error[:200])}</td></tr>"
    )


def panel(store: Store | None = None, *, page_size: int = 20) -> Panel:
    """A live panel of the store's jobs (the default store unless given); see `Panel`."""
    return Panel(store, page_size=page_size)
