"""The pick rule: the smallest configuration whose val_accuracy is close enough to the best.

Pure functions over a table of trial results. This module reads no files and never imports
TensorFlow, Keras, MLflow or Optuna, so a report answers in a second on a laptop.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capsweep.errors import CapsweepConfigError

log = logging.getLogger(__name__)

COMPLETE = "COMPLETE"
TIMES = "\u00d7"  # the multiplication sign, as in "12 times fewer"
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
    return sorted(summaries, key=_rank)


def _rank(summary: ConfigSummary) -> tuple[float, float, str]:
    return (-summary.val_accuracy, summary.trainable_params, summary.key)


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


def standard_error(summary: ConfigSummary) -> float:
    """The standard error of a configuration's val_accuracy.

    From the repeats (std / sqrt(n)) when there are several; otherwise binomial,
    sqrt(p(1 - p) / n_val), from the one val_accuracy p and the validation split's size.

    Raises:
        ValueError: One repeat and no n_val recorded.
    """
    if summary.n > 1 and summary.val_accuracy_std is not None:
        return summary.val_accuracy_std / math.sqrt(summary.n)
    if summary.n_val is None or not summary.n_val > 0:
        raise ValueError(
            f"cannot estimate the standard error of {summary.label}: it has {summary.n} "
            f"completed repeat and n_val={summary.n_val!r}; record n_val, train repeats, "
            "or give an absolute tolerance"
        )
    p = summary.val_accuracy
    return math.sqrt(p * (1 - p) / summary.n_val)


@dataclass(frozen=True)
class Recommendation:
    """The chosen configuration, the best one, and the rule that linked them."""

    chosen: ConfigSummary
    best: ConfigSummary
    tolerance: float
    tolerance_derivation: str
    threshold: float
    reason: str
    max_overfit_gap: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serializable account of the recommendation."""
        return {
            **_configuration(self.chosen),
            "best": _configuration(self.best),
            "tolerance": self.tolerance,
            "tolerance_derivation": self.tolerance_derivation,
            "threshold": self.threshold,
            "max_overfit_gap": self.max_overfit_gap,
            "reason": self.reason,
        }


def _configuration(summary: ConfigSummary) -> dict[str, Any]:
    representative = summary.trials()[summary.representative]
    return {
        "trial_numbers": list(dict.fromkeys(summary.trial_numbers)),
        "representative_trial": representative["number"],
        "representative_repeat": representative["repeat"],
        "representative_run_id": representative["run_id"],
        "trials": summary.trials(),
        "params": _plain(summary.params),
        "metrics": _plain(summary.metrics()),
    }


