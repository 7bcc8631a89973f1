"""A full disk for tests: a real 20 MB tmpfs, filled to the brim by a filler file.

`Disk` is what a test does with it; the `disk` fixture (tests/conftest.py) mounts it, and
skips the test with the reason where mounting is not allowed.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import nbjobs

MiB = 1024 * 1024


class Disk:
    """A 20 MB tmpfs at `root`, a filler file that takes whatever room is left, and the
    stores opened on it (closed before the tmpfs is unmounted)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"
        self.stores: list[nbjobs.Store] = []

    def store(self) -> nbjobs.Store:
        s = nbjobs.Store(self.root / "store")
        self.stores.append(s)
        return s

    def fill(self) -> None:
        """Write until the disk says ENOSPC, in ever smaller pieces: not a byte is left."""
        with open(self.filler, "ab", buffering=0) as f:
            for size in (MiB, 64 * 1024, 4096, 512, 1):
                while True:
                    try:
                        f.write(b"\0" * size)
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break
        assert self.free() == 0

    def free_up(self, nbytes: int) -> None:
        """Give back exactly `nbytes` (whole pages) of the filler's room."""
        os.truncate(self.filler, self.filler.stat().st_size - nbytes)

    def unfill(self) -> None:
        self.filler.unlink()

    def free(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def temporary_files(self) -> list[str]:
        return [p.name for p in (self.root / "store").rglob(".tmp-*")]
