"""The Tuning Playbook's figures for a sweep that tunes nuisance hyperparameters.

* The *isolation plot*: each configuration's confirmed score (its chosen candidate
  retrained on fresh seeds) ± one standard error — every configuration at its own best
  nuisance values, the comparison the recommendation makes.
* An *axis plot* per nuisance hyperparameter: every candidate's val_accuracy against its
  value, one colour per configuration, the chosen one ringed, the search range's ends
  drawn: a best value at an end says the range was too narrow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from capsweep.select import ConfigSummary, Recommendation, params_label, standard_error_or_none
from capsweep.select.nuisance import NuisanceRange


def _new_figure(height: float) -> Figure:
    figure = Figure(figsize=(8, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def isolation_figure(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> Figure:
    """Each configuration's score ± one standard error, fewest trainable parameters on top.

    Labels give the configuration and the nuisance values it was compared at; the
    recommended configuration is red, the best by mean bold.
    """
    ordered = sorted(summaries, key=lambda s: (s.trainable_params, s.key))
    figure = _new_figure(1.2 + 0.45 * max(len(ordered), 1))
    axis = figure.add_subplot()
    errors = [standard_error_or_none(s) for s in ordered]
    rows = list(range(len(ordered)))[::-1]
    chosen = recommendation.chosen.key if recommendation else None
    best = recommendation.best.key if recommendation else None
    colours = ["tab:red" if s.key == chosen else "tab:blue" for s in ordered]
    axis.errorbar(
        [s.val_accuracy for s in ordered],
        rows,
        xerr=[math.nan if e is None else e for e in errors],
        fmt="none",
        ecolor="0.5",
        capsize=3,
    )
    axis.scatter([s.val_accuracy for s in ordered], rows, c=colours, zorder=3)
    axis.set_yticks(rows, [_label(s) for s in ordered])
    for tick, summary in zip(axis.get_yticklabels(), ordered, strict=True):
        if summary.key == best:
            tick.set_fontweight("bold")
        if summary.key == chosen:
            tick.set_color("tab:red")
    if recommendation is not None:
        axis.axvline(recommendation.threshold, color="tab:green", linestyle="--")
    axis.set_xlabel("val_accuracy: mean of the confirmations ± one standard error")
    axis.set_title("Each configuration at its own tuned values")
    return figure


def axis_figure(
    summaries: Sequence[ConfigSummary], key: str, searched: NuisanceRange | None
) -> Figure:
    """Every candidate's val_accuracy against its value of ``key``, per configuration.

    Each run is a dot and the line goes through each value's mean (the best candidates
    ran twice); the chosen candidate of each configuration is ringed; pruned candidates
    are hollow (their val_accuracy at the epoch they stopped); the search range's ends
    are dashed.
    The x axis is logarithmic when the range was searched on a log scale.
    """
    figure = _new_figure(5.5)
    axis = figure.add_subplot()
    tuned = [s for s in summaries if s.tuning is not None and key in s.tuning.chosen]
    palette = colormaps["tab10"]
    for index, summary in enumerate(sorted(tuned, key=lambda s: (s.trainable_params, s.key))):
        assert summary.tuning is not None  # filtered above
        colour = palette(index % palette.N)
        runs = [
            (float(c.values[key]), c.val_accuracy, c.state)
            for c in summary.tuning.candidates
            if key in c.values and c.val_accuracy is not None
        ]
        complete = [(x, y) for x, y, state in runs if state == "COMPLETE"]
        if complete:  # each run a dot; the line through each value's mean
            xs, ys = zip(*complete, strict=True)
            axis.scatter(xs, ys, s=12, color=colour, alpha=0.6)
            means = _means(complete)
            axis.plot(*zip(*means, strict=True), "o-", color=colour, label=summary.label)
        pruned = [(x, y) for x, y, state in runs if state == "PRUNED"]
        if pruned:
            axis.scatter(*zip(*pruned, strict=True), facecolors="none", edgecolors=colour)
        chosen = float(summary.tuning.chosen[key])
        picked = [y for x, y in _means(complete) if x == chosen]
        if picked:
            axis.scatter([chosen], picked, s=220, facecolors="none", edgecolors=colour)
    if searched is not None and searched.choices is None:
        for end in (searched.low, searched.high):
            axis.axvline(end, color="0.5", linestyle="--")
    if searched is not None and searched.log:
        axis.set_xscale("log")
    axis.set_xlabel(f"{key}" + (" (log scale)" if searched and searched.log else ""))
    axis.set_ylabel("val_accuracy of the candidate's run")
    axis.set_title(f"{key}: candidates per configuration (ringed: chosen)")
    if tuned:
        figure.legend(loc="outside lower center", ncols=2, fontsize="small")
    return figure


def _means(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The mean of the y values at each x, by x."""
    grouped: dict[float, list[float]] = {}
    for x, y in points:
        grouped.setdefault(x, []).append(y)
    return [(x, sum(ys) / len(ys)) for x, ys in sorted(grouped.items())]


def _label(summary: ConfigSummary) -> str:
    tuning = summary.tuning
    if tuning is None or not tuning.chosen:
        return summary.label
    return f"{summary.label}\n({params_label(tuning.chosen)})"
