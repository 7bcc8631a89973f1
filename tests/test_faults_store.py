"""Faults of the store itself: a process killed in the middle of a purge, a damaged database.

Real stores, real processes, real SIGKILLs: a purge killed at any moment leaves every job it
did not remove readable, and no file behind; a damaged or foreign database is refused with
one clear error (the CLI prints one line), and what can still be read of it still is.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from gates import wait_for_file

import nbjobs
from nbjobs.store import schema

BIG = 300 * 1024  # above the inline limit (nbjobs/store/blobs.py): each result is a file
JOBS = 600  # more than one purge batch (nbjobs/api.py, _PURGE_BATCH = 500)

# The child purges the store (or forgets one job); it dies by SIGKILL right after its
# `kill_at`-th file removal (a moment inside the purge chosen exactly), or when the parent
# kills it (a moment chosen by time).
PURGER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import nbjobs

    store_path, ready, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = nbjobs.Store(store_path)
    if kill_at:
        unlink, seen = os.unlink, [0]

        def dying_unlink(path, *args, **kwargs):
            unlink(path, *args, **kwargs)
            seen[0] += 1
            if seen[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

        os.unlink = dying_unlink
    Path(ready).touch()
    if sys.argv[4] == "forget":
        store.forget(store.jobs(limit=1)[0].id)
    else:
        store.purge(status="succeeded")
    os._exit(0)
    """
)

# (how the purge dies, at which file removal or after how many ms)
KILLS = [
    ("unlink", 1),
    ("unlink", 120),
    ("unlink", 500),
    ("unlink", 501),
    ("unlink", 590),
    ("timer", 0),
    ("timer", 10),
    ("timer", 25),
    ("timer", 45),
    ("timer", 70),
    ("forget", 1),
]


def blob_files(path: Path) -> list[str]:
    return sorted((path / "blobs").iterdir())


@pytest.fixture(scope="module")
def many_big_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store of `JOBS` succeeded jobs, each with its result in a file."""
    path = tmp_path_factory.mktemp("template") / "store"
    with nbjobs.Store(path) as store:
        nbjobs.wait([store.submit(bytes, BIG) for _ in range(JOBS)], timeout=300)
        assert store.stats()["succeeded"] == JOBS
    assert len(blob_files(path)) == JOBS, "results no longer go to files: raise BIG"
    return path


def copy_store(template: Path, to: Path) -> Path:
    """A copy of the store whose blob files are hard links (a purge unlinks, never writes)."""

    def copy(src: str, dst: str) -> None:
        if Path(src).parent.name == "blobs":
            os.link(src, dst)
        else:
            shutil.copy2(src, dst)

    shutil.copytree(template, to, copy_function=copy)
    return to


def purge_and_die(path: Path, how: str, when: int) -> int:
    script = path.parent / "purger.py"
    script.write_text(PURGER)
    ready = path.parent / "ready"
    kill_at = 0 if how == "timer" else when
    what = "forget" if how == "forget" else "purge"
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(ready), str(kill_at), what]
    )
    try:
        if how == "timer":
            assert wait_for_file(ready), "the purging child never started"
            time.sleep(when / 1000)  # the moment of the crash is the point of the trial
            child.send_signal(signal.SIGKILL)
        return child.wait(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


@pytest.mark.parametrize(("how", "when"), KILLS, ids=[f"{h}-{w}" for h, w in KILLS])
def test_a_purge_or_forget_killed_at_any_moment_loses_no_result_and_leaves_no_file(
    many_big_results: Path, tmp_path: Path, how: str, when: int
) -> None:
    path = copy_store(many_big_results, tmp_path / "store")
    code = purge_and_die(path, how, when)
    assert code in (-signal.SIGKILL, 0), code
    with nbjobs.Store(path) as store:
        kept = store.jobs(status="succeeded", limit=JOBS)
        lost = []
        for job in kept:
            try:
                value = job.result(timeout=10)
            except nbjobs.NbjobsError as exc:
                lost.append(f"{job.id}: {exc}")
            else:
                assert len(value) == BIG
        assert not lost, f"{len(lost)} of {len(kept)} succeeded jobs lost their result: {lost[0]}"
        # Opening the store (a writer) removed the files of the jobs the purge removed.
        assert len(blob_files(path)) == len(kept), (len(blob_files(path)), len(kept))
        assert store.purge(status="failed") == 0
        assert len(blob_files(path)) == len(kept)
        assert store.purge(status="succeeded") == len(kept)
        assert blob_files(path) == []


def test_purge_removes_old_files_that_no_job_names_and_keeps_young_ones(
    store: nbjobs.Store,
) -> None:
    kept = store.submit(bytes, BIG)
    assert len(kept.result(timeout=60)) == BIG
    blobs = store.path / "blobs"
    (named,) = blob_files(store.path)
    # Left by processes that died before committing them: a value, and a half-written one.
    old = [blobs / "r-0123456789abcdef-00c0ffee", blobs / ".tmp-abandoned"]
    young = blobs / "r-fedcba9876543210-0badf00d"  # may be on its way to its commit
    for path in (*old, young):
        path.write_bytes(b"x" * 100)
    two_days_ago = time.time() - 2 * 86_400
    for path in (*old, named):
        os.utime(path, (two_days_ago, two_days_ago))
    assert store.purge(status="failed") == 0
    assert blob_files(store.path) == sorted([named, young])
    assert len(kept.result(timeout=60)) == BIG


# ------------------------------------------------------------------ damaged stores
DATABASE = "cache.db"  # read from nbjobs/connections.py: diskcache's database in the folder
FORMAT_FILE = "nbjobs-format.json"  # read from nbjobs/folder.py
RECORDS = "nbjobs_jobs"  # read from nbjobs/schema.py: the table of job records
PAGE = 4096
FILLED = 200


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store of `FILLED` succeeded jobs, keyed k0 (oldest) to k199."""
    path = tmp_path_factory.mktemp("filled") / "store"
    with nbjobs.Store(path) as store:
        for i in range(FILLED):
            store.submit(pow, 2, i, key=f"k{i}")
        store.flush()
        nbjobs.wait(store.jobs(limit=FILLED), timeout=120)
    con = sqlite3.connect(path / DATABASE)  # every page in the database file, none in the WAL
    try:
        assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    finally:
        con.close()
    return path


