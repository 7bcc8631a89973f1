"""Make tests/data/store-0.1: a store written by nbjobs 0.1 (commit 2386d56), before the
house plan moved its modules (run with that checkout: python make_store_0_1.py store-0.1)."""

import operator
import sys

import nbjobs


def double_it(x):
    return 2 * x


def boom(x):
    raise ValueError(f"boom {x}")


store = nbjobs.Store(sys.argv[1])
a = store.submit(pow, 2, 10, key="pow")
assert a.result(timeout=30) == 1024
f = store.submit(boom, 7, key="boom", executor="thread")
f.wait(timeout=30)
# queued for a detached worker (none runs now): payloads hold a JobRef, a retry policy, key=auto
b = store.submit(operator.add, a, 1, key="add-ref", executor="worker")
c = store.submit(
    double_it,
    21,
    key=nbjobs.auto,
    executor="worker",
    retries=nbjobs.Retry(times=3, on=ValueError, delay=0.01),
)
d = store.submit(double_it, b, key="chained", executor="worker")
store.schedule(
    double_it, every="1h", args=(5,), name="hourly", retries=nbjobs.Retry(times=2, on=KeyError)
)
print(a.status, f.status, b.status, c.status, d.status, c.key)
store.close()
