"""The panel's group rows: one per map (or tag, or name) above the jobs, a click opens its jobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nbjobs.records import Group, JobRecord
from nbjobs.store import group_table
from nbjobs.store.writer import Sql
from nbjobs.widgets import ui
from nbjobs.widgets.group_markup import group_html

if TYPE_CHECKING:
    from nbjobs.widgets.sources import StoreSource

#: What a panel groups its jobs by (`nbjobs.panel(group_by=...)`); None: no group rows.
GROUP_BY = ("map", "tag", "name", None)
_NEWEST = 50  # groups read (newest first) to pick the rows from: active ones first


class GroupStrip:
    """Up to `rows` group rows, active groups first, then the newest. Reused across
    refreshes; a row's button filters the panel's table to that group's jobs.

    >>> strip = GroupStrip(store, "map", 5, open_group=print)   # doctest: +SKIP
    >>> strip.show(strip.read([], now=time.time()), chosen=None)  # doctest: +SKIP
    """

    def __init__(
        self,
        store: StoreSource,
        group_by: str | None,
        rows: int,
        open_group: Callable[[str, str], None],
    ) -> None:
        self.store = store
        self.group_by = group_by
        self.rows = rows
        self._open = open_group
        self.lines: list[GroupLine] = []
        self.list = ui.VBox()
        self.box = ui.VBox([self.list], layout=ui.Layout(display="none", margin="2px 0 4px 0"))

    def read(self, recs: list[JobRecord], now: float) -> list[Group]:
        """The groups to show: for maps, from their kept counts (two indexed reads); for
        tags and names, those of the jobs on the page (a read of each one's jobs)."""
        if self.group_by is None:
            return []
        if self.group_by == "map":
            # Read as the page is (the panel's stats() waited for this process's writes).
            found = self.store.storage.read(lambda sql: group_table.groups(sql, now, _NEWEST))
            found.sort(key=lambda g: not g.active)  # stable: newest first within each
            return found[: self.rows]
        field = self.group_by
        values: list[str] = []
        for rec in recs:
            for value in rec.tags if field == "tag" else (rec.name,):
                if value not in values:
                    values.append(value)
        values = values[: self.rows]

        def counted(sql: Sql) -> list[Group]:
            return [group_table.counted(sql, field, v, now) for v in values]

        groups: list[Group] = self.store.storage.read(counted)
        return groups

    def show(self, groups: list[Group], chosen: str | None) -> int:
        """Show these groups (`chosen`: the one the table is filtered to); traits set."""
        n = ui.show_if(self.box, bool(groups))
        if len(groups) > len(self.lines):
            self.lines += [GroupLine(self) for _ in range(len(groups) - len(self.lines))]
            self.list.children = tuple(line.box for line in self.lines)
            n += 1
        for i, line in enumerate(self.lines):
            group = groups[i] if i < len(groups) else None
            n += line.show(group, group is not None and group.id == chosen)
        return n

    def act(self, line: GroupLine) -> None:
        if line.group is not None:
            self._open(line.group.id, line.group.name)


class GroupLine:
    """One group row (reused for whichever group it shows) and its open button."""

    def __init__(self, strip: GroupStrip) -> None:
        self.group: Group | None = None
        self.button = ui.Button(icon="filter", tooltip="show this group's jobs")
        self.button.add_class("nbjobs-toggle")
        self.button.on_click(lambda _b: strip.act(self))
        self.text = ui.HTML(layout=ui.Layout(flex="1 1 0%", min_width="0"))
        self.box = ui.HBox([self.button, self.text], layout=ui.Layout(display="none"))
        self.box.add_class("nbjobs-group")

    def show(self, group: Group | None, chosen: bool) -> int:
        self.group = group
        if group is None:
            return ui.show_if(self.box, False)
        n = ui.show_if(self.box, True)
        n += ui.set_traits(self.text, value=group_html(group))
        return n + ui.set_traits(
            self.button,
            icon="times" if chosen else "filter",
            tooltip="show every job" if chosen else "show this group's jobs",
        )
