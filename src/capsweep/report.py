"""Show a sweep's results: a ranked table, a Pareto figure, and the files of a report.

Works on :class:`~capsweep.pick.TrialRecord` and the pick module's summaries only; never
imports TensorFlow, Keras, MLflow or Optuna.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from rich.table import Table

from capsweep.pick import ConfigSummary, Recommendation, TrialRecord, pareto_front

RECOMMENDED_MARK = "★"
PARETO_MARK = "◆"
_RECORD_COLUMNS = ["number", "state", "repeat", "run_id"]


def _format(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _marks(summaries: Sequence[ConfigSummary], recommendation: Recommendation | None) -> list[str]:
    front = {summary.key for summary in pareto_front(summaries)}
    chosen = recommendation.chosen.key if recommendation else None
    return [
        (RECOMMENDED_MARK if s.key == chosen else "") + (PARETO_MARK if s.key in front else "")
        for s in summaries
    ]


def trials_table(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> Table:
    """The configurations ranked by mean val_accuracy, the recommended one in bold.

    Args:
        summaries: What :func:`capsweep.pick.summarize` returned.
        recommendation: What :func:`capsweep.pick.recommend` returned, or ``None`` when
            there is none to mark.
    """
    ranked = sorted(summaries, key=lambda s: (-s.val_accuracy, s.trainable_params, s.key))
    caption = f"{RECOMMENDED_MARK} recommended  {PARETO_MARK} Pareto front"
    table = Table(title="capsweep configurations", caption=caption, caption_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("rank", justify="right")
    table.add_column("params")
    for name in ("val_accuracy", "trainable_params", "overfit_gap", "fit_seconds"):
        table.add_column(name, justify="right")
    table.add_column("test_accuracy", justify="right")
    table.add_column("n", justify="right")
    chosen = recommendation.chosen.key if recommendation else None
    for rank, (summary, mark) in enumerate(
        zip(ranked, _marks(ranked, recommendation), strict=True), start=1
    ):
        accuracy = f"{summary.val_accuracy:.3f}"
        if summary.val_accuracy_std is not None:
            accuracy += f" ± {summary.val_accuracy_std:.3f}"
        table.add_row(
            mark,
            str(rank),
            summary.label,
            accuracy,
            f"{summary.trainable_params:,.0f}",
            _format(summary.overfit_gap, ".3f"),
            _format(summary.fit_seconds, ".1f"),
            _format(summary.test_accuracy, ".3f"),
            str(summary.n),
            style="bold" if summary.key == chosen else None,
        )
    return table


def records_frame(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """One row per trial of any state: number, state, repeat, run_id, params.*, metrics."""
    rows: list[dict[str, Any]] = []
    param_columns: dict[str, None] = {}
    metric_columns: dict[str, None] = {}
    for record in sorted(records, key=lambda record: (record.number, record.repeat)):
        row: dict[str, Any] = {
            "number": record.number,
            "state": record.state,
            "repeat": record.repeat,
            "run_id": record.run_id,
        }
        for name, value in record.params.items():
            param_columns.setdefault(f"params.{name}")
            row[f"params.{name}"] = value
        for name, metric in record.metrics.items():
            metric_columns.setdefault(name)
            row[name] = metric
        rows.append(row)
    columns = _RECORD_COLUMNS + sorted(param_columns) + list(metric_columns)
    return pd.DataFrame(rows, columns=columns)


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


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary sibling, then rename it, so no half-written file remains."""
    # Not mkstemp: its 0600 mode would stay on the report files after the rename.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_report(
    directory: str | os.PathLike[str],
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    recommendation: Recommendation,
) -> dict[str, Path]:
    """Write ``trials.csv``, ``pareto.png`` and ``recommendation.json`` into ``directory``.

    Everything is rendered before the first file is written; each file appears whole or
    not at all.

    Returns:
        The paths by name: ``trials``, ``pareto``, ``recommendation``.
    """
    folder = Path(directory)
    frame = records_frame(records)
    text = json.dumps(recommendation.as_dict(), indent=2, allow_nan=False) + "\n"
    figure = pareto_figure(summaries, recommendation)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "trials": folder / "trials.csv",
        "pareto": folder / "pareto.png",
        "recommendation": folder / "recommendation.json",
    }
    _write_atomically(paths["trials"], lambda path: frame.to_csv(path, index=False))
    _write_atomically(paths["pareto"], lambda path: figure.savefig(path, format="png", dpi=120))
    _write_atomically(paths["recommendation"], lambda path: path.write_text(text, "utf-8"))
    return paths
