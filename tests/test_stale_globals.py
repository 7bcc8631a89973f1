"""A notebook function pickled before a global it uses was defined (#16 item 10).

The script runs as `__main__`, as a notebook's cells do: its functions are pickled by value,
with the globals they can see at their first submit.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(180)

NOTEBOOK = """
import nbjobs

store = nbjobs.Store({store!r})


def scaled(x):
    return x * factor  # `factor` comes from a later cell


first = store.submit(scaled, 2, executor="process", key="scaled-2")
try:
    first.result(timeout=60)
except NameError as exc:
    print("NOTE:", " ".join(getattr(exc, "__notes__", [""])))
else:
    print("NO ERROR")

factor = 10  # the later cell
print("AGAIN:", store.submit(scaled, 2, executor="process", key="scaled-2").result(timeout=60))
print("UNKEYED:", store.submit(scaled, 3, executor="process").result(timeout=60))
store.close()
"""


def test_a_global_defined_after_the_first_submit_is_seen_by_the_next_submit(
    tmp_path: Path,
) -> None:
    script = tmp_path / "cells.py"
    script.write_text(textwrap.dedent(NOTEBOOK.format(store=str(tmp_path / "store"))))
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=150, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines() if ": " in line)
    note = lines["NOTE"]
    assert "scaled was pickled with the globals it could see when it was first submitted" in note
    assert "'factor'" in note and "submit the job again" in note
    assert lines["AGAIN"] == "20"
    assert lines["UNKEYED"] == "30"
