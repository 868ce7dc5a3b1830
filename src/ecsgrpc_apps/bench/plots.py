"""PNG plots of a benchmark document (matplotlib, Agg backend: no display needed).

* ``overhead_throughput.png``: calls/s per contender, per case;
* ``overhead_latency.png``: p50 (solid) and p99 (hatched) per contender, per case;
* ``task_killed_timeline.png``, ``rolling_deploy_timeline.png``,
  ``scale_out_timeline.png``: calls started per 0.5 s by serving agent (and
  failed), one panel per contender, the labelled event at t = 0;
* ``silent_failure_freeze_timeline.png``, ``silent_failure_black_hole_timeline.png``:
  the same timeline, fault from t = 0 to its end;
* ``slow_task.png``: the slow agent's share of calls and p99 per contender;
* ``client_scale.png``: resolution + rebuild and pick cost against endpoints.

Every plot gives a contender the same colour (:func:`contender_colours`, in
the order the document first names them), keeps its legend outside the
plotting area, and draws the document's numeric targets for the plotted
metric as dashed lines with their label.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

__all__ = ["build_figures", "contender_colours", "write_plots"]

# matplotlib's "tab10" (colour-blind-friendlier than the default cycle's order
# for up to 10 names); red is kept for failed calls in the timelines.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8",
)  # fmt: skip
FAILED_COLOUR = "#d62728"
_AGENT_GREYS = ("#222222", "#666666", "#999999", "#444444", "#bbbbbb")
_DASHES = ("-", "--", "-.", ":", (0, (5, 1, 1, 1)))
_NUMBER = re.compile(r"^\s*(<=|>=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$")


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


def contender_colours(doc: dict[str, Any]) -> dict[str, str]:
    """One colour per contender, the same in every plot of ``doc``."""
    names: dict[str, None] = {}
    for scenario in doc["scenarios"].values():
        for row in scenario.get("rows", ()):
            if "contender" in row:
                names.setdefault(row["contender"])
        for key in scenario.get("series", {}):
            if not key.startswith("_"):
                names.setdefault(key)
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def build_figures(doc: dict[str, Any]) -> dict[str, Any]:
    """``{file name: matplotlib Figure}`` for every plot ``doc`` has data for."""
    plt = _plt()
    colours = contender_colours(doc)
    scenarios = doc["scenarios"]
    figures: dict[str, Any] = {}
    if "overhead" in scenarios:
        figures.update(_overhead(plt, scenarios["overhead"], colours))
    for name in ("task_killed", "rolling_deploy", "scale_out"):
        if name in scenarios:
            figures[f"{name}_timeline.png"] = _timeline(plt, scenarios[name], colours)
    if "slow_task" in scenarios:
        figures["slow_task.png"] = _slow(plt, scenarios["slow_task"], colours)
    if "silent_failure" in scenarios:
        figures.update(_silent(plt, scenarios["silent_failure"], colours))
    if "gateway_overload" in scenarios:
        from ecsgrpc_apps.bench.gateway_overload import plot

        figures["gateway_overload.png"] = plot(plt, scenarios["gateway_overload"])
    if "client_scale" in scenarios:
        figures["client_scale.png"] = _scale(plt, scenarios["client_scale"], colours)
    return figures


def write_plots(doc: dict[str, Any], out: Path) -> list[Path]:
    """Write every plot the document has data for into ``out``; return their paths."""
    plt = _plt()
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in build_figures(doc).items():
        path = out / name
        # bbox "tight" keeps the legends placed outside the axes in the image.
        fig.savefig(path, dpi=90, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def _rows(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in scenario["rows"] if "skipped" not in r]


def _outside_legend(ax: Any, **kw: Any) -> None:
    """The legend to the right of the axes, never over the data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, **kw)


def _targets(
    ax: Any, scenario: dict[str, Any], metric: str, colours: dict[str, str], case: str = ""
) -> None:
    """Dashed line per numeric target on ``metric`` (of ``case``, when given), labelled;
    in the contender's colour when only one contender has that target."""
    owners: dict[str, set[str]] = {}
    for target in scenario.get("targets", ()):
        if target.get("metric") != metric or (case and target.get("case") not in ("", case)):
            continue
        if _NUMBER.match(str(target.get("target", ""))) is not None:
            owners.setdefault(target["target"], set()).add(str(target.get("contender") or ""))
    for text, who in owners.items():
        match = _NUMBER.match(text)
        assert match is not None
        only = next(iter(who)) if len(who) == 1 else ""
        label = f"target {text}" + (f" ({only})" if only else "")
        colour = colours.get(only, "grey")
        ax.axhline(float(match.group(2)), color=colour, linestyle="--", linewidth=1, label=label)


