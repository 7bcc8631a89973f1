"""nbjobs.store.wakeups: the doorbell detached workers wait on, rung by other processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import nbjobs
from nbjobs.running import local, watching
from nbjobs.store import wakeups, worker_table
from nbjobs.store.writer import Call

Bell = tuple[wakeups.Doorbell, str]


@pytest.fixture
def bell(tmp_path: Path) -> Iterator[Bell]:
    """A doorbell listening at its socket file in `tmp_path`, closed after the test."""
    doorbell = wakeups.Doorbell()
    addr = wakeups.address(tmp_path, "w1")
    assert addr is not None and doorbell.listen(addr)
    yield doorbell, addr
    doorbell.close()


def test_another_process_rings_the_doorbell(bell: Bell) -> None:
    doorbell, addr = bell
    assert not doorbell.wait(0)
    code = f"from nbjobs.store import wakeups; wakeups.ring([{addr!r}])"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert doorbell.wait(30)
    assert not doorbell.wait(0)  # one wake-up, consumed


def test_a_thread_of_the_worker_sets_it_while_it_waits(bell: Bell) -> None:
    doorbell, _ = bell
    timer = threading.Timer(0.05, doorbell.set)  # most likely once wait() is in select()
    timer.start()
    began = time.monotonic()
    assert doorbell.wait(60)
    assert time.monotonic() - began < 30  # woken, not timed out
    timer.join()
    doorbell.set()  # before the wait: a flag, no datagram
    assert doorbell.wait(30)
    assert not doorbell.wait(0)


def test_ringing_nobody_or_a_stale_socket_is_ignored(tmp_path: Path) -> None:
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(stale))
    assert stale.exists()
    wakeups.ring([str(stale), str(tmp_path / "missing.sock")])


def test_listening_replaces_a_stale_socket_and_close_removes_it(tmp_path: Path) -> None:
    addr = wakeups.address(tmp_path, "w2")
    assert addr is not None
    old = wakeups.Doorbell()
    assert old.listen(addr)
    new = wakeups.Doorbell()
    assert new.listen(addr)  # the old one's file (as if its worker died) is replaced
    wakeups.ring([addr])
    assert new.wait(30)
    new.close()
    assert not Path(addr).exists()
    old.close()


def test_a_store_path_too_long_for_a_socket_file_uses_an_abstract_socket() -> None:
    long = Path("/" + "x" * 120)
    addr = wakeups.address(long, "w3")
    if sys.platform != "linux":
        assert addr is None
        return
    assert addr == "\0nbjobs-w3"
    doorbell = wakeups.Doorbell()
    try:
        assert doorbell.listen(addr)
        wakeups.ring([addr])
        assert doorbell.wait(30)
    finally:
        doorbell.close()


def test_many_submits_ring_once_per_writer_batch_not_per_job(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    rung: list[list[str]] = []
    monkeypatch.setattr(wakeups, "ring", lambda addrs: rung.append(list(addrs)))
    row = worker_table.WorkerRow(
        id="w9", owner="elsewhere:1:1", host=os.uname().nodename, pid=1, started_at=0.0,
        heartbeat_at=0.0, slots=1, running=0, state="running", cwd="/", lease=30.0,
    )  # fmt: skip
    store.storage.writer.call(lambda sql: worker_table.register(sql, row))
    gate = threading.Event()
    store.storage.writer.put(Call(lambda sql: gate.wait(30)))  # holds the writer
    for i in range(300):
        store.submit(abs, -i, executor="worker")
    gate.set()
    store.flush()
    assert 1 <= len(rung) <= 2  # the 300 inserts and the wake-up share one batch
    assert rung[0] == [wakeups.address(store.path, "w9")]


def test_a_worker_wakes_the_kernel_waiting_for_its_job(
    store: nbjobs.Store, monkeypatch: pytest.MonkeyPatch, wait_for: Any
) -> None:
    # The kernel's own looks are slowed to a minute: only the worker's ring can end the
    # waits below within their 30 s.
    monkeypatch.setattr(watching, "_POLL_MIN", 60.0)
    monkeypatch.setattr(watching, "_POLL_MAX", 60.0)
    monkeypatch.setattr(local, "_LOOK_MAX_S", 60.0)
    store.start_worker(workers=1, idle_timeout=120)
    try:
        first = store.submit(time.sleep, 0.5, executor="worker")
        assert first.result(timeout=30) is None
        second = store.submit(time.sleep, 0.5, executor="worker")
        done, _ = nbjobs.wait([second], timeout=30)
        assert done == {second}
    finally:
        store.stop_worker()
    # The watcher stops listening once it has nothing to watch: its socket goes.
    wait_for(lambda: not list((store.path / "watchers").glob("*.sock")))


def test_ringing_watchers_removes_the_socket_of_a_process_that_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "watchers"
    folder.mkdir()
    stale = folder / "123-dead.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(stale))  # closed: nobody listens there any more
    live = wakeups.Doorbell()
    assert live.listen(str(folder / "456-live.sock"))
    try:
        wakeups.ring_watchers(tmp_path)
        assert not stale.exists()
        assert live.wait(30)
    finally:
        live.close()


def test_a_doorbell_works_in_a_process_with_more_than_1024_files(tmp_path: Path) -> None:
    """A kernel may hold many files; select() refuses descriptors above 1,023."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"this process may open only {hard} files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    null = os.open(os.devnull, os.O_RDONLY)
    filler = [os.dup(null) for _ in range(1100)]
    doorbell = wakeups.Doorbell()
    try:
        addr = str(tmp_path / "high.sock")
        assert doorbell.listen(addr)
        wakeups.ring([addr])
        assert doorbell.wait(30)
        assert not doorbell.wait(0)
    finally:
        doorbell.close()
        for fd in [*filler, null]:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
