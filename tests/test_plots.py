"""The benchmark plots: one colour per contender everywhere, legends off the data,
labelled target lines. Drawn from the committed benchmark document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("matplotlib")

from matplotlib.colors import to_hex

from ecsgrpc_apps.bench.plots import (
    FAILED_COLOUR,
    build_figures,
    contender_colours,
    write_plots,
)

DOC = json.loads((Path(__file__).parents[1] / "docs" / "benchmarks.json").read_text())


@pytest.fixture(scope="module")
def figures() -> Any:
    import matplotlib.pyplot as plt

    built = build_figures(DOC)
    for fig in built.values():
        fig.canvas.draw()  # lay out, so legend and axes positions are final
    yield built
    for fig in built.values():
        plt.close(fig)


def _contender_colours_used(fig: Any, colours: dict[str, str]) -> dict[str, set[str]]:
    """Per contender name: the colours of the bars / lines / titles that carry it."""
    used: dict[str, set[str]] = {}
    for ax in fig.axes:
        names = [t.get_text() for t in ax.get_xticklabels()]
        for container in ax.containers:
            for name, patch in zip(names, container.patches, strict=False):
                if name in colours:
                    used.setdefault(name, set()).add(to_hex(patch.get_facecolor()))
        for line in ax.get_lines():
            if line.get_label() in colours:
                used.setdefault(str(line.get_label()), set()).add(to_hex(line.get_color()))
        title = ax.get_title(loc="left")
        if title in colours:
            used.setdefault(title, set()).add(to_hex(ax._left_title.get_color()))
    return used


def test_each_contender_has_one_colour_in_every_plot(figures: dict[str, Any]) -> None:
    colours = contender_colours(DOC)
    assert len(set(colours.values())) == len(colours)  # distinct
    assert FAILED_COLOUR not in colours.values()  # red stays for failed calls
    seen: dict[str, set[str]] = {}
    for name, fig in figures.items():
        for contender, used in _contender_colours_used(fig, colours).items():
            seen.setdefault(contender, set()).update(used)
            assert used == {colours[contender]}, (name, contender, used)
    # Every contender appears somewhere, always in its own colour.
    assert set(seen) == set(colours)


def test_legends_are_outside_the_plotting_area(figures: dict[str, Any]) -> None:
    checked = 0
    for name, fig in figures.items():
        renderer = fig.canvas.get_renderer()
        for ax in fig.axes:
            legend = ax.get_legend()
            if legend is None:
                continue
            box = legend.get_window_extent(renderer)
            area = ax.get_window_extent(renderer)
            assert box.x0 >= area.x1, (name, ax.get_title())  # to the right of the data
            checked += 1
    assert checked >= 5


def test_target_lines_are_drawn_and_labelled(figures: dict[str, Any]) -> None:
    def target_lines(fig: Any) -> list[tuple[str, float]]:
        return [
            (str(line.get_label()), float(line.get_ydata()[0]))
            for ax in fig.axes
            for line in ax.get_lines()
            if str(line.get_label()).startswith("target ")
        ]

    slow = target_lines(figures["slow_task.png"])
    assert ("target < 0.15 (ecsgrpc_least_request)", 0.15) in slow
    scale = target_lines(figures["client_scale.png"])
    assert ("target < 20", 20.0) in scale
    # Labelled where the reader looks: in the legend of the same panel.
    for ax in figures["client_scale.png"].axes:
        legend = ax.get_legend()
        assert legend is not None
        assert "target < 20" in [t.get_text() for t in legend.get_texts()]
    # The timelines name their event at t = 0.
    killed = figures["task_killed_timeline.png"]
    texts = [t.get_text() for ax in killed.axes for t in ax.texts]
    assert any(t.startswith("SIGKILL") for t in texts), texts


def test_write_plots_writes_every_png(tmp_path: Path) -> None:
    written = write_plots(DOC, tmp_path)
    assert sorted(p.name for p in written) == sorted(build_figures(DOC))
    assert all(p.stat().st_size > 10_000 for p in written)
