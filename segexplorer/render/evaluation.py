"""Drawing an evaluation's curves (matplotlib, no torch): the window's Evaluate panel and
the files ``segexplorer evaluate`` writes draw with the same function.

A target's four curves (deletion and insertion, by segment and by pixel), one colour per
method, the chance band (mean +- one standard deviation of the random rankings) in grey,
and each method's area under the curve in the legend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

CURVE_ORDER = ("deletion_segments", "insertion_segments", "deletion_pixels",
               "insertion_pixels")
CURVE_TITLES = {
    "deletion_segments": "Deletion by segment",
    "insertion_segments": "Insertion by segment",
    "deletion_pixels": "Deletion by pixel",
    "insertion_pixels": "Insertion by pixel",
}
CURVE_X = {
    "deletion_segments": "fraction of segments removed",
    "insertion_segments": "fraction of segments restored",
    "deletion_pixels": "fraction of pixels removed",
    "insertion_pixels": "fraction of pixels restored",
}


@dataclass(frozen=True)
class CurveData:
    x: np.ndarray
    y: np.ndarray
    auc: float


@dataclass(frozen=True)
class BandData:
    x: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    auc_mean: float


@dataclass(frozen=True)
class TargetCurves:
    """What one target's panel draws."""

    title: str  # e.g. "'person' (class 15)"
    curves: Mapping[str, Mapping[str, CurveData]]  # method -> curve name -> data
    chance: Mapping[str, BandData]  # curve name -> band
    labels: Mapping[str, str]  # method -> label
    # curve name -> the best method, or the methods tied for best (an exact tie)
    best: Mapping[str, str | tuple[str, ...] | None]


def method_colors(methods: Sequence[str]) -> dict[str, str]:
    """A distinct colour per method (matplotlib's tab10, in the methods' order)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    out = {}
    for i, m in enumerate(methods):
        r, g, b, _a = cmap(i % 10)
        out[m] = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
    return out


def _is_best(data: TargetCurves, name: str, method: str) -> bool:
    best = data.best.get(name)
    return method == best if isinstance(best, str) else best is not None and method in best


def draw_curve(ax: Any, data: TargetCurves, name: str, colors: Mapping[str, str],
               title: str | None = None, legend: bool = True, compact: bool = False) -> None:
    """One of a target's curves on ``ax``: every method, the chance band, the areas (in
    the legend, or in the table beside a ``compact`` plot, which has no legend of its
    own and shorter axis labels)."""
    band = data.chance.get(name)
    if band is not None and np.isfinite(band.mean).any():
        ax.fill_between(band.x, band.mean - band.std, band.mean + band.std,
                        color="#bbbbbb", alpha=0.5, linewidth=0,
                        label=f"chance (AUC {band.auc_mean:.2f})")
        ax.plot(band.x, band.mean, color="#888888", linewidth=1, linestyle="--")
    for method, per_curve in data.curves.items():
        curve = per_curve.get(name)
        if curve is None:
            continue
        mark = " *" if _is_best(data, name, method) else ""
        ax.plot(curve.x, curve.y, color=colors.get(method, "black"), linewidth=1.6,
                marker="o" if len(curve.x) <= 12 else None, markersize=3,
                label=f"{data.labels.get(method, method)} ({curve.auc:.2f}){mark}")
    ax.set_title(title if title is not None else CURVE_TITLES[name], fontsize=9)
    ax.set_xlabel(CURVE_X[name].replace("fraction of ", "") if compact else CURVE_X[name],
                  fontsize=7 if compact else 8)
    ax.set_ylabel("score / original" if compact else "score / original score",
                  fontsize=7 if compact else 8)
    ax.set_xlim(0, 1)
    ax.tick_params(labelsize=7)
    ax.grid(True, linewidth=0.3, alpha=0.6)
    if legend:
        ax.legend(fontsize=6, loc="best", framealpha=0.7)


def stack_legend(figure: Figure, data: TargetCurves, colors: Mapping[str, str]) -> Any:
    """One legend for the stacked curves, above them, titled with the target: each
    method's colour and chance's band (their areas per curve are in the panel's table)."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles: list[Any] = [Patch(color="#bbbbbb", alpha=0.5, label="chance (mean +- 1 sd)")]
    handles += [Line2D([], [], color=colors.get(m, "black"), linewidth=1.6, marker="o",
                       markersize=3, label=data.labels.get(m, m)) for m in data.curves]
    # one column, titled with the target: two columns were wider than a 270 px dock, and
    # a suptitle beside an "outside" legend was drawn over it
    return figure.legend(handles=handles, loc="outside upper center", ncols=1, fontsize=7,
                         frameon=False, title=data.title, title_fontsize=9)


def draw_target(figure: Figure, data: TargetCurves, *, row: int = 0, rows: int = 1,
                layout: str = "grid", colors: Mapping[str, str] | None = None,
                only: str | None = None) -> None:
    """Draw a target's curves into ``figure``: a 2 x 2 grid (``layout='grid'``), one row
    of four (``'row'``, ``row`` of ``rows``: the CLI's file), one column of four with one
    legend above them (``'stack'``: a narrow panel; the figure needs ``layout=
    'constrained'``), or the curve ``only``."""
    colors = colors or method_colors(list(data.curves))
    if only is not None:
        draw_curve(figure.add_subplot(1, 1, 1), data, only, colors,
                   f"{data.title}\n{CURVE_TITLES[only]}")
        return
    if layout == "stack":
        stack_legend(figure, data, colors)
        for i, name in enumerate(CURVE_ORDER):
            draw_curve(figure.add_subplot(len(CURVE_ORDER), 1, i + 1), data, name, colors,
                       legend=False, compact=True)
        return
    for i, name in enumerate(CURVE_ORDER):
        if layout == "grid":
            ax = figure.add_subplot(2, 2, i + 1)
        else:
            ax = figure.add_subplot(rows, 4, row * 4 + i + 1)
        draw_curve(ax, data, name, colors,
                   f"{data.title}: {CURVE_TITLES[name]}" if layout == "row" else None)
    if layout == "grid":
        figure.suptitle(f"{data.title}: area under each curve in brackets, * the best "
                        "(lowest for deletion, highest for insertion)", fontsize=9)


def curves_figure(targets: Sequence[TargetCurves], width_in: float = 16.0) -> Figure:
    """One row of four panels per target (the file ``segexplorer evaluate`` writes)."""
    rows = max(1, len(targets))
    figure = Figure(figsize=(width_in, 3.4 * rows), dpi=110, layout="constrained")
    methods: list[str] = []
    for t in targets:
        methods.extend(m for m in t.curves if m not in methods)
    colors = method_colors(methods)
    for i, data in enumerate(targets):
        draw_target(figure, data, row=i, rows=rows, layout="row", colors=colors)
    return figure
