"""A shown panel's polls: one read of the store's version while nothing changes; a redraw
when the store, the view or the clock says so."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

import nbjobs
from nbjobs.clock import FakeClock
from nbjobs.widgets.panel_view import Panel

pytest.importorskip("ipywidgets")


def blocker(gate: threading.Event) -> str:
    gate.wait(30)
    return "released"


def test_a_poll_of_a_quiet_store_reads_its_version_only(store: nbjobs.Store) -> None:
    store.submit(sum, [1, 2]).wait(timeout=30)
    store.flush()  # every write committed: from here the store is quiet
    clock = FakeClock()
    panel = Panel(store, clock=clock)
    assert panel.tick() == "changed" and panel.refreshes == 1
    for _ in range(3):
        assert panel.tick() == "same"
    assert panel.refreshes == 1
    clock.advance(5)  # a worker that died writes nothing: the header counts it again
    assert panel.tick() == "same" and panel.refreshes == 2


def test_a_write_or_a_new_view_redraws_at_the_next_poll(store: nbjobs.Store) -> None:
    store.submit(sum, [1, 2]).wait(timeout=30)
    store.flush()
    panel = Panel(store, clock=FakeClock())
    panel.tick()
    store.submit(sum, [3, 4]).wait(timeout=30)
    store.flush()  # committed by this process's writer thread
    assert panel.tick() == "changed" and panel.refreshes == 2
    other = f"import nbjobs; nbjobs.Store({str(store.path)!r}).submit(max, [5, 6]).wait(30)"
    subprocess.run([sys.executable, "-c", other], check=True, timeout=60)
    assert panel.tick() == "changed" and panel.refreshes == 3
    assert "max" in "".join(row.left.value for row in panel.rows)
    panel.open_group("name:max", "max")  # a view changed without a click's wake-up
    assert panel.tick() == "changed" and panel.refreshes == 4
    assert [row.job_id is not None for row in panel.rows] == [True, False, False]


@pytest.mark.filterwarnings("ignore:job '.*' runs in this kernel but cannot be resumed")
def test_a_panel_showing_a_running_job_redraws_at_every_poll(
    store: nbjobs.Store, wait_for: Any
) -> None:
    gate = threading.Event()
    job = store.submit(blocker, gate)
    try:
        wait_for(lambda: job.status == "running")
        store.flush()
        panel = Panel(store, clock=FakeClock())
        for _ in range(3):
            panel.tick()
        assert panel.refreshes == 3  # its elapsed time moves without a write
    finally:
        gate.set()
        job.wait(timeout=30)


def test_a_quiet_panel_polls_at_least_every_second(store: nbjobs.Store) -> None:
    """A change shows within a second, however long the panel has been quiet."""
    panel = Panel(store)
    assert panel.poller.interval == 0.5 and panel.poller.slow_interval == 1.0
