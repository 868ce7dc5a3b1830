"""The benchmark's outputs: the JSON document and the markdown tables."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

from ecsgrpc_apps.bench.results import Metric, ScenarioResult

__all__ = ["document", "machine", "markdown"]


def machine() -> dict[str, Any]:
    """Where it ran: CPU count and model, Python, grpcio (the run is only comparable there)."""
    import grpc

    model = ""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "grpcio": grpc.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


def document(
    results: Sequence[ScenarioResult],
    *,
    command: str,
    settings: dict[str, Any],
    env: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """The JSON file's content."""
    targets = [t.to_json() for r in results for t in r.targets]
    return {
        "command": command,
        "machine": env,
        "settings": settings,
        "seconds": round(seconds, 1),
        "scenarios": {r.name: r.to_json() for r in results},
        "targets": targets,
        "targets_met": sum(1 for t in targets if t["met"]),
        "targets_total": len(targets),
    }


def _fmt(value: Metric) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, str):
        return value or "-"
    if isinstance(value, int):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(result: ScenarioResult) -> str:
    """One scenario as a markdown table (a case column when the scenario has cases).

    Rows of one case are together, the cases in the order they ran (not sorted
    by name: ``0.5x``, ``1x``, ``1.5x``, ``2x``, not ``1.5x`` before ``1x``).
    """
    has_case = any(r.case for r in result.rows)
    head = (["case"] if has_case else []) + ["contender", *result.columns]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    first: dict[str, int] = {}
    for i, r in enumerate(result.rows):
        first.setdefault(r.case, i)
    rows = sorted(result.rows, key=lambda r: first[r.case])
    for row in rows:
        cells = [row.case] if has_case else []
        cells.append(row.contender)
        if row.skipped is not None:
            cells += [f"skipped: {row.skipped}"] + [""] * (len(result.columns) - 1)
        else:
            cells += [_fmt(row.metrics.get(c)) for c in result.columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: Sequence[ScenarioResult]) -> str:
    """Every scenario's table, then every target with its verdict."""
    parts = []
    for r in results:
        parts.append(f"### {r.title}\n\n{table(r)}")
        parts.extend(f"\n{note}" for note in r.notes)
    targets = [t for r in results for t in r.targets]
    if targets:
        met = sum(1 for t in targets if t.met)
        lines = [f"### Targets: {met} of {len(targets)} met\n"]
        lines += [f"- {t.scenario}: {t.describe()}" for t in targets]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"
