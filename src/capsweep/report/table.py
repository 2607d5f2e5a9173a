"""The ranked table of a sweep's configurations, for the console."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.table import Table

from capsweep.select import ConfigSummary, Recommendation, pareto_front

RECOMMENDED_MARK = "★"
PARETO_MARK = "◆"


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
        summaries: What :func:`capsweep.select.summarize` returned.
        recommendation: What :func:`capsweep.select.recommend` returned, or ``None`` when
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
