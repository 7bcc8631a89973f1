"""Results of a run: per-contender samples and medians, markdown tables, target ratios."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from plan import Ref, Section, Target

Metrics = dict[str, float]
MISSING = "-"
RESULT = {True: "PASS", False: "MISS", None: "n/a"}


@dataclass
class Runs:
    """Every run of one contender in one section (or fixture)."""

    samples: list[Metrics] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    def add(self, outcome: dict[str, Any]) -> None:
        if "skipped" in outcome:
            self.skipped = str(outcome["skipped"])
        elif "error" in outcome:
            self.error = str(outcome["error"])
        else:
            self.samples.append({k: float(v) for k, v in outcome.items()})

    @property
    def over(self) -> bool:
        """No more runs: skipped or failed."""
        return self.skipped is not None or self.error is not None

    def median(self) -> Metrics:
        if self.error is not None or not self.samples:
            return {}
        return {k: statistics.median(s[k] for s in self.samples) for k in self.samples[0]}

    def summary(self) -> str:
        if self.skipped is not None:
            return f"skipped: {self.skipped}"
        if self.error is not None:
            return f"ERROR: {self.error.splitlines()[-1] if self.error else ''}"
        return ", ".join(f"{k}={_num(v)}" for k, v in self.samples[-1].items())

    def to_json(self) -> dict[str, Any]:
        return {
            "median": self.median(),
            "samples": self.samples,
            "skipped": self.skipped,
            "error": self.error,
        }


Results = dict[str, dict[str, Runs]]


def _num(v: float) -> str:
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"


def section_table(section: Section, runs: dict[str, Runs]) -> list[str]:
    """A markdown table (contenders x columns of medians) with its notes below."""
    head = ["contender", *(c.label for c in section.columns), "runs"]
    lines = [f"#### {section.title}", "", _row(head), _row(["---"] * len(head))]
    notes = list(section.notes)
    for contender, r in runs.items():
        med = r.median()
        cells = [
            format(med[c.metric], c.fmt) if c.metric in med else MISSING for c in section.columns
        ]
        lines.append(_row([contender, *cells, str(len(r.samples))]))
        if r.over:
            notes.append(f"{contender}: {r.summary()}")
    return [*lines, "", *(f"- {n}" for n in notes), ""]


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


@dataclass(frozen=True)
class Verdict:
    target: Target
    value: float | None
    versus: float | None
    ratio_text: str
    passed: bool | None

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target.label,
            "value": self.value,
            "versus": self.versus,
            "ratio": None if self.value is None or not self.versus else self.value / self.versus,
            "bound": self.target.bound,
            "at_least": self.target.at_least,
            "result": RESULT[self.passed],
        }


def _lookup(results: Results, ref: Ref) -> float | None:
    runs = results.get(ref.section, {}).get(ref.contender)
    return None if runs is None else runs.median().get(ref.metric)


def judge(target: Target, results: Results) -> Verdict:
    """Measured ratio of one target, PASS / MISS, or n/a when a side was not measured."""
    value = _lookup(results, target.value)
    mine = target.value.contender
    if isinstance(target.versus, Ref):
        versus, name = _lookup(results, target.versus), target.versus.contender
        if name == mine:  # two metrics of one contender: name the metrics
            mine, name = target.value.metric, target.versus.metric
    else:
        versus, name = target.versus, f"{_num(target.versus)} {target.unit}".strip()
    if value is None or not versus:
        return Verdict(target, value, versus, "n/a", None)
    ratio = value / versus
    sign = "≥" if target.at_least else "≤"
    text = f"{mine} / {name} = {ratio:.3g}x (need {sign} {target.bound:g}x)"
    passed = ratio >= target.bound if target.at_least else ratio <= target.bound
    return Verdict(target, value, versus, text, passed)


def targets_table(verdicts: list[Verdict]) -> list[str]:
    lines = ["#### Targets", "", _row(["target", "measured", "ratio", ""]), _row(["---"] * 4)]
    for v in verdicts:
        measured = MISSING if v.value is None else _num(v.value)
        lines.append(_row([v.target.label, measured, v.ratio_text, RESULT[v.passed]]))
    return [*lines, ""]
