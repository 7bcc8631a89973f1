"""Live views of jobs in Jupyter: the job widget and `nbjobs.panel()`.

Updates come from a daemon thread per view (asyncio tasks freeze while another cell runs),
at most a few times a second, and only the widget traits whose values changed are sent (the
IOPub rate limit drops floods). A view stops polling when it is closed, when its cell is
re-run (a registry keyed on the cell id), after a long quiet period (any click or re-display
wakes it) and at kernel shutdown.

    polling.py     Poller: when to poll, slow down and stop (no ipywidgets)
    registry.py    live views by notebook cell (no ipywidgets)
    markup.py      previews, error summaries, table cells (HTML, no ipywidgets)
    details.py     one job's details (HTML, no ipywidgets)
    ui.py          the only module that imports ipywidgets and IPython
    job_view.py    JobView, the widget of one job
    rows.py        the panel's table rows, details boxes and their buttons
    strip.py       the panel's schedules strip, each with a pause/resume button
    panel_view.py  Panel, `nbjobs.panel()`

The names below are imported from their modules on first use, so that the modules without
ipywidgets can be imported (and tested) without it.

>>> panel = nbjobs.widgets.Panel(nbjobs.Store("/tmp/jobs"))   # doctest: +SKIP
>>> panel.refresh()          # one read: the counts and one page of records  # doctest: +SKIP
True
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nbjobs.widgets.details import arguments_text, details_html
    from nbjobs.widgets.job_view import JobView, job_bundle
    from nbjobs.widgets.markup import Previews, bar_style, outcome_text, row_html
    from nbjobs.widgets.panel_view import RESTART_HINT, Panel, panel
    from nbjobs.widgets.polling import Poller, Tick
    from nbjobs.widgets.registry import REGISTRY, Registry
    from nbjobs.widgets.ui import CSS, WIDGET_MIME, cell_context, in_kernel, set_traits

__all__ = [
    "CSS",
    "REGISTRY",
    "RESTART_HINT",
    "WIDGET_MIME",
    "JobView",
    "Panel",
    "Poller",
    "Previews",
    "Registry",
    "Tick",
    "arguments_text",
    "bar_style",
    "cell_context",
    "details_html",
    "in_kernel",
    "job_bundle",
    "outcome_text",
    "panel",
    "row_html",
    "set_traits",
]
# Searched in this order: the modules without ipywidgets first.
_MODULES = ("polling", "registry", "markup", "details", "ui", "job_view", "panel_view")


if not TYPE_CHECKING:  # mypy sees the imports above, and flags names that are not there

    def __getattr__(name: str) -> Any:
        if name in __all__:
            for module in _MODULES:
                found = vars(importlib.import_module(f"{__name__}.{module}"))
                if name in found:
                    globals()[name] = found[name]
                    return found[name]
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
