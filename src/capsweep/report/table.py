"""The ranked table of a sweep's configurations, for the console."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.table import Table

from capsweep.select import (
    ConfigSummary,
    Recommendation,
    UnfinishedTrial,
    accuracy_text,
    considered,
    params_label,
    pareto_front,
    rank_key,
)

RECOMMENDED_MARK = "★"
PARETO_MARK = "◆"
COLUMNS = (
    "val_accuracy",
    "n",
    "test_accuracy",
    "trainable_params",
    "overfit_gap",
    "fit_seconds",
    "state",
)


def _format(value: float | None, spec: str) -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def _marks(summaries: Sequence[ConfigSummary], recommendation: Recommendation | None) -> list[str]:
    front = {summary.key for summary in pareto_front(considered(summaries, recommendation))}
    chosen = recommendation.chosen.key if recommendation else None
    return [
        (RECOMMENDED_MARK if s.key == chosen else "") + (PARETO_MARK if s.key in front else "")
        for s in summaries
    ]


def tuning_cell(summary: ConfigSummary) -> str:
    """The nuisance values a configuration was compared at, and how many were tried."""
    tuning = summary.tuning
    if tuning is None:
        return "-"
    if not tuning.chosen:
        return "nothing to tune"
    return f"{params_label(tuning.chosen)} ({tuning.tried})"


def count_cell(summary: ConfigSummary) -> str:
    """Independent repeats, and the runs behind them when same-seed runs were pooled."""
    if summary.n_runs == summary.n:
        return str(summary.n)
    return f"{summary.n} ({summary.n_runs} runs)"


def state_cell(summary: ConfigSummary) -> str:
    """``complete``, then how many of the configuration's trials did not complete, by state."""
    others = [f"{count} {state.lower()}" for state, count in summary.other_states.items()]
    return ", ".join(["complete", *others])


def trials_table(
    summaries: Sequence[ConfigSummary], recommendation: Recommendation | None
) -> Table:
    """The configurations ranked by mean val_accuracy, the recommended one in bold.

    val_accuracy is shown as mean ± one standard error, the one the pick rule uses; n is
    the number of independent repeats. The Pareto front is taken over the configurations
    the recommendation considered (those passing its ``max_overfit_gap``). The caption
    explains the marks and, with a recommendation, gives its reason.

    Args:
        summaries: What :func:`capsweep.select.summarize` returned.
        recommendation: What :func:`capsweep.select.recommend` returned, or ``None`` when
            there is none to mark.
    """
    ranked = sorted(summaries, key=rank_key)
    caption = (
        f"{RECOMMENDED_MARK} recommended  {PARETO_MARK} Pareto front  "
        "val_accuracy: mean ± one standard error (of the repeats; for one run, the Wilson "
        "half-width); n: independent repeats"
    )
    tuned = any(summary.tuning is not None for summary in summaries)
    if tuned:
        caption += "; tuned: the nuisance values each was compared at (candidates tried)"
    if recommendation is not None:
        caption += "\n" + recommendation.reason
    table = Table(title="capsweep configurations", caption=caption, caption_justify="left")
    table.add_column("", no_wrap=True)
    table.add_column("rank", justify="right")
    table.add_column("params")
    if tuned:
        table.add_column("tuned")
    for name in COLUMNS:
        table.add_column(name, justify="left" if name == "state" else "right")
    chosen = recommendation.chosen.key if recommendation else None
    for rank, (summary, mark) in enumerate(
        zip(ranked, _marks(ranked, recommendation), strict=True), start=1
    ):
        table.add_row(
            mark,
            str(rank),
            summary.label,
            *([tuning_cell(summary)] if tuned else []),
            accuracy_text(summary),
            count_cell(summary),
            _format(summary.test_accuracy, ".3f"),
            f"{summary.trainable_params:,.0f}",
            _format(summary.overfit_gap, ".3f"),
            _format(summary.fit_seconds, ".1f"),
            state_cell(summary),
            style="bold" if summary.key == chosen else None,
        )
    return table


def unfinished_table(unfinished: Sequence[UnfinishedTrial]) -> Table:
    """The trials that did not complete: number, params, state (FAIL, PRUNED, KILLED), reason."""
    table = Table(title="trials that did not complete")
    table.add_column("trial", justify="right")
    table.add_column("params")
    table.add_column("state")
    table.add_column("reason", overflow="fold")
    for trial in unfinished:
        table.add_row(str(trial.number), trial.label, trial.state, trial.reason)
    return table
