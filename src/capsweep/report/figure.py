"""The Pareto figure: val_accuracy against trainable parameters, with the recommendation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from capsweep.select import ConfigSummary, Recommendation, pareto_front


def pareto_figure(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> Figure:
    """val_accuracy against trainable params (log), coloured by overfit_gap.

    Draws error bars (one std) for repeated configurations, the Pareto front as a step
    line, the threshold (best minus tolerance) with its band, and circles the
    recommendation. The figure belongs to no pyplot state, so nothing needs closing.
    """
    figure = Figure(figsize=(8, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    sizes = [s.trainable_params for s in summaries]
    accuracies = [s.val_accuracy for s in summaries]
    gaps = [math.nan if s.overfit_gap is None else s.overfit_gap for s in summaries]
    errors = [s.val_accuracy_std or 0.0 for s in summaries]
    if any(errors):
        axis.errorbar(sizes, accuracies, yerr=errors, fmt="none", ecolor="0.6", capsize=3, zorder=1)
    points = axis.scatter(
        sizes,
        accuracies,
        c=gaps,
        cmap="viridis",
        plotnonfinite=True,
        edgecolors="0.2",
        zorder=3,
    )
    if any(not math.isnan(gap) for gap in gaps):
        figure.colorbar(points, ax=axis, label="overfit_gap (train - val accuracy)")
    front = pareto_front(summaries)
    if front:
        axis.step(
            [s.trainable_params for s in front],
            [s.val_accuracy for s in front],
            where="post",
            color="tab:orange",
            label="Pareto front",
            zorder=2,
        )
    if recommendation is not None:
        _draw_recommendation(axis, recommendation, sizes)
    axis.set_xscale("log" if all(size > 0 for size in sizes) else "symlog")
    axis.set_xlabel("trainable parameters (log scale)")
    axis.set_ylabel("val_accuracy")
    axis.set_title("val_accuracy against trainable parameters")
    if front or recommendation is not None:
        axis.legend(loc="lower right", markerscale=0.5)
    return figure


def _draw_recommendation(axis: Any, recommendation: Recommendation, sizes: Sequence[float]) -> None:
    best, chosen = recommendation.best, recommendation.chosen
    axis.axhspan(recommendation.threshold, best.val_accuracy, color="tab:green", alpha=0.1)
    axis.axhline(
        recommendation.threshold,
        color="tab:green",
        linestyle="--",
        label=f"threshold: best - {recommendation.tolerance:.3f}",
    )
    axis.scatter(
        [chosen.trainable_params],
        [chosen.val_accuracy],
        s=400,
        facecolors="none",
        edgecolors="tab:red",
        linewidths=2,
        label="recommended",
        zorder=4,
    )
    # Label towards the middle of the plot, so it stays inside the axes.
    positive = [size for size in sizes if size > 0] or [1.0]
    middle = math.sqrt(min(positive) * max(positive))
    on_right = chosen.trainable_params > middle
    label = axis.annotate(
        chosen.label,
        (chosen.trainable_params, chosen.val_accuracy),
        xytext=(-20 if on_right else 20, -30),
        textcoords="offset points",
        horizontalalignment="right" if on_right else "left",
        color="tab:red",
        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none"},
        arrowprops={"arrowstyle": "->", "color": "tab:red"},
    )
    label.set_in_layout(False)
