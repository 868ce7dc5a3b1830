"""Result values of the benchmark: rows per contender, targets, and their JSON.

A scenario gives one :class:`Row` per contender (``metrics``: numbers, or the
string ``"never"`` where that is the honest answer; a skipped contender has
``skipped`` set to the reason and no metrics), the issue's :class:`Target`
checks evaluated on those rows, and optional time series for the plots.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Metric", "Row", "ScenarioResult", "Target", "check"]

Metric = float | int | str | None


@dataclass(frozen=True)
class Row:
    """One contender's numbers in one scenario (or why it was skipped)."""

    contender: str
    metrics: Mapping[str, Metric] = field(default_factory=dict)
    skipped: str | None = None
    case: str = ""  # e.g. "unary c=32" when a scenario has several cases

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"contender": self.contender}
        if self.case:
            doc["case"] = self.case
        if self.skipped is not None:
            doc["skipped"] = self.skipped
        doc.update({k: _clean(v) for k, v in self.metrics.items()})
        return doc


@dataclass(frozen=True)
class Target:
    """One target of the issue, evaluated: ``value op goal``; ``by``: the margin."""

    scenario: str
    contender: str
    metric: str
    op: str  # ">=", "<=", "<", "=="
    goal: float
    value: float | None
    met: bool
    by: float | None  # how far past (>0) or short of (<0) the goal, in the metric's unit
    case: str = ""
    note: str = ""

    def describe(self) -> str:
        where = f"{self.contender} {self.case}".strip()
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        verdict = "met" if self.met else "MISSED"
        by = "" if self.by is None else f" (by {abs(self.by):.3g})"
        note = f"; {self.note}" if self.note else ""
        return (
            f"{where}: {self.metric} = {value}, target {self.op} {self.goal:g}: {verdict}{by}{note}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "contender": self.contender,
            "case": self.case,
            "metric": self.metric,
            "target": f"{self.op} {self.goal:g}",
            "value": _clean(self.value),
            "met": self.met,
            "by": _clean(self.by),
            "note": self.note,
        }


_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda v, g: v >= g,
    "<=": lambda v, g: v <= g,
    "<": lambda v, g: v < g,
    "==": lambda v, g: v == g,
}


def check(
    scenario: str,
    contender: str,
    metric: str,
    value: Metric,
    op: str,
    goal: float,
    *,
    case: str = "",
    note: str = "",
) -> Target:
    """Evaluate ``value op goal``; a missing or non-numeric value is a miss."""
    number = value if isinstance(value, int | float) and not math.isnan(value) else None
    if number is None:
        return Target(scenario, contender, metric, op, goal, None, False, None, case, note)
    met = _OPS[op](float(number), goal)
    by = float(number) - goal if op in (">=", "==") else goal - float(number)
    return Target(scenario, contender, metric, op, goal, float(number), met, by, case, note)


@dataclass
class ScenarioResult:
    """Everything one scenario produced."""

    name: str
    title: str
    columns: Sequence[str]  # metric names shown in the markdown table, in order
    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    series: dict[str, Any] = field(default_factory=dict)  # for the plots
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "params": self.params,
            "seconds": round(self.seconds, 1),
            "columns": list(self.columns),
            "rows": [r.to_json() for r in self.rows],
            "targets": [t.to_json() for t in self.targets],
            "notes": self.notes,
            "series": self.series,
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        return round(value, 6)
    return value
