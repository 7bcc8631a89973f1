"""`nbjobs.panel()`: a live table of a store's jobs with counts, filters, pages and actions."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nbjobs import states, validate
from nbjobs.clock import SYSTEM, Clock
from nbjobs.records import Group, JobRecord
from nbjobs.store.group_table import KEYED
from nbjobs.store.job_pages import ORDERS
from nbjobs.widgets import ui
from nbjobs.widgets.group_rows import GROUP_BY, GroupStrip
from nbjobs.widgets.markup import COLUMNS, COLUMNS_RIGHT, Previews, cells, guard
from nbjobs.widgets.polling import Poller, Redraws, Tick, quietly
from nbjobs.widgets.registry import REGISTRY
from nbjobs.widgets.rows import Row
from nbjobs.widgets.strip import ScheduleStrip, Shown

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoreSource

RESTART_HINT = "after a kernel restart, run nbjobs.panel() again to re-display it from the store"


class Panel:
    """A live table of a store's jobs: counts, filters, pages, details and actions.

    `nbjobs.panel()` makes one for the default store. `refresh()` does one update (three
    reads: the counts, one page of records and the schedules) and may be called outside a
    kernel. Its poller (`tick()`) reads only the store's version while nothing changes.

    >>> panel = Panel(nbjobs.Store("/tmp/jobs"), page_size=20)   # doctest: +SKIP
    >>> panel.refresh(); panel.records_read                      # doctest: +SKIP
    20
    """

    def __init__(
        self,
        store: StoreSource,
        *,
        page_size: int = 20,
        interval: float = 0.5,
        idle_timeout: float = 900.0,
        clock: Clock = SYSTEM,
        status: str | None = None,
        tag: str | None = None,
        name: str | None = None,
        group: str | Group | None = None,
        group_by: str | None = "map",
        sort: str = "active",
    ) -> None:
        self.presets = presets(status, tag, name, group, sort)
        self.group_by = validate.choice(group_by, "group_by", GROUP_BY)
        self.store = store
        self.page_size = validate.positive_int(page_size, "page_size")
        self.offset = 0
        self.previews = Previews(self.store)
        self._clock = clock
        self._lock = threading.RLock()
        self._open: set[str] = set()
        self._fingerprint: tuple[Any, ...] = ()
        self._workers: tuple[float, str] = (float("-inf"), "-")
        self.records_read = 0
        self._group_counts: dict[str, int] = {}
        self.has_next = False
        self.updates = 0
        self.refreshes = 0
        self._redraws = Redraws(clock=clock)
        self._timeless = False  # True: nothing shown moves with the clock (see refresh)
        self._build()
        self.poller = Poller(
            self.tick,
            interval=interval,
            slow_interval=max(interval, 1.0),  # quiet polls are cheap: a change shows in 1 s
            idle_timeout=idle_timeout,
            clock=clock,
            on_stop=self._stopped,
            name="nbjobs-panel",
        )

    # ---- layout
    def _build(self) -> None:
        status, tag, self.name, self.group, sort = self.presets
        self.header = ui.HTML()
        self.live = ui.HTML(layout=ui.Layout(margin="0 0 0 auto"))
        self.status = ui.Dropdown(
            options=[("all statuses", "")] + [(s, s) for s in states.STATES],
            value=status or "",
            layout=ui.Layout(width="150px"),
        )
        self.search = ui.Text(
            value=f"tag:{tag}" if tag else "",
            placeholder="name or key  ·  tag:NAME",
            layout=ui.Layout(width="230px"),
        )
        self.sort = ui.Dropdown(
            options=[(f"{o} first" if o == "active" else o, o) for o in ORDERS],
            value=sort,
            tooltip="order of the jobs",
            layout=ui.Layout(width="120px"),
        )
        self.pills = {s: self._pill(s) for s in states.STATES}
        self.chip = ui.Button(icon="times", tooltip="show every job")
        self.chip.on_click(lambda _b: self._guarded(self._clear_chip))
        for control in (self.status, self.search, self.sort):
            control.observe(self._filters_changed, names="value")
        self.groups = GroupStrip(self.store, self.group_by, 8, self.open_group)
        self.refresh_button = self._tool("", "refresh", "refresh now", self.wake)
        self.resume_button = self._tool("resume", "play", "resume interrupted jobs", self._resume)
        self.prev = self._tool("", "chevron-left", "newer", lambda: self._page(-1))
        self.next = self._tool("", "chevron-right", "older", lambda: self._page(1))
        self.page_label = ui.HTML()
        self.close_button = self._tool("", "times", "close the panel (stops polling)", self.close)
        self.rows: list[Row] = []  # created as pages need them: fewer widgets to open
        self.table = ui.VBox()
        self.empty = ui.HTML()
        self.schedules = ScheduleStrip(self.store, self.wake)
        self.widget = ui.root(
            "nbjobs-panel",
            [
                ui.HBox([self.header, self.live, self.close_button]),
                ui.HBox(list(self.pills.values())),
                self.schedules.box,
                self.groups.box,
                ui.HBox(
                    [
                        self.status,
                        self.search,
                        self.sort,
                        self.chip,
                        self.refresh_button,
                        self.resume_button,
                        ui.HBox(
                            [self.prev, self.page_label, self.next],
                            layout=ui.Layout(margin="0 0 0 auto"),
                        ),
                    ]
                ),
                ui.HTML(
                    cells((*COLUMNS, ("nbjobs-prog", "progress"), *COLUMNS_RIGHT[1:]), True),
                    layout=ui.Layout(margin="2px 2px 2px 34px"),
                ),
                self.table,
                self.empty,
            ],
        )

    def _pill(self, status: str) -> ui.Button:
        """A count of one status that filters the table to it (or back, clicked again)."""
        pill = ui.Button(tooltip=f"show only {status} jobs", layout=ui.Layout(display="none"))
        pill.add_class("nbjobs-pill")
        pill.add_class(f"nbjobs-pill-{status}")
        pill.on_click(lambda _b: self._guarded(lambda: self.filter_status(status)))
        return pill

    def _tool(self, label: str, icon: str, tip: str, action: Callable[[], object]) -> ui.Button:
        button = ui.Button(description=label, icon=icon, tooltip=tip)
        button.layout.width = "auto" if label else "34px"
        button.on_click(lambda _b: self._guarded(action))
        return button

    # ---- one update
    def refresh(self) -> bool:
        """Read the counts, one page of records and the schedules and show them; True if the
        data changed (the time to a schedule's next firing does not count)."""
        with self._lock:
            counts = self.store.stats()  # after this process's queued writes: its new jobs show
            recs = self._read_page()
            schedules = self.schedules.read(counts)
            groups = self.groups.read(recs, self._clock.now())
            self._group_counts = self._counts_of(groups)
            fingerprint = (
                tuple(counts.items()),
                tuple((r.id, r.status, r.updated_at, str(r.progress)) for r in recs),
                schedules,
                tuple((g.id, tuple(g.counts.items())) for g in groups),
                self._view(),
            )
            changed = fingerprint != self._fingerprint
            self._fingerprint = fingerprint
            # Elapsed times, countdowns and ETAs are of active jobs and of schedules only.
            self._timeless = not schedules and not any(counts.get(s) for s in states.ACTIVE)
            self.refreshes += 1
            self.updates += self._show(counts, recs, schedules)
            self.updates += self.groups.show(groups, self.group[0] if self.group else None)
            return changed

    def tick(self) -> Tick:
        """One poll: "done" once the widget was closed. While neither the store (its
        version) nor the view changed and nothing shown moves with the clock, one read."""
        if self.widget.comm is None:
            return "done"
        # The version is this thread's connection's count: read before the refresh, so a
        # write committed during it is seen by the next poll.
        seen = (threading.get_ident(), self.store.storage.version(), self._view())
        if not self._redraws.needed(seen):
            return "same"
        changed = self.refresh()
        self._redraws.done(seen, timeless=self._timeless)
        return "changed" if changed else "same"

    def _view(self) -> tuple[Any, ...]:
        """What the panel is set to show: page, filters, order, open details."""
        return (
            self.offset,
            self.status.value,
            self.search.value,
            self.sort.value,
            self.name,
            self.group,
            frozenset(self._open),
        )

    def _read_page(self) -> list[JobRecord]:
        text = self.search.value.strip()
        tag = text[4:].strip() or None if text.startswith("tag:") else None
        search = None if text.startswith("tag:") else (text or None)
        recs = self.store.records(
            status=self.status.value or None,
            name=self.name,
            tag=tag,
            search=search,
            limit=self.page_size + 1,
            offset=self.offset,
            group=self.group[0] if self.group else None,
            order=self.sort.value,
        )
        self.records_read = len(recs)
        self.has_next = len(recs) > self.page_size
        return recs[: self.page_size]

    def _show(self, counts: dict[str, int], recs: list[JobRecord], schedules: list[Shown]) -> int:
        now = self._clock.now()
        n = ui.set_traits(self.header, value=self._header_html(counts))
        n += self._show_filters(counts)
        n += self.schedules.show(schedules, now)
        n += ui.set_traits(self.page_label, value=self._page_text(counts, len(recs)))
        n += ui.set_traits(self.prev, disabled=self.offset == 0)
        n += ui.set_traits(self.next, disabled=not self.has_next)
        interrupted = counts.get(states.INTERRUPTED, 0)
        n += ui.set_traits(self.resume_button, description=f"resume {interrupted} interrupted")
        n += ui.show_if(self.resume_button, interrupted > 0)
        if len(recs) > len(self.rows):
            self.rows += [Row(self) for _ in range(len(recs) - len(self.rows))]
            self.table.children = tuple(row.box for row in self.rows)
            n += 1
        for i, row in enumerate(self.rows):
            rec = recs[i] if i < len(recs) else None
            n += row.show(rec, now, rec is not None and rec.id in self._open)
        empty = "" if recs else "<i class='nbjobs-muted'>no jobs match</i>"
        if not recs and not sum(counts.values()):
            empty = "<i class='nbjobs-muted'>no jobs yet: nbjobs.submit(fn, ...) adds one</i>"
        return n + ui.set_traits(self.empty, value=empty)

    def _header_html(self, counts: dict[str, int]) -> str:
        total = sum(counts.values())
        queue = counts.get(states.PENDING, 0) + counts.get(states.RETRYING, 0)
        path = html.escape(str(self.store.path))
        return (
            f"<b>nbjobs</b> <span class='nbjobs-muted' title='{path}'>{total:,} jobs</span> "
            f"&nbsp;<span class='nbjobs-muted'>queue</span> "
            f"{queue:,} &nbsp;<span class='nbjobs-muted'>workers</span> {self._workers_text()}"
        )

    def _show_filters(self, counts: dict[str, int]) -> int:
        """The status pills (the one filtered on pressed) and the chip of a name or group."""
        n = 0
        for status, pill in self.pills.items():
            count = counts.get(status, 0)
            n += ui.set_traits(pill, description=f"{status} {count:,}")
            n += ui.set_traits(pill, button_style="info" if self.status.value == status else "")
            n += ui.show_if(pill, count > 0 or self.status.value == status)
        chip = f"group: {self.group[1]}" if self.group else f"name: {self.name}"
        n += ui.set_traits(self.chip, description=chip)
        return n + ui.show_if(self.chip, bool(self.group or self.name))

    def _page_text(self, counts: dict[str, int], shown: int) -> str:
        if not shown:
            return ""
        span = f"{self.offset + 1:,}-{self.offset + shown:,}"
        if self.search.value.strip() or self.name:
            return f"<span class='nbjobs-muted'>{span}</span>"
        if self.group:
            counts = self._group_counts
        status = self.status.value
        total = counts.get(status, 0) if status else sum(counts.values())
        return f"<span class='nbjobs-muted'>{span} of {total:,}</span>"

    def _counts_of(self, shown: list[Group]) -> dict[str, int]:
        """The counts of the group the table is filtered to (read unless shown)."""
        if not self.group:
            return {}
        gid = self.group[0]
        found = [g for g in shown if g.id == gid] or self.store.groups(ids=[gid])
        return found[0].counts if found else {}

    def _workers_text(self) -> str:
        """How many detached workers of the store are alive, read at most every 5 s."""
        checked, text = self._workers
        now = self._clock.monotonic()
        if now - checked < 5:
            return text
        found = guard(self.store.workers)
        text = html.escape(found) if isinstance(found, str) else str(len(found))
        self._workers = (now, text)
        return text

    # ---- interaction (button handlers run in the kernel's main thread)
    def wake(self) -> None:
        """Poll now, restarting a poller that stopped after the idle timeout."""
        ui.set_traits(
            self.live, value="<span class='nbjobs-ok' title='polling the store'>● live</span>"
        )
        self._redraws.forget()
        if self.widget.comm is not None or not ui.in_kernel():
            self.poller.start()

    def _guarded(self, action: Callable[[], object]) -> None:
        try:
            action()
        finally:
            if action != self.close:  # each `self.close` is a new bound method: not `is`
                self.wake()

    def _filters_changed(self, _change: Any = None) -> None:
        self.offset = 0
        self.wake()

    def filter_status(self, status: str) -> None:
        """A pill's click: show only the jobs of `status`, or every status if it was so."""
        self.status.value = "" if self.status.value == status else status

    def open_group(self, group_id: str, name: str) -> None:
        """A group row's click: show only its jobs (clicked again: every job)."""
        field, _, value = group_id.partition(":")
        if field == "tag" and group_id.startswith("tag:"):
            text = f"tag:{value}"
            self.search.value = "" if self.search.value == text else text
            return
        if field == "name" and group_id.startswith("name:"):
            self.name = None if self.name == value else value
        else:
            self.group = None if self.group and self.group[0] == group_id else (group_id, name)
        self.offset = 0

    def _clear_chip(self) -> None:
        self.name, self.group, self.offset = None, None, 0

    def _page(self, step: int) -> None:
        self.offset = max(0, self.offset + step * self.page_size)

    def toggle(self, row: Row) -> None:
        """Open or close a row's details (its toggle button)."""
        if row.job_id is not None:
            self._open ^= {row.job_id}
        if row.details is not None:
            row.details.confirming = False
        self.wake()

    def _resume(self) -> None:
        self.store.resume()

    def act(self, action: str, row: Row) -> None:
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
            self.store.retry(job_id)
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
        quietly(lambda: ui.set_traits(self.live, value=f"<span class='nbjobs-muted'>{text}</span>"))

    # ---- display
    def show(self) -> None:
        """Register in this cell (closing panels of an earlier run of it), draw, poll.

        A closed panel (its button, or a re-run of its cell) is built again, filters reset.
        """
        if self.widget.comm is None:
            with self._lock:
                self.offset, self._open, self._fingerprint = 0, set(), ()
                self._build()  # the filters start from the presets again
        REGISTRY.add(self, *ui.cell_context())
        self.refresh()
        self.wake()

    def close(self) -> None:
        """Stop polling and close the widgets (the output disappears)."""
        self.poller.stop()
        ui.close_tree(self.widget)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        self.show()
        bundle: dict[str, Any] = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = f"nbjobs panel of {self.store.path} ({RESTART_HINT})"
        return bundle

    def __repr__(self) -> str:
        return f"<nbjobs panel of {self.store.path}>"


def panel(store: StoreSource, *, page_size: int = 20, **presets: Any) -> Panel:
    """A live panel of the store's jobs (`nbjobs.panel()` passes the default store)."""
    return Panel(store, page_size=page_size, **presets)


def presets(
    status: Any, tag: Any, name: Any, group: Any, sort: Any
) -> tuple[str | None, str | None, str | None, tuple[str, str] | None, str]:
    """The filters a panel opens with, checked: (status, tag, name, (group id, its name),
    order)."""
    validate.choice(status, "status", (None, *states.STATES))
    if tag is not None:
        validate.lookup(tag, "tag", "a tag or None")
    if name is not None:
        validate.lookup(name, "name", "a job name or None")
    chosen = None
    if isinstance(group, Group):
        chosen = (group.id, group.name)
    elif group is not None:
        gid = validate.lookup(group, "group", "a Group, a group id (Group.id) or None")
        chosen = (gid, gid[len(KEYED) :] if gid.startswith(KEYED) else gid)
    return status, tag, name, chosen, validate.choice(sort, "sort", ORDERS)
