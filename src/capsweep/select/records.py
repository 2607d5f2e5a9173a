"""Trial records and their grouping into configurations, with per-configuration statistics.

Pure: works on a table of trial results, reads no files and imports no training, tracking
or study library.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
_REQUIRED_METRICS = ("val_accuracy", "trainable_params")
_MEAN_METRICS = ("overfit_gap", "fit_seconds", "test_accuracy", "train_accuracy", "n_val")


@dataclass(frozen=True)
class TrialRecord:
    """One Optuna trial as the report sees it.

    Args:
        number: The Optuna trial number.
        state: ``COMPLETE``, ``PRUNED``, ``FAIL``, ``RUNNING`` or ``WAITING``.
        params: The swept parameters (the repeat seed is not one of them).
        repeat: Which of the k seeds this trial trained the configuration with (0..k-1).
        metrics: ``val_accuracy``, ``trainable_params``, ``overfit_gap``, ``n_val``, ...;
            any may be missing unless the trial is COMPLETE.
        run_id: The MLflow run that recorded the trial.
    """

    number: int
    state: str
    params: Mapping[str, Any]
    repeat: int
    metrics: Mapping[str, float]
    run_id: str | None = None


@dataclass(frozen=True)
class ConfigSummary:
    """The completed repeats of one configuration; metrics are means over the repeats.

    ``trial_numbers``, ``repeats``, ``run_ids`` and ``val_accuracies`` are aligned, one
    entry per completed repeat, by trial number then repeat. A trial number appears once
    per repeat when one Optuna trial trains all the repeats.
    ``val_accuracy_std`` is the sample standard deviation (ddof=1), ``None`` for one repeat.
    A mean is ``None`` when no repeat recorded that metric.
    """

    key: str
    params: Mapping[str, Any]
    trial_numbers: tuple[int, ...]
    repeats: tuple[int, ...]
    run_ids: tuple[str | None, ...]
    val_accuracies: tuple[float, ...]
    val_accuracy: float
    val_accuracy_std: float | None
    trainable_params: float
    overfit_gap: float | None
    fit_seconds: float | None
    test_accuracy: float | None
    train_accuracy: float | None
    n_val: float | None

    @property
    def n(self) -> int:
        """How many repeats completed."""
        return len(self.trial_numbers)

    @property
    def label(self) -> str:
        """The params as ``unfreeze=1, depth=0``."""
        return params_label(self.params)

    @property
    def representative(self) -> int:
        """Index of the repeat with the highest val_accuracy (the first one on a tie)."""
        return max(range(self.n), key=lambda index: (self.val_accuracies[index], -index))

    @property
    def representative_trial(self) -> int:
        """The trial number of the repeat with the highest val_accuracy."""
        return self.trial_numbers[self.representative]

    def trials(self) -> list[dict[str, Any]]:
        """Each completed repeat: trial number, repeat, run id and val_accuracy."""
        return [
            {"number": number, "repeat": repeat, "run_id": run_id, "val_accuracy": accuracy}
            for number, repeat, run_id, accuracy in zip(
                self.trial_numbers, self.repeats, self.run_ids, self.val_accuracies, strict=True
            )
        ]

    def metrics(self) -> dict[str, float | int | None]:
        """The means, the std and n, by metric name."""
        return {
            "val_accuracy": self.val_accuracy,
            "val_accuracy_std": self.val_accuracy_std,
            "n": self.n,
            "trainable_params": self.trainable_params,
            **{name: getattr(self, name) for name in _MEAN_METRICS},
        }


def config_key(params: Mapping[str, Any]) -> str:
    """A stable identity for a configuration: its params as sorted JSON."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def params_label(params: Mapping[str, Any]) -> str:
    """``capacity.unfreeze=1, head.depth=0`` shortened to ``unfreeze=1, depth=0``.

    A name keeps its prefix where the short form would be ambiguous (``backbone.name``
    next to ``data.name``).
    """
    if not params:
        return "(no swept parameters)"
    short = {name: name.rsplit(".", 1)[-1] for name in params}
    clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
    parts = []
    for name in sorted(params):
        shown = name if short[name] in clashes else short[name]
        value = params[name]
        parts.append(f"{shown}={value:g}" if isinstance(value, float) else f"{shown}={value}")
    return ", ".join(parts)


def _mean(values: Sequence[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None and not math.isnan(v)]
    return statistics.fmean(present) if present else None


def _lacks_required_metric(record: TrialRecord) -> bool:
    for metric in _REQUIRED_METRICS:
        value = record.metrics.get(metric)
        if value is None or not math.isfinite(value):
            # Skipped, not raised: the sweep loop summarizes after every batch and one
            # incomplete record must not stop it.
            log.warning(
                "Trial %d (repeat %d, MLflow run %s) is %s but its %s is %r; left out.",
                record.number,
                record.repeat,
                record.run_id,
                COMPLETE,
                metric,
                value,
            )
            return True
    return False


def summarize(records: Iterable[TrialRecord]) -> list[ConfigSummary]:
    """Group the COMPLETE trials by configuration; ignore every other state.

    A COMPLETE record without a finite val_accuracy or trainable_params is left out with
    a warning.

    Returns:
        One summary per configuration, by mean val_accuracy descending, then fewer
        trainable params.
    """
    groups: dict[str, list[TrialRecord]] = {}
    for record in records:
        if record.state == COMPLETE and not _lacks_required_metric(record):
            groups.setdefault(config_key(record.params), []).append(record)
    summaries = []
    for key, group in groups.items():
        group.sort(key=lambda record: (record.number, record.repeat))
        accuracies = [float(record.metrics["val_accuracy"]) for record in group]
        params = [float(record.metrics["trainable_params"]) for record in group]
        means = {
            name: _mean([record.metrics.get(name) for record in group]) for name in _MEAN_METRICS
        }
        summaries.append(
            ConfigSummary(
                key=key,
                params=dict(group[0].params),
                trial_numbers=tuple(record.number for record in group),
                repeats=tuple(record.repeat for record in group),
                run_ids=tuple(record.run_id for record in group),
                val_accuracies=tuple(accuracies),
                val_accuracy=statistics.fmean(accuracies),
                val_accuracy_std=statistics.stdev(accuracies) if len(group) > 1 else None,
                trainable_params=statistics.fmean(params),
                **means,
            )
        )
    return sorted(summaries, key=rank_key)


def rank_key(summary: ConfigSummary) -> tuple[float, float, str]:
    return (-summary.val_accuracy, summary.trainable_params, summary.key)
