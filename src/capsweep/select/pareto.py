"""The Pareto front of accuracy against size."""

from __future__ import annotations

from collections.abc import Iterable

from capsweep.select.summaries import ConfigSummary


def pareto_front(summaries: Iterable[ConfigSummary]) -> list[ConfigSummary]:
    """The configurations no other beats on both val_accuracy (up) and trainable_params (down).

    Returns:
        The front by trainable_params ascending (so val_accuracy ascends too); equal
        configurations are all kept.
    """
    pool = list(summaries)

    def dominated(summary: ConfigSummary) -> bool:
        return any(
            other.val_accuracy >= summary.val_accuracy
            and other.trainable_params <= summary.trainable_params
            and (
                other.val_accuracy > summary.val_accuracy
                or other.trainable_params < summary.trainable_params
            )
            for other in pool
        )

    front = [summary for summary in pool if not dominated(summary)]
    return sorted(front, key=lambda s: (s.trainable_params, s.val_accuracy, s.key))
