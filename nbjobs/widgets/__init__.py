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

This package imports none of its modules: import each from its own module (the ones without
ipywidgets import and test without it), and no module here imports another through the package.

>>> from nbjobs.widgets.panel_view import Panel                 # doctest: +SKIP
>>> panel = Panel(nbjobs.Store("/tmp/jobs"))                     # doctest: +SKIP
>>> panel.refresh()          # one read: the counts and one page of records  # doctest: +SKIP
True
"""
