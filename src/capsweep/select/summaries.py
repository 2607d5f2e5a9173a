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
from dataclasses import dataclass, field
from typing import Any

from capsweep.settings.unit_range import range_label

log = logging.getLogger(__name__)

UNFREEZE, POSITION = "capacity.unfreeze", "capacity.position"

COMPLETE = "COMPLETE"
_REQUIRED_METRICS = ("val_accuracy", "trainable_params")
_MEAN_METRICS = ("overfit_gap", "fit_seconds", "test_accuracy", "train_accuracy", "n_val")


@dataclass(frozen=True)
class Candidate:
    """One run of a nuisance candidate a configuration tried: its values, how it ended.

    Args:
        values: The nuisance values (``{"trainer.backbone_learning_rate": 3e-4}``).
        state: ``COMPLETE``, ``PRUNED`` or ``FAIL``.
        val_accuracy: Its val_accuracy (a pruned one's at its last reported epoch), or
            ``None`` when it has none.
        round: 0 for the candidate's first run, 1 for a second one (the best ones').
    """

    values: Mapping[str, Any]
    state: str
    val_accuracy: float | None = None
    round: int = 0


@dataclass(frozen=True)
class Tuning:
    """How a configuration's nuisance hyperparameters were tuned before it was compared.

    Args:
        chosen: The values its confirmations trained with (empty when nothing was tuned:
            no nuisance key has an effect in it).
        tried: How many candidates were tried.
        candidates: Each run of each one tried.
        selection: The chosen candidate's own val_accuracy, the mean of the runs that
            selected it (biased upward: the best of several noisy runs; not part of the
            score).
    """

    chosen: Mapping[str, Any]
    tried: int
    candidates: tuple[Candidate, ...] = ()
    selection: float | None = None


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
        seed: The training seed this repeat used, ``None`` when not recorded.
        split_seed: The seed of the training/validation split, ``None`` when not recorded.
        tuning: How the trial's configuration was tuned, ``None`` without nuisance tuning.
    """

    number: int
    state: str
    params: Mapping[str, Any]
    repeat: int
    metrics: Mapping[str, float]
    run_id: str | None = None
    seed: int | None = None
    split_seed: int | None = None
    tuning: Tuning | None = None


@dataclass(frozen=True)
class UnfinishedTrial:
    """A trial that did not complete, and why, for the report's list of them.

    Args:
        number: The Optuna trial number.
        state: ``FAIL``, ``PRUNED`` or ``KILLED`` (its worker died; the study holds it as
            FAIL and re-queued its parameters).
        params: The swept parameters.
        reason: One line: the error, the epoch it was pruned at, or how it was killed.
    """

    number: int
    state: str
    params: Mapping[str, Any]
    reason: str

    @property
    def label(self) -> str:
        """The params as ``unfreeze=1, depth=0``."""
        return params_label(self.params)

    @property
    def line(self) -> str:
        """``trial 3 (unfreeze=1, depth=0) FAIL: out of memory ...``."""
        return f"trial {self.number} ({self.label}) {self.state}: {self.reason}"


@dataclass(frozen=True)
class ConfigSummary:
    """The completed runs of one configuration; metrics are means over independent repeats.

    Two kinds of count meet here. A *run* is one COMPLETE record (one trial, one repeat).
    An *independent repeat* is what the statistics count: runs of the configuration with
    the same known seed and split seed trained the same thing again, so they are pooled
    into one repeat (the mean of their metrics); a run whose seed is unknown is a repeat
    of its own.

    ``trial_numbers``, ``repeats``, ``run_ids``, ``val_accuracies``, ``seeds``,
    ``split_seeds`` and ``samples`` are aligned, one entry per run, by trial number then
    repeat. A trial number appears once per repeat when one Optuna trial trains all the
    repeats. ``samples[i]`` is the independent repeat (0..n-1, in order of first run) that
    run ``i`` counts towards.

    ``val_accuracy`` and the other means are means over the independent repeats.
    ``val_accuracy_std`` is their sample standard deviation (ddof=1), ``None`` for one
    independent repeat. A mean is ``None`` when no run recorded that metric.
    ``other_states`` counts the configuration's trials that did not complete, by state
    (``{"PRUNED": 2}``); a trial of several repeats counts once. ``tuning`` says how its
    nuisance hyperparameters were tuned (its latest trial's), ``None`` without tuning.
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
    seeds: tuple[int | None, ...] = ()
    split_seeds: tuple[int | None, ...] = ()
    samples: tuple[int, ...] = ()
    other_states: Mapping[str, int] = field(default_factory=dict)
    tuning: Tuning | None = None

    @property
    def n(self) -> int:
        """How many independent repeats completed (every run, if ``samples`` is empty)."""
        return len(set(self.samples)) if self.samples else self.n_runs

    @property
    def n_runs(self) -> int:
        """How many runs completed, same-seed reruns included."""
        return len(self.trial_numbers)

    @property
    def sample_val_accuracies(self) -> tuple[float, ...]:
        """The val_accuracy of each independent repeat: the mean over its runs."""
        if not self.samples:
            return self.val_accuracies
        groups: dict[int, list[float]] = {}
        for sample, accuracy in zip(self.samples, self.val_accuracies, strict=True):
            groups.setdefault(sample, []).append(accuracy)
        return tuple(statistics.fmean(groups[sample]) for sample in sorted(groups))

    @property
    def label(self) -> str:
        """The params as ``unfreeze=1, depth=0``."""
        return params_label(self.params)

    @property
    def representative(self) -> int:
        """Index of the run with the highest val_accuracy (the first one on a tie)."""
        runs = range(self.n_runs)
        return max(runs, key=lambda index: (self.val_accuracies[index], -index))

    def trials(self) -> list[dict[str, Any]]:
        """Each completed run: trial number, repeat, run id, val_accuracy, seeds, sample."""
        return [
            {
                "number": self.trial_numbers[index],
                "repeat": self.repeats[index],
                "run_id": self.run_ids[index],
                "val_accuracy": self.val_accuracies[index],
                "seed": self.seeds[index] if self.seeds else None,
                "split_seed": self.split_seeds[index] if self.split_seeds else None,
                "sample": self.samples[index] if self.samples else index,
            }
            for index in range(self.n_runs)
        ]

    def metrics(self) -> dict[str, float | int | None]:
        """The means, the std, n (independent repeats) and n_runs, by metric name."""
        return {
            "val_accuracy": self.val_accuracy,
            "val_accuracy_std": self.val_accuracy_std,
            "n": self.n,
            "n_runs": self.n_runs,
            "trainable_params": self.trainable_params,
            **{name: getattr(self, name) for name in _MEAN_METRICS},
        }


def config_key(params: Mapping[str, Any]) -> str:
    """A stable identity for a configuration: its params as sorted JSON."""
    return json.dumps(dict(params), sort_keys=True, default=str)


def params_label(params: Mapping[str, Any]) -> str:
    """``capacity.unfreeze=1, head.depth=0`` shortened to ``unfreeze=1, depth=0``.

    A name keeps its prefix where the short form would be ambiguous (``backbone.name``
    next to ``data.name``). Where the position of the unfrozen units is among the params,
    it and the count read as one range: ``units 0–0, depth=0`` or ``last 2, depth=0``.
    """
    if not params:
        return "(no swept parameters)"
    params = dict(params)
    ranged = None
    if POSITION in params:
        ranged = range_label(params.pop(UNFREEZE, "?"), params.pop(POSITION))
    short = {name: name.rsplit(".", 1)[-1] for name in params}
    clashes = {s for s in short.values() if list(short.values()).count(s) > 1}
    parts = [] if ranged is None else [ranged]
    for name in sorted(params):
        shown = name if short[name] in clashes else short[name]
        value = params[name]
        parts.append(f"{shown}={value:.3g}" if isinstance(value, float) else f"{shown}={value}")
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


def _independent_repeats(group: Sequence[TrialRecord]) -> list[list[TrialRecord]]:
    """The runs split into independent repeats: same known (seed, split seed) pooled.

    In order of each repeat's first run; a run whose seed is unknown stands alone.
    """
    samples: dict[tuple[Any, ...], list[TrialRecord]] = {}
    for index, record in enumerate(group):
        same = ("seed", record.seed, record.split_seed) if record.seed is not None else (index,)
        samples.setdefault(same, []).append(record)
    for runs in samples.values():
        if len(runs) > 1:
            log.info(
                "Trials %s of %s trained with the same seed %s and split seed %s: "
                "counted as one repeat, not %d.",
                ", ".join(f"{run.number} (repeat {run.repeat})" for run in runs),
                params_label(runs[0].params),
                runs[0].seed,
                runs[0].split_seed,
                len(runs),
            )
    return list(samples.values())


def _summary(key: str, group: list[TrialRecord], other_states: Mapping[str, int]) -> ConfigSummary:
    group.sort(key=lambda record: (record.number, record.repeat))
    samples = _independent_repeats(group)
    sample_of = {id(run): index for index, runs in enumerate(samples) for run in runs}

    def per_sample(name: str) -> list[float | None]:
        return [_mean([run.metrics.get(name) for run in runs]) for runs in samples]

    accuracies = [float(value) for value in per_sample("val_accuracy") if value is not None]
    sizes = [float(value) for value in per_sample("trainable_params") if value is not None]
    return ConfigSummary(
        key=key,
        params=dict(group[0].params),
        trial_numbers=tuple(record.number for record in group),
        repeats=tuple(record.repeat for record in group),
        run_ids=tuple(record.run_id for record in group),
        val_accuracies=tuple(float(record.metrics["val_accuracy"]) for record in group),
        val_accuracy=statistics.fmean(accuracies),
        val_accuracy_std=statistics.stdev(accuracies) if len(accuracies) > 1 else None,
        trainable_params=statistics.fmean(sizes),
        **{name: _mean(per_sample(name)) for name in _MEAN_METRICS},
        seeds=tuple(record.seed for record in group),
        split_seeds=tuple(record.split_seed for record in group),
        samples=tuple(sample_of[id(record)] for record in group),
        other_states=dict(other_states),
        tuning=next((r.tuning for r in reversed(group) if r.tuning is not None), None),
    )


def summarize(records: Iterable[TrialRecord]) -> list[ConfigSummary]:
    """Group the COMPLETE trials by configuration; count the other states per configuration.

    A COMPLETE record without a finite val_accuracy or trainable_params is left out with
    a warning. Runs of a configuration with the same known seed and split seed are pooled
    into one independent repeat (see :class:`ConfigSummary`). A configuration with no
    COMPLETE run gets no summary.

    Returns:
        One summary per configuration, by mean val_accuracy descending, then fewer
        trainable params.
    """
    groups: dict[str, list[TrialRecord]] = {}
    unfinished: dict[str, dict[str, set[int]]] = {}
    for record in records:
        key = config_key(record.params)
        if record.state != COMPLETE:
            unfinished.setdefault(key, {}).setdefault(record.state, set()).add(record.number)
        elif not _lacks_required_metric(record):
            groups.setdefault(key, []).append(record)
    summaries = []
    for key, group in groups.items():
        states = {state: len(numbers) for state, numbers in unfinished.get(key, {}).items()}
        summaries.append(_summary(key, group, dict(sorted(states.items()))))
    return sorted(summaries, key=rank_key)


def rank_key(summary: ConfigSummary) -> tuple[float, float, str]:
    return (-summary.val_accuracy, summary.trainable_params, summary.key)
