"""The work every contender runs, in an importable module.

Functions live here (not in `contenders.py`, which runs as `__main__`) so that Huey's task
registry and nbjobs' process children find them by reference, like a user's own module.
"""

from __future__ import annotations

import functools
import time

import numpy as np
import numpy.typing as npt
from plan import NAP_SECONDS

FailedJob = ValueError


def trivial(i: int) -> int:
    """A job that does nothing measurable: the cost left is the machinery's."""
    return i + 1


def nap(i: int) -> int:
    """A job that sleeps 10 ms: 4 workers can do at most 400 of these a second."""
    time.sleep(NAP_SECONDS)
    return i


def trivial_or_fail(i: int, fail_every: int) -> int:
    """`trivial`, but every `fail_every`-th call raises, to seed failed jobs in a store."""
    if i % fail_every == 0:
        raise FailedJob(f"job {i} fails on purpose")
    return trivial(i)


def filled(nbytes: int, seed: int) -> npt.NDArray[np.float64]:
    """A fresh float64 array of `nbytes` bytes filled with `seed` (memset speed)."""
    return np.full(nbytes // 8, float(seed))


@functools.cache
def big_array(nbytes: int) -> npt.NDArray[np.float64]:
    """One array per size and process, built on first call: later calls cost nothing,
    so a job returning it measures only the storing of its result."""
    return filled(nbytes, 7)


def shared_sum(shared: npt.NDArray[np.float64], i: int) -> float:
    """A job of a map whose items all share one big argument."""
    return float(shared[i % shared.size]) + i
