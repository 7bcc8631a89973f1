"""How a group of jobs reads: a tqdm-like line, a stacked bar (HTML and text), a panel row.

No ipywidgets here: `nbjobs.watch` prints the same line in a terminal that the panel and
the cell's live bars show.
"""

from __future__ import annotations

from nbjobs import render, states
from nbjobs.records import Group

#: The parts of a stacked bar, left to right; the rest of the bar is what is pending.
PARTS = (
    (states.SUCCEEDED, (states.SUCCEEDED,)),
    (states.FAILED, (states.FAILED, states.CANCELLED, states.INTERRUPTED)),
    (states.RUNNING, (states.RUNNING, states.RETRYING)),
)


def clock(seconds: float | None) -> str:
    """tqdm's `mm:ss` (`h:mm:ss` past an hour; `?` when unknown).

    >>> clock(7), clock(3725), clock(None)
    ('00:07', '1:02:05', '?')
    """
    if seconds is None:
        return "?"
    m, s = divmod(int(max(0.0, seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def line(group: Group) -> str:
    """`16/70 [00:07<00:27, 2.2 jobs/s]`: done of all, elapsed<ETA, rate (as tqdm says it).

    >>> line(Group("g", "fit", 0.0, 70, {"succeeded": 16, "pending": 54}, None, 7.0))
    '16/70 [00:07<00:23, 2.29 jobs/s]'
    """
    rate = group.rate
    speed = "? jobs/s" if rate is None else f"{rate:.3g} jobs/s"
    remaining = "00:00" if not group.active else clock(group.eta)
    return f"{group.done:,}/{group.size:,} [{clock(group.elapsed)}<{remaining}, {speed}]"


def shares(group: Group) -> list[tuple[str, float]]:
    """(status, fraction of the group) of each part of the stacked bar."""
    size = group.size or 1
    return [
        (status, sum(group.counts.get(s, 0) for s in members) / size) for status, members in PARTS
    ]


def bar_html(group: Group, width: str = "180px") -> str:
    """The stacked bar: succeeded, failed (and cancelled, interrupted), running (and
    retrying), then the pending rest in the track's colour."""
    spans = "".join(
        f"<span class='nbjobs-seg' title='{status}' style='width:{share * 100:.2f}%;"
        f"background:{render.STATUS_COLORS[status]}'></span>"
        for status, share in shares(group)
        if share > 0
    )
    return f"<span class='nbjobs-stack' style='width:{width}'>{spans}</span>"


def bar_text(group: Group, width: int = 24) -> str:
    """The stacked bar as text: `#` succeeded, `x` failed, `>` running, `.` pending."""
    marks = dict(zip((p for p, _ in PARTS), "#x>", strict=True))
    out = ""
    for status, share in shares(group):
        out += marks[status] * round(share * width)
    return (out + "." * width)[:width]


def counts_html(group: Group) -> str:
    """Each status with jobs, as a pill and its count."""
    return " ".join(
        f"{render.badge(s)}&nbsp;{n:,}" for s in states.STATES if (n := group.counts.get(s, 0))
    )


def group_html(group: Group) -> str:
    """A group's row in the panel: name, size, counts per status, bar, progress and ETA."""
    import html  # here: `import nbjobs` (which imports this module) need not load it

    name = html.escape(group.name)
    return (
        f"<div class='nbjobs-line'><span class='nbjobs-c nbjobs-name' title='group "
        f"{html.escape(group.id)}'><b>{name}</b> <span class='nbjobs-muted'>"
        f"{group.size:,} jobs</span></span>{bar_html(group)}"
        f"<span class='nbjobs-c nbjobs-gline'>{group.fraction:.0%} · {html.escape(line(group))}"
        f"</span><span class='nbjobs-c nbjobs-out'>{counts_html(group)}</span></div>"
    )


def text_line(group: Group, name_width: int = 16) -> str:
    """A group's line in a terminal: `fit  |###x>....| 16/70 [00:07<00:27, 2.2 jobs/s]`."""
    failed = sum(group.counts.get(s, 0) for s in (states.FAILED, states.CANCELLED))
    note = f" {failed:,} failed" if failed else ""
    return f"{group.name[:name_width]:<{name_width}} |{bar_text(group)}| {line(group)}{note}"
