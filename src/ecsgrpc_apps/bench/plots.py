"""PNG plots of a benchmark document (matplotlib, Agg backend: no display needed).

* ``overhead_throughput.png``: calls/s per contender, per case;
* ``overhead_latency.png``: p50 and p99 per contender, per case;
* ``task_killed_timeline.png``, ``rolling_deploy_timeline.png``,
  ``scale_out_timeline.png``: calls started per 0.5 s by serving agent (and
  failed), one panel per contender, the event at t = 0;
* ``silent_failure_freeze_timeline.png``, ``silent_failure_black_hole_timeline.png``:
  the same timeline, fault from t = 0 to its end;
* ``slow_task.png``: the slow agent's share of calls and p99 per contender;
* ``client_scale.png``: resolution + rebuild and pick cost against endpoints.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

__all__ = ["write_plots"]


def _plt() -> Any:
    try:
        import matplotlib
    except ImportError as exc:
        raise RuntimeError(
            "plots need matplotlib: pip install 'ecsgrpc[bench]' (or drop --plots)"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def write_plots(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write every plot the document has data for into ``out``; return their paths."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    scenarios = doc["scenarios"]
    written: list[Path] = []
    if "overhead" in scenarios:
        written += _overhead(plt, scenarios["overhead"], out)
    for name in ("task_killed", "rolling_deploy", "scale_out"):
        if name in scenarios:
            written.append(_timeline(plt, name, scenarios[name], out))
    if "slow_task" in scenarios:
        written.append(_slow(plt, scenarios["slow_task"], out))
    if "silent_failure" in scenarios:
        written += _silent(plt, scenarios["silent_failure"], out)
    if "client_scale" in scenarios:
        written.append(_scale(plt, scenarios["client_scale"], out))
    return written


def _rows(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in scenario["rows"] if "skipped" not in r]


def _overhead(plt: Any, scenario: dict[str, Any], out: Path) -> list[Path]:
    rows = _rows(scenario)
    cases = sorted({r["case"] for r in rows})
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    by = {(r["case"], r["contender"]): r for r in rows}
    paths = []
    for metric_sets, fname, ylabel in (
        ((("calls_per_second", ""),), "overhead_throughput.png", "calls/s"),
        ((("p50_ms", "p50"), ("p99_ms", "p99")), "overhead_latency.png", "ms"),
    ):
        fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 4.5), squeeze=False)
        for ax, case in zip(axes[0], cases, strict=True):
            width = 0.8 / len(metric_sets)
            for k, (metric, label) in enumerate(metric_sets):
                values = [(by.get((case, c)) or {}).get(metric) or 0 for c in contenders]
                xs = [i + k * width for i in range(len(contenders))]
                ax.bar(xs, values, width=width, label=label or None)
            ax.set_title(case)
            ax.set_xticks([i + width * (len(metric_sets) - 1) / 2 for i in range(len(contenders))])
            ax.set_xticklabels(contenders, rotation=60, ha="right", fontsize=7)
            ax.set_ylabel(ylabel)
            if len(metric_sets) > 1:
                ax.legend(fontsize=7)
        fig.suptitle(f"Overhead ({ylabel}), 3 agents, median of interleaved rounds")
        fig.tight_layout()
        path = out / fname
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def _timeline(plt: Any, name: str, scenario: dict[str, Any], out: Path) -> Path:
    series = {k: v for k, v in scenario["series"].items() if not k.startswith("_")}
    events = scenario["series"].get("_events", [])
    fig, axes = plt.subplots(
        len(series), 1, figsize=(9, 1.7 * len(series) + 0.8), sharex=True, squeeze=False
    )
    for ax, (contender, data) in zip(axes[:, 0], series.items(), strict=True):
        step, start = data["bin_seconds"], data["start"]
        for agent, counts in data["by_agent"].items():
            xs = [start + i * step for i in range(len(counts))]
            rates = [c / step for c in counts]
            style = {"color": "red", "linewidth": 2} if agent == "failed" else {}
            ax.plot(xs, rates, label=_short(agent), **style)
        for event in events:
            ax.axvline(event["t"], color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel("calls/s", fontsize=7)
        ax.set_title(contender, fontsize=8, loc="left")
        ax.legend(fontsize=6, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel("seconds from the event")
    title = textwrap.fill(f"{scenario['title']}: calls started per agent", 90)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out / f"{name}_timeline.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _silent(plt: Any, scenario: dict[str, Any], out: Path) -> list[Path]:
    """One timeline per fault case (series are keyed ``case/contender``)."""
    paths = []
    series = scenario["series"]
    for case in ("freeze", "black_hole"):
        mine = {k.split("/", 1)[1]: v for k, v in series.items() if k.startswith(f"{case}/")}
        if not mine:
            continue
        sub = {
            "title": f"{scenario['title']} [{case}]",
            "series": {**mine, "_events": series.get("_events", [])},
        }
        paths.append(_timeline(plt, f"silent_failure_{case}", sub, out))
    return paths


def _short(agent: str) -> str:
    return agent[:8] if len(agent) == 32 else agent


def _slow(plt: Any, scenario: dict[str, Any], out: Path) -> Path:
    rows = _rows(scenario)
    names = [r["contender"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(names, [r.get("slow_share") or 0 for r in rows])
    left.axhline(0.15, color="grey", linestyle=":")
    left.set_title("share of calls on the slow agent")
    right.bar(names, [r.get("p99_ms") or 0 for r in rows])
    right.set_title("p99 of all calls (ms)")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    fig.tight_layout()
    path = out / "slow_task.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _scale(plt: Any, scenario: dict[str, Any], out: Path) -> Path:
    rows = _rows(scenario)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for contender in dict.fromkeys(r["contender"] for r in rows):
        mine = [r for r in rows if r["contender"] == contender]
        sizes = [int(r["case"].split()[0]) for r in mine]
        left.plot(sizes, [r["resolve_rebuild_ms"] for r in mine], marker="o", label=contender)
        right.plot(sizes, [r["pick_us"] for r in mine], marker="o", label=contender)
    left.axhline(20, color="grey", linestyle=":")
    right.axhline(20, color="grey", linestyle=":")
    left.set_title("resolution + rebuild (ms), 1 % churn")
    right.set_title("pick (us)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("endpoints")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = out / "client_scale.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
