"""Groups of jobs (a map, `Task.map`, `nbjobs.group`) and the orders of a page, against a
real store: the counts kept by triggers, one indexed read per group, active work first."""

from __future__ import annotations

import functools
import threading
from typing import Any

import pytest

import nbjobs
from nbjobs import states
from nbjobs.records import JobRecord
from nbjobs.store import group_table


def square(x: int) -> int:
    if x % 10 == 3:
        raise ValueError(f"bad x: {x}")
    return x * x


def held(gate: threading.Event, x: int) -> int:
    gate.wait(30)
    return x


def test_a_map_is_a_group_with_counts_per_status(store: nbjobs.Store) -> None:
    jobs = store.map(square, range(25))
    nbjobs.wait(jobs, timeout=60)
    gid = jobs[0].record().group
    assert gid is not None and {j.record().group for j in jobs} == {gid}
    [group] = store.groups()
    assert (group.id, group.name, group.size) == (gid, "square", 25)
    assert group.counts == {"succeeded": 22, "failed": 3}
    assert group.done == 25 and group.fraction == 1.0 and not group.active
    assert group.finished_at is not None and group.eta is None
    assert group.rate is not None and group.rate > 0


def test_a_prefix_keyed_map_is_the_same_group_each_run(store: nbjobs.Store) -> None:
    first = store.map(square, range(5), key="sq")
    nbjobs.wait(first, timeout=60)
    again = store.map(square, range(8), key="sq")  # the cell run again, with more items
    nbjobs.wait(again, timeout=60)
    [group] = store.groups()
    assert (group.id, group.name, group.size) == ("k:sq", "sq", 8)
    assert sum(group.counts.values()) == 8


def test_group_and_task_map_form_groups(store: nbjobs.Store) -> None:
    jobs = nbjobs.group(*(functools.partial(square, i) for i in range(4)), store=store)
    fit = nbjobs.task(square, store=store)
    mapped = fit.map([1, 2])
    single = store.submit(square, 7)
    nbjobs.wait([*jobs, *mapped, single], timeout=60)
    assert single.record().group is None
    sizes = sorted(g.size for g in store.groups())
    assert sizes == [2, 4]


def test_a_group_goes_with_its_last_job(store: nbjobs.Store) -> None:
    jobs = store.map(square, range(3), key="gone")
    nbjobs.wait(jobs, timeout=60)
    store.forget("gone/0")
    assert store.groups()[0].size == 2
    store.purge(status=list(states.FINISHED))
    assert store.groups() == []
    assert (
        store.storage.read(
            lambda sql: sql("SELECT count(*) FROM nbjobs_group_counts").fetchone()[0]
        )
        == 0
    )


@pytest.mark.filterwarnings("ignore:.*cannot be resumed")
def test_counts_follow_each_state_change(store: nbjobs.Store, wait_for: Any) -> None:
    gate = threading.Event()
    jobs = store.map(functools.partial(held, gate), range(6))
    wait_for(lambda: store.groups()[0].counts.get("running", 0) >= 1)
    group = store.groups()[0]
    assert group.active and group.size == 6
    assert sum(group.counts.values()) == 6 and group.done == 0
    gate.set()
    nbjobs.wait(jobs, timeout=60)
    assert store.groups()[0].counts == {"succeeded": 6}


def test_a_group_row_is_one_indexed_read(store: nbjobs.Store) -> None:
    """The plan of every read of a group: a search of a primary key or index, never a
    SCAN of the jobs (a group of 100,000 jobs costs what a group of 3 does)."""
    nbjobs.wait(store.map(square, range(3), key="plan"), timeout=60)
    found = store.storage.read(
        lambda sql: [
            row[-1]
            for query, args in (
                (
                    "SELECT id, name, created_at, size, finished_at FROM nbjobs_groups "
                    "WHERE id IN (?)",
                    ("k:plan",),
                ),
                ("SELECT grp, status, n FROM nbjobs_group_counts WHERE grp IN (?)", ("k:plan",)),
                (
                    "SELECT id FROM nbjobs_jobs WHERE grp = ? AND status = ? "
                    "ORDER BY seq DESC LIMIT 20",
                    ("k:plan", "running"),
                ),
            )
            for row in sql(f"EXPLAIN QUERY PLAN {query}", args).fetchall()
        ]
    )
    assert found and all("SEARCH" in step for step in found), found
    assert not any("SCAN" in step for step in found), found
    assert store.groups(ids=["k:plan"])[0].size == 3


