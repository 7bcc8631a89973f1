"""The one-line texts of the views: argument summaries, cut values, tqdm's progress line."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import pytest

import nbjobs
from nbjobs import render, shorten
from nbjobs.records import ErrorInfo, JobRecord, Progress
from nbjobs.widgets import markup


def test_cut_ends_with_an_ellipsis_only_when_it_cuts() -> None:
    assert shorten.cut("abcdef", 6) == "abcdef"
    assert shorten.cut("abcdefg", 6) == "abcde…"
    assert len(shorten.cut("x" * 1000, 80)) == 80


def test_dicts_keep_their_insertion_order() -> None:
    value = {"zeta": 1, "alpha": 2, "mid": {"y": 1, "b": 2}}
    assert shorten.short_repr(value) == "{'zeta': 1, 'alpha': 2, 'mid': {'y': 1, 'b': 2}}"
    assert shorten.hover_repr(value) == repr(value)


def test_a_long_result_is_cut_with_an_ellipsis_and_whole_on_hover() -> None:
    value = {f"key{i}": i * 1.5 for i in range(50)}
    short = shorten.short_repr(value, 80)
    assert (
        short == "{'key0': 0.0, 'key1': 1.5, 'key2': 3.0, 'key3': 4.5, 'key4': 6.0, 'key5': 7.5, …"
    )
    assert shorten.hover_repr(value) == repr(value)  # 50 items, ~800 characters: all of it
    huge = shorten.hover_repr("x" * 100_000)
    assert len(huge) == shorten.HOVER_LIMIT and "..." in huge  # reprlib cuts strings inside


def test_argument_summaries_are_short_and_tell_calls_apart() -> None:
    assert shorten.arguments((0.1,), {"window": 20}) == "0.1, window=20"
    assert shorten.arguments((), {}) == ""
    long = shorten.arguments((list(range(1000)), "x" * 500, {"a": 1}), {"mode": "full" * 50})
    assert len(long) <= 60 and long.endswith("…")
    assert shorten.arguments(((1, 2, 3, 4, 5, 6),), {}) == "(1, 2, 3, 4, ...)"


def test_numpy_scalars_read_as_numbers() -> None:
    np = pytest.importorskip("numpy")
    assert shorten.arguments((np.float64(0.25), np.int64(3)), {"d": {"a": np.float32(1.5)}}) == (
        "0.25, 3, d={'a': 1.5}"
    )


class Loud:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def test_a_failing_repr_does_not_fail_the_summary() -> None:
    assert shorten.arguments((Loud(),), {}).startswith("<Loud instance at ")
    assert shorten.hover_repr([Loud()]).startswith("[<Loud instance at ")


def test_other_mappings_are_cut_not_sorted() -> None:
    value = OrderedDict((str(i), i) for i in range(30, 0, -1))
    assert shorten.short_repr(value, 40).startswith("OrderedDict({'30': 30") or (
        shorten.short_repr(value, 40).startswith("OrderedDict([('30', 30)")
    )


def test_the_label_is_the_key_else_the_arguments_else_the_id() -> None:
    keyed = JobRecord(id="a1", name="fit", key="fit-0.1", summary="0.1")
    auto = JobRecord(id="a2", name="fit", key="auto:fit:" + "0" * 32, summary="0.1")
    plain = JobRecord(id="a3", name="fit", summary="0.1, window=20")
    old = JobRecord(id="a4", name="fit")  # a record written before summaries were kept
    labels = [markup.label(r) for r in (keyed, auto, plain, old)]
    assert labels == ["fit-0.1", "(0.1)", "(0.1, window=20)", "a4"]


@pytest.mark.parametrize(
    ("progress", "took", "status", "line"),
    [
        (Progress(16, 70, rate=2.2), 7.0, "running", "23% 16/70 [00:07<00:24, 2.2 it/s]"),
        (Progress(70, 70, rate=2.2), 31.0, "succeeded", "100% 70/70 [00:31, 2.2 it/s]"),
        (Progress(3, None, "files", rate=0.25, unit="file"), 12.0, "running",
         "files: 3 file [00:12, 4.0 s/file]"),
        (Progress(2.5, 10.0), None, "running", "25% 2.5/10 [?]"),
        (Progress(5000, 10**6, rate=1234.5), 3725.0, "running",
         "0% 5000/1000000 [1:02:05<13:25, 1,234 it/s]"),
    ],
)  # fmt: skip
def test_the_progress_line_reads_like_tqdm(
    progress: Progress, took: float | None, status: str, line: str
) -> None:
    assert render.tqdm_line(progress, took, status) == line


def test_errors_are_cut_with_an_ellipsis_and_whole_on_hover() -> None:
    rec = JobRecord(id="a", name="f", status="failed", error=ErrorInfo("ValueError", "x" * 900))
    html = markup.Previews(store=None).html(rec)  # type: ignore[arg-type]
    shown = html.split(">", 1)[1]
    assert "…</span>" in shown and len(shown) < 200
    assert f"title='ValueError: {'x' * 900}'" in html


def test_progress_keeps_the_unit_given_to_track(store: nbjobs.Store) -> None:
    def convert(paths: list[str]) -> int:
        return sum(1 for _ in nbjobs.track(paths, unit="file"))

    job = store.submit(convert, ["a", "b", "c"])
    assert job.result(timeout=30) == 3
    p = job.record().progress_info()
    assert p is not None and p.unit == "file" and p.current == 3


def plain(**kwargs: Any) -> Progress:
    return Progress.from_dict({"current": 1, **kwargs})


def test_a_progress_stored_without_a_unit_counts_iterations() -> None:
    assert plain(total=2).unit is None
    assert render.tqdm_line(plain(total=None, rate=3.0), 1.0, "running") == "1 it [00:01, 3.0 it/s]"
