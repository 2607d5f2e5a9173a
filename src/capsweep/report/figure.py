"""The Pareto figure: val_accuracy against trainable parameters, with the recommendation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from capsweep.select import (
    ConfigSummary,
    Recommendation,
    considered,
    pareto_front,
    standard_error_or_none,
)

ERROR_LABEL = "± one standard error"
LEFT_OUT_LABEL = "left out: overfit_gap > {limit:g}"


def pareto_figure(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> Figure:
    """val_accuracy against trainable params (log), coloured by overfit_gap.

    Draws every point with error bars of ± one standard error, the one the pick rule
    uses (:func:`capsweep.select.standard_error`: of the repeats, or the Wilson
    half-width for a single run); crosses out configurations over ``max_overfit_gap``;
    draws the Pareto front of the configurations the recommendation considered as a
    step line, the threshold (best minus tolerance) with its band, and circles the
    recommendation. The legend sits below the axes, clear of the points. The figure
    belongs to no pyplot state, so nothing needs closing.
    """
    figure = Figure(figsize=(8, 6), layout="constrained")
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    sizes = [s.trainable_params for s in summaries]
    accuracies = [s.val_accuracy for s in summaries]
    gaps = [math.nan if s.overfit_gap is None else s.overfit_gap for s in summaries]
    errors = [standard_error_or_none(s) for s in summaries]
    if any(error is not None for error in errors):
        axis.errorbar(
            sizes,
            accuracies,
            yerr=[math.nan if error is None else error for error in errors],
            fmt="none",
            ecolor="0.6",
            capsize=3,
            zorder=1,
            label=ERROR_LABEL,
        )
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
    pool = considered(summaries, recommendation)
    if recommendation is not None and recommendation.max_overfit_gap is not None:
        kept = {s.key for s in pool}
        left_out = [s for s in summaries if s.key not in kept]
        _cross_out(left_out, axis, LEFT_OUT_LABEL.format(limit=recommendation.max_overfit_gap))
    front = pareto_front(pool)
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
    handles, labels = axis.get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=3, markerscale=0.5)
    return figure


def _cross_out(left_out: Sequence[ConfigSummary], axis: Any, label: str) -> None:
    if left_out:
        axis.scatter(
            [s.trainable_params for s in left_out],
            [s.val_accuracy for s in left_out],
            marker="x",
            s=120,
            color="0.2",
            label=label,
            zorder=4,
        )


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