def _insert(store: nbjobs.Store, recs: list[JobRecord]) -> None:
    storage = store.storage

    def write(sql: Any) -> None:
        for rec in recs:
            storage.insert(sql, rec)

    storage.writer.call(write)


ORDER = ["running", "retrying", "failed", "pending", "succeeded"]


@pytest.fixture
def mixed(store: nbjobs.Store) -> nbjobs.Store:
    """Records in every state, interleaved by submission, half of them in a group."""
    cycle = ["succeeded", "pending", "failed", "running", "retrying", "succeeded", "cancelled"]
    _insert(
        store,
        [
            JobRecord(id=f"{i:04d}", name=f"n{i % 3}", status=cycle[i % len(cycle)],
                      group="g1" if i % 2 else None, created_at=float(i), updated_at=float(i))
            for i in range(70)
        ],
    )  # fmt: skip
    return store


def _bands(recs: list[JobRecord]) -> list[str]:
    out: list[str] = []
    for rec in recs:
        band = rec.status if rec.status in ORDER[:4] else "finished"
        if not out or out[-1] != band:
            out.append(band)
    return out


@pytest.mark.parametrize("group", [None, "g1"])
def test_active_order_puts_running_first_and_pages_through_every_job(
    mixed: nbjobs.Store, group: str | None
) -> None:
    everything = mixed.records(order="active", limit=1000, group=group)
    assert _bands(everything) == ["running", "retrying", "failed", "pending", "finished"]
    for band in ("running", "pending"):
        seqs = [r.id for r in everything if r.status == band]
        assert seqs == sorted(seqs, reverse=True)  # newest first within a band
    paged = []
    for offset in range(0, len(everything), 7):
        paged += mixed.records(order="active", limit=7, offset=offset, group=group)
    assert [r.id for r in paged] == [r.id for r in everything]
    expected = 70 if group is None else 35
    assert len({r.id for r in everything}) == expected


def test_the_other_orders(mixed: nbjobs.Store) -> None:
    newest = [r.id for r in mixed.records(limit=1000, group="g1")]
    assert newest == sorted(newest, reverse=True) and len(newest) == 35
    assert [r.id for r in mixed.records(order="oldest", limit=5, group="g1")] == sorted(newest)[:5]
    page = mixed.records(order="oldest", limit=3, offset=2, status=["failed", "running"])
    ids = sorted(r.id for r in mixed.records(limit=1000, status=["failed", "running"]))
    assert [r.id for r in page] == ids[2:5]
    names = [r.name for r in mixed.records(order="name", limit=1000)]
    assert names == sorted(names)
    by_name = mixed.records(order="active", limit=1000, name="n1")
    assert _bands(by_name)[0] == "running" and {r.name for r in by_name} == {"n1"}


def test_bad_order_or_group_names_the_argument(store: nbjobs.Store) -> None:
    with pytest.raises(nbjobs.InvalidArgument, match=r"order must be one of .*'sideways'"):
        store.records(order="sideways")
    with pytest.raises(nbjobs.InvalidArgumentType, match="group must be a group id"):
        store.records(group=3)  # type: ignore[arg-type]


def test_counted_groups_of_a_name(mixed: nbjobs.Store) -> None:
    group = mixed.storage.read(lambda sql: group_table.counted(sql, "name", "n1", 100.0))
    assert group.size == sum(1 for r in mixed.records(limit=1000) if r.name == "n1")