def copy_of(template: Path, to: Path) -> Path:
    """The store without its (empty) WAL and WAL index, as a closed store is left."""
    return Path(shutil.copytree(template, to, ignore=shutil.ignore_patterns("*-wal", "*-shm")))


def cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`nbjobs --store PATH ARGS...` in a subprocess (this checkout's nbjobs)."""
    env = dict(os.environ)
    root = str(Path(nbjobs.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return subprocess.run(
        [sys.executable, "-m", "nbjobs", "--store", str(path), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def assert_one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1, (out.returncode, out.stderr)
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("nbjobs: "), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def scribble(db: Path, pages: list[int], seed: int) -> None:
    """Overwrite these pages (1 = the first, holding the header) with random bytes."""
    rng = random.Random(seed)
    with open(db, "r+b") as f:
        for page in pages:
            f.seek((page - 1) * PAGE)
            f.write(rng.randbytes(PAGE))


def record_leaf_pages(db: Path) -> list[int]:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA page_size").fetchone()[0] == PAGE
        rows = con.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (RECORDS,),
        ).fetchall()
    except sqlite3.OperationalError as exc:
        pytest.skip(f"this SQLite has no dbstat table: {exc}")
    finally:
        con.close()
    return [page for (page,) in rows]


def truncate(path: Path) -> None:
    db = path / DATABASE
    os.truncate(db, db.stat().st_size // 2)


def scribble_header(path: Path) -> None:
    scribble(path / DATABASE, [1, 2], seed=1)


DAMAGE = {"truncated": truncate, "scribbled-header": scribble_header}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_database_is_refused_naming_the_file_and_the_way_out(
    filled_store: Path, tmp_path: Path, damage: str
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    DAMAGE[damage](path)
    before = (path / DATABASE).read_bytes()
    with pytest.raises(nbjobs.StoreCorrupt) as info:
        nbjobs.Store(path)
    message = str(info.value)
    assert str(path / DATABASE) in message
    assert "copy" in message
    assert ".recover" in message
    assert isinstance(info.value, nbjobs.StoreError)
    assert isinstance(info.value, nbjobs.NbjobsError)
    assert_one_line_error(cli(path, "ls"), str(path / DATABASE), ".recover")
    assert (path / DATABASE).read_bytes() == before, "opening wrote to the damaged file"


def test_damaged_pages_fail_only_the_reads_that_meet_them(
    filled_store: Path, tmp_path: Path
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    leaves = record_leaf_pages(path / DATABASE)
    assert len(leaves) >= 6, leaves
    middle = leaves[len(leaves) // 3 : 2 * len(leaves) // 3]
    scribble(path / DATABASE, middle, seed=2)
    with nbjobs.Store(path) as store:
        assert store.stats()["succeeded"] == FILLED
        assert store.get("k0").result(timeout=10) == 1
        assert store.get(f"k{FILLED - 1}").result(timeout=10) == 2 ** (FILLED - 1)
        with pytest.raises(nbjobs.StoreCorrupt, match=re.escape(str(path / DATABASE))):
            store.get(f"k{FILLED // 2}")
        with pytest.raises(nbjobs.StoreCorrupt, match="recover"):
            store.jobs(limit=FILLED)
    stats = cli(path, "stats")
    assert stats.returncode == 0, stats.stderr
    assert str(FILLED) in stats.stdout
    assert_one_line_error(cli(path, "show", f"k{FILLED // 2}"), str(path / DATABASE))
    assert_one_line_error(cli(path, "ls", "--limit", str(FILLED)), ".recover")


def test_a_store_whose_database_was_replaced_is_an_error_not_a_new_store(
    filled_store: Path, tmp_path: Path
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    db = path / DATABASE
    db.unlink()
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE notes (text TEXT)")
    con.close()
    with pytest.raises(nbjobs.StoreCorrupt, match="no nbjobs tables"):
        nbjobs.Store(path)
    assert_one_line_error(cli(path, "ls"), str(db), "no nbjobs tables")


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_a_store_whose_database_is_gone_is_an_error_not_a_new_store(
    filled_store: Path, tmp_path: Path, what: str
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    db = path / DATABASE
    if what == "empty":
        os.truncate(db, 0)
    else:
        db.unlink()
    with pytest.raises(nbjobs.StoreCorrupt) as info:
        nbjobs.Store(path)
    assert str(db) in str(info.value)
    assert what in str(info.value)
    assert_one_line_error(cli(path, "ls"), str(db), what)
    assert_one_line_error(cli(path, "stats"), str(db), what)
    assert db.exists() == (what == "empty")
    assert not db.exists() or db.stat().st_size == 0, "opening wrote a new database"


def test_a_store_of_a_newer_schema_is_refused_naming_both_versions(
    filled_store: Path, tmp_path: Path
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    newer = schema.VERSION + 1
    con = sqlite3.connect(path / DATABASE)
    con.execute(f"PRAGMA user_version = {newer}")
    con.close()
    with pytest.raises(nbjobs.StoreFormatError) as info:
        nbjobs.Store(path)
    for word in (str(path), "newer", f"schema {newer}", f"schema {schema.VERSION}"):
        assert word in str(info.value), (word, str(info.value))
    assert_one_line_error(cli(path, "ls"), f"schema {newer}", f"schema {schema.VERSION}")


def test_a_store_of_a_newer_format_is_refused_by_the_cli(
    filled_store: Path, tmp_path: Path
) -> None:
    path = copy_of(filled_store, tmp_path / "store")
    fmt = path / FORMAT_FILE
    data = json.loads(fmt.read_text())
    data["format"] += 1
    fmt.write_text(json.dumps(data))
    assert_one_line_error(cli(path, "ls"), str(path), "newer", f"format {data['format']}")


def open_and_submit(path: str, i: int, out: multiprocessing.Queue) -> None:
    """Child process: open (or create) the store and run one keyed job in it."""
    try:
        with nbjobs.Store(path) as store:
            out.put(store.submit(pow, 2, i, key=f"k{i}").result(timeout=60))
    except BaseException as exc:
        out.put(repr(exc))


def test_processes_creating_one_new_store_at_once_all_open_it(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    path = str(tmp_path / "new-store")
    procs = [ctx.Process(target=open_and_submit, args=(path, i, out)) for i in range(6)]
    for proc in procs:
        proc.start()
    try:
        got = sorted(str(out.get(timeout=120)) for _ in procs)
    finally:
        for proc in procs:
            proc.join(timeout=60)
    assert got == sorted(str(2**i) for i in range(6))
    with nbjobs.Store(path) as store:
        assert store.stats()["succeeded"] == 6
