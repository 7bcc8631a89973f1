"""The store folder: private, ignored by git, versioned, never evicting, shared across processes."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import random
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

import nbjobs

FORMAT_FILE = "nbjobs-format.json"  # read from nbjobs/folder.py: {"format": <int>, ...}


def square(x: int) -> int:
    return x * x


def blob(i: int, size: int) -> bytes:
    return random.Random(i).randbytes(size)


def read_by_key(path: str, keys: list[str], out: multiprocessing.Queue) -> None:
    """Child process: open the store afresh and read results by key."""
    store = nbjobs.Store(path)
    try:
        out.put({key: store.get(key).result(timeout=60) for key in keys})
    except BaseException as exc:
        out.put(exc)
    finally:
        store.close()


def test_store_folder_is_private_and_gitignored(store: nbjobs.Store, tmp_path: Path) -> None:
    path = tmp_path / "store"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    ignore = (path / ".gitignore").read_text().splitlines()
    assert "*" in [line.strip() for line in ignore]


def test_store_folder_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        s = nbjobs.Store(tmp_path / "open-umask")
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE((tmp_path / "open-umask").stat().st_mode) == 0o700
    finally:
        s.close()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_does_not_see_the_store(tmp_path: Path) -> None:
    repo = tmp_path / "project"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    s = nbjobs.Store(repo / ".nbjobs")
    try:
        s.submit(square, 5, key="five").result(timeout=60)
    finally:
        s.close()
    (repo / "analysis.py").write_text("x = 1\n")
    out = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.splitlines() == ["?? analysis.py"]


def test_default_store_is_created_private_on_first_use(default_store: Path) -> None:
    nbjobs.submit(square, 3).result(timeout=60)
    assert stat.S_IMODE(default_store.stat().st_mode) == 0o700
    assert "*" in (default_store / ".gitignore").read_text().split()


def test_nested_store_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "store"
    s = nbjobs.Store(path)
    try:
        assert s.submit(square, 4).result(timeout=60) == 16
    finally:
        s.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def write_store_then_tamper(path: Path, change: Any) -> None:
    s = nbjobs.Store(path)
    s.submit(square, 2, key="two").result(timeout=60)
    s.close()
    fmt = path / FORMAT_FILE
    assert fmt.exists(), f"the store format marker moved: update FORMAT_FILE in {__file__}"
    fmt.write_text(change(fmt.read_text()))


def bump(delta: int) -> Any:
    def change(text: str) -> str:
        data = json.loads(text)
        data["format"] = int(data["format"]) + delta
        return json.dumps(data)

    return change


@pytest.mark.parametrize(
    ("change", "words"),
    [
        pytest.param(bump(+1), "newer", id="newer"),
        pytest.param(bump(+1000), "newer", id="much-newer"),
        pytest.param(bump(-1), "older", id="older"),
        pytest.param(lambda text: "{not json", "", id="corrupt"),
    ],
)
def test_store_of_another_format_is_refused_with_its_path(
    tmp_path: Path, change: Any, words: str
) -> None:
    path = tmp_path / "store"
    write_store_then_tamper(path, change)
    with pytest.raises(nbjobs.StoreFormatError) as info:
        nbjobs.Store(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)
    assert isinstance(info.value, nbjobs.StoreError)
    assert isinstance(info.value, nbjobs.NbjobsError)


def test_default_store_of_a_newer_format_is_refused_with_its_path(tmp_path: Path) -> None:
    path = tmp_path / "other-default"
    write_store_then_tamper(path, bump(+1))
    with pytest.raises(nbjobs.StoreFormatError, match=re.escape(str(path))):
        nbjobs.configure(store=str(path))


def test_store_path_that_is_a_regular_file_is_not_writable(tmp_path: Path) -> None:
    path = tmp_path / "store"
    path.write_text("a file, not a folder")
    with pytest.raises(nbjobs.StoreNotWritable) as info:
        nbjobs.Store(path)
    assert str(path) in str(info.value)
    assert path.read_text() == "a file, not a folder"


def test_store_under_a_regular_file_is_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    path = blocker / "store"
    with pytest.raises(nbjobs.StoreNotWritable) as info:
        nbjobs.Store(path)
    assert str(path) in str(info.value)
    assert blocker.read_text() == "not a folder"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500")
def test_store_in_a_read_only_folder_is_not_writable(tmp_path: Path) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    parent.chmod(0o500)
    try:
        with pytest.raises(nbjobs.StoreNotWritable) as info:
            nbjobs.Store(parent / "store")
        assert str(parent / "store") in str(info.value)
    finally:
        parent.chmod(0o700)


def test_configure_with_an_unwritable_store_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    path = blocker / "store"
    with pytest.raises(nbjobs.StoreNotWritable, match=re.escape(str(path))):
        nbjobs.configure(store=str(path))
        nbjobs.submit(square, 1)


@pytest.mark.slow
def test_another_process_reads_results_by_key(store: nbjobs.Store, tmp_path: Path) -> None:
    keys = [f"sq-{i}" for i in range(5)]
    for i, key in enumerate(keys):
        store.submit(square, i, key=key)
    expected = {key: store.get(key).result(timeout=60) for key in keys}
    assert expected == {f"sq-{i}": i * i for i in range(5)}

    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    proc = ctx.Process(target=read_by_key, args=(str(tmp_path / "store"), keys, out))
    proc.start()
    try:
        got = out.get(timeout=120)
    finally:
        proc.join(timeout=60)
    if isinstance(got, BaseException):
        raise got
    assert got == expected
    assert proc.exitcode == 0


@pytest.mark.slow
def test_store_past_one_gib_evicts_nothing(store: nbjobs.Store, tmp_path: Path) -> None:
    small = [store.submit(square, i, key=f"small-{i}") for i in range(200)]
    for job in small:
        job.wait(timeout=120)
    size = 16 * 1024 * 1024
    count = 70  # 70 x 16 MiB = 1.09 GiB, past diskcache's default 1 GiB size limit
    jobs = [store.submit(blob, i, size, key=f"blob-{i}") for i in range(count)]
    for job in jobs:
        job.wait(timeout=120)
    assert store.stats()["succeeded"] == count + 200

    reopened = nbjobs.Store(tmp_path / "store")
    try:
        for i in range(count):
            value = reopened.get(f"blob-{i}").result(timeout=60)
            assert len(value) == size
            assert hashlib.sha256(value).digest() == hashlib.sha256(blob(i, size)).digest()
        for i in range(200):
            assert reopened.get(f"small-{i}").result(timeout=60) == i * i
        assert reopened.stats()["succeeded"] == count + 200
    finally:
        reopened.close()


def test_a_folder_that_holds_other_files_is_not_taken_over(tmp_path: Path) -> None:
    folder = tmp_path / "my-project"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "analysis.ipynb").write_text("{}")
    with pytest.raises(nbjobs.StoreError) as info:
        nbjobs.Store(folder)
    assert str(folder) in str(info.value)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert sorted(p.name for p in folder.iterdir()) == ["analysis.ipynb"]


def test_an_existing_empty_folder_becomes_a_private_store(tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    s = nbjobs.Store(folder)
    try:
        assert s.submit(square, 6).result(timeout=60) == 36
    finally:
        s.close()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert "*" in (folder / ".gitignore").read_text().split()