def _plain(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-safe values: NaN becomes null, numpy scalars and other objects become plain."""
    plain: dict[str, Any] = {}
    for name, value in mapping.items():
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif value is not None and not isinstance(value, bool | int | float | str):
            value = str(value)
        plain[name] = value
    return plain


def _check_number(key: str, value: float, *, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CapsweepConfigError(key, value, "must be a finite number", fix=f"e.g. {key}=0.02")
    if minimum is not None and value < minimum:
        raise CapsweepConfigError(key, value, f"must be >= {minimum}", fix=f"e.g. {key}=0.02")
    return float(value)


def _ratio(larger: float, smaller: float) -> str:
    if smaller <= 0:  # nothing trainable: no ratio to give
        return "far"
    ratio = larger / smaller
    digits = 0 if ratio >= 10 else 1 if ratio >= 1.1 else 2
    return f"{ratio:.{digits}f}{TIMES}"


def _reason(chosen: ConfigSummary, best: ConfigSummary, tolerance: float, absolute: bool) -> str:
    within = (
        f"within the absolute tolerance ({tolerance:.3f})"
        if absolute
        else f"within one standard error ({tolerance:.3f})"
    )
    if chosen.key == best.key:
        return (
            f"{best.label} is the best (val_accuracy {best.val_accuracy:.3f}) and itself the "
            f"smallest that performs well: no configuration {within} of it has fewer "
            "trainable parameters."
        )
    return (
        f"{chosen.label} has {_ratio(best.trainable_params, chosen.trainable_params)} fewer "
        f"trainable parameters than the best ({best.label}: val_accuracy "
        f"{best.val_accuracy:.3f}) and its val_accuracy {chosen.val_accuracy:.3f} is "
        f"{within} of it."
    )


def _within_gap(pool: list[ConfigSummary], max_overfit_gap: float | None) -> list[ConfigSummary]:
    """The configurations whose overfit_gap is known and at most ``max_overfit_gap``."""
    if max_overfit_gap is None:
        return pool
    limit = _check_number("max_overfit_gap", max_overfit_gap)
    passing = [s for s in pool if s.overfit_gap is not None and s.overfit_gap <= limit]
    if passing:
        return passing
    gaps = sorted((s.overfit_gap, s.label) for s in pool if s.overfit_gap is not None)
    if not gaps:
        raise CapsweepConfigError(
            "max_overfit_gap",
            limit,
            "no completed trial recorded overfit_gap",
            fix="leave max_overfit_gap unset",
        )
    smallest, label = gaps[0]
    raise CapsweepConfigError(
        "max_overfit_gap",
        limit,
        f"no configuration passes; the smallest overfit_gap seen is {smallest:.3f} ({label})",
        fix=f"raise max_overfit_gap to {smallest:.3f} or more, or leave it unset",
    )


def recommend(
    summaries: Iterable[ConfigSummary],
    *,
    tolerance: float | None = None,
    max_overfit_gap: float | None = None,
) -> Recommendation:
    """Recommend the configuration with the fewest trainable params that performs well.

    Candidates are the configurations with ``overfit_gap <= max_overfit_gap`` (all, if it is
    ``None``). The best is the candidate with the highest mean val_accuracy; the chosen one
    has the fewest trainable params among candidates within ``tolerance`` of the best
    (ties: higher val_accuracy).

    Args:
        summaries: What :func:`summarize` returned.
        tolerance: How far below the best val_accuracy still counts as good; by default
            one standard error of the best (:func:`standard_error`).
        max_overfit_gap: Drop configurations whose train - val accuracy gap exceeds this.

    Raises:
        ValueError: No completed configuration, none passes ``max_overfit_gap``, a
            ``tolerance`` that is negative or not finite, or no standard error is known.
    """
    pool = list(summaries)
    if not pool:
        raise ValueError(
            "no completed trial to recommend from: every trial is PRUNED, FAIL, RUNNING or "
            "WAITING; wait for the sweep to finish or check why its trials failed"
        )
    candidates = _within_gap(pool, max_overfit_gap)
    best = min(candidates, key=_rank)
    if tolerance is None:
        used = standard_error(best)
        derivation = (
            f"one standard error of the best, from {best.n} repeats"
            if best.n > 1
            else f"one binomial standard error of the best, n_val={best.n_val:g}"
        )
    else:
        used = _check_number("tolerance", tolerance, minimum=0.0)
        derivation = "absolute tolerance"
    threshold = best.val_accuracy - used
    # isclose: "0.86 is within 0.02 of 0.88" must hold despite float rounding.
    good = [
        s
        for s in candidates
        if s.val_accuracy >= threshold or math.isclose(s.val_accuracy, threshold, abs_tol=1e-12)
    ]
    chosen = min(good, key=lambda s: (s.trainable_params, -s.val_accuracy, s.key))
    return Recommendation(
        chosen=chosen,
        best=best,
        tolerance=used,
        tolerance_derivation=derivation,
        threshold=threshold,
        reason=_reason(chosen, best, used, absolute=tolerance is not None),
        max_overfit_gap=None if max_overfit_gap is None else float(max_overfit_gap),
    )