def _overhead(plt: Any, scenario: dict[str, Any], colours: dict[str, str]) -> dict[str, Any]:
    rows = _rows(scenario)
    cases = sorted({r["case"] for r in rows})
    contenders = list(dict.fromkeys(r["contender"] for r in rows))
    by = {(r["case"], r["contender"]): r for r in rows}
    figures = {}
    for metric_sets, fname, ylabel in (
        ((("calls_per_second", ""),), "overhead_throughput.png", "calls/s"),
        ((("p50_ms", "p50"), ("p99_ms", "p99")), "overhead_latency.png", "ms"),
    ):
        fig, axes = plt.subplots(1, len(cases), figsize=(4 * len(cases), 4.5), squeeze=False)
        for ax, case in zip(axes[0], cases, strict=True):
            width = 0.8 / len(metric_sets)
            for k, (metric, _label) in enumerate(metric_sets):
                values = [(by.get((case, c)) or {}).get(metric) or 0 for c in contenders]
                xs = [i + k * width for i in range(len(contenders))]
                ax.bar(
                    xs,
                    values,
                    width=width,
                    color=[colours[c] for c in contenders],
                    hatch="//" if k else None,
                    edgecolor="white" if k else None,
                    label=None,
                )
                _targets(ax, scenario, metric, colours, case)
            ax.set_title(case)
            ax.set_xticks([i + width * (len(metric_sets) - 1) / 2 for i in range(len(contenders))])
            ax.set_xticklabels(contenders, rotation=60, ha="right", fontsize=7)
            ax.set_ylabel(ylabel)
        if len(metric_sets) > 1:  # which bar is which: a legend outside the last panel
            from matplotlib.patches import Patch

            axes[0][-1].legend(
                handles=[
                    Patch(facecolor="grey", label="p50"),
                    Patch(facecolor="grey", hatch="//", edgecolor="white", label="p99"),
                ],
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                fontsize=7,
            )
        fig.suptitle(f"Overhead ({ylabel}), 3 agents, median of interleaved rounds")
        fig.tight_layout()
        figures[fname] = fig
    return figures


def _timeline(plt: Any, scenario: dict[str, Any], colours: dict[str, str]) -> Any:
    series = {k: v for k, v in scenario["series"].items() if not k.startswith("_")}
    events = scenario["series"].get("_events", [])
    fig, axes = plt.subplots(
        len(series), 1, figsize=(9, 1.7 * len(series) + 0.8), sharex=True, squeeze=False
    )
    for ax, (contender, data) in zip(axes[:, 0], series.items(), strict=True):
        step, start = data["bin_seconds"], data["start"]
        agents = [a for a in data["by_agent"] if a != "failed"]
        for agent, counts in data["by_agent"].items():
            xs = [start + i * step for i in range(len(counts))]
            rates = [c / step for c in counts]
            ax.plot(xs, rates, label=_short(agent), **_agent_style(agent, agents))
        for event in events:
            ax.axvline(event["t"], color="grey", linestyle=":", linewidth=1)
            if ax is axes[0, 0] and event.get("label"):
                ax.annotate(
                    event["label"],
                    xy=(event["t"], 1.0),
                    xycoords=("data", "axes fraction"),
                    xytext=(3, 2),
                    textcoords="offset points",
                    fontsize=7,
                    color="dimgrey",
                    va="bottom",
                )
        ax.set_ylabel("calls/s", fontsize=7)
        colour = colours.get(contender, "black")
        ax.set_title(contender, fontsize=8, loc="left", color=colour, fontweight="bold")
        for side in ("left", "top", "right", "bottom"):
            ax.spines[side].set_edgecolor(colour)
        _outside_legend(ax, ncol=1)
    axes[-1, 0].set_xlabel("seconds from the event")
    title = textwrap.fill(f"{scenario['title']}: calls started per agent", 90)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _agent_style(agent: str, agents: list[str]) -> dict[str, Any]:
    """Agents in shades of grey and dashes (colours belong to contenders), failed in red."""
    if agent == "failed":
        return {"color": FAILED_COLOUR, "linewidth": 2}
    i = agents.index(agent)
    return {"color": _AGENT_GREYS[i % len(_AGENT_GREYS)], "linestyle": _DASHES[i % len(_DASHES)]}


def _silent(plt: Any, scenario: dict[str, Any], colours: dict[str, str]) -> dict[str, Any]:
    """One timeline per fault case (series are keyed ``case/contender``)."""
    figures: dict[str, Any] = {}
    series = scenario["series"]
    for case in ("freeze", "black_hole"):
        mine = {k.split("/", 1)[1]: v for k, v in series.items() if k.startswith(f"{case}/")}
        if not mine:
            continue
        sub = {
            "title": f"{scenario['title']} [{case}]",
            "series": {**mine, "_events": series.get("_events", [])},
        }
        figures[f"silent_failure_{case}_timeline.png"] = _timeline(plt, sub, colours)
    return figures


def _short(agent: str) -> str:
    return agent[:8] if len(agent) == 32 else agent


def _slow(plt: Any, scenario: dict[str, Any], colours: dict[str, str]) -> Any:
    rows = _rows(scenario)
    names = [r["contender"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    bar_colours = [colours[n] for n in names]
    left.bar(names, [r.get("slow_share") or 0 for r in rows], color=bar_colours)
    _targets(left, scenario, "slow_share", colours)
    left.set_title("share of calls on the slow agent")
    right.bar(names, [r.get("p99_ms") or 0 for r in rows], color=bar_colours)
    _targets(right, scenario, "p99_ms", colours)
    right.set_title("p99 of all calls (ms)")
    for ax in (left, right):
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
        _outside_legend(ax)
    fig.tight_layout()
    return fig


def _scale(plt: Any, scenario: dict[str, Any], colours: dict[str, str]) -> Any:
    rows = _rows(scenario)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for contender in dict.fromkeys(r["contender"] for r in rows):
        mine = [r for r in rows if r["contender"] == contender]
        sizes = [int(r["case"].split()[0]) for r in mine]
        style = {"marker": "o", "label": contender, "color": colours[contender]}
        left.plot(sizes, [r["resolve_rebuild_ms"] for r in mine], **style)
        right.plot(sizes, [r["pick_us"] for r in mine], **style)
    _targets(left, scenario, "resolve_rebuild_ms", {})
    _targets(right, scenario, "pick_us", {})
    left.set_title("resolution + rebuild (ms), 1 % churn")
    right.set_title("pick (us)")
    for ax in (left, right):
        ax.set_xscale("log")
        ax.set_xlabel("endpoints")
        _outside_legend(ax)
    fig.tight_layout()
    return fig
