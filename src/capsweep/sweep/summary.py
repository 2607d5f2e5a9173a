"""A sweep's summary: its MLflow parent run, the trial table and the recommendation.

Used by the sweep loop after every batch and by ``capsweep-report``; it reads the study
and MLflow and never imports TensorFlow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from omegaconf import DictConfig
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    json_to_distribution,
)
from optuna.trial import FrozenTrial, TrialState

from capsweep import tracking
from capsweep.errors import CapsweepConfigError
from capsweep.report import write_report
from capsweep.select import Recommendation, TrialRecord, UnfinishedTrial, recommend, summarize
from capsweep.select.nuisance import NuisanceRange
from capsweep.signals import uninterrupted
from capsweep.sweep import study as studies
from capsweep.sweep.trial_records import records_from_study

log = logging.getLogger(__name__)

RECOMMENDED_ATTR = "capsweep.recommended_run_id"
RECOMMENDED_TAG = "capsweep.recommended"


@dataclass
class Report:
    records: list[TrialRecord]
    summaries: list[Any]
    recommendation: Recommendation | None
    files: dict[str, Path]
    problem: str | None = None
    # The trials that did not complete (failed, pruned, killed), each with its reason.
    unfinished: list[UnfinishedTrial] = field(default_factory=list)


def build_report(study: optuna.Study, directory: Path, **pick: Any) -> Report:
    """Summarize the study's finished trials, recommend one, and write the report files."""
    trials = study.get_trials(deepcopy=False)
    records = records_from_study(study, trials)
    summaries = summarize(records)
    unfinished = unfinished_trials(study, trials)
    attrs = study.user_attrs
    repeats = attrs.get(studies.REPEATS_ATTR) or {}
    if int(repeats.get("repeats", 1)) > 1:
        pick.setdefault("repeat_over", repeats.get("over"))
    pick.setdefault("ranges", nuisance_ranges(attrs.get(studies.NUISANCE_ATTR)))
    pick.setdefault("fixed", attrs.get(studies.FIXED_ATTR) or {})
    try:
        recommendation = recommend(summaries, **pick)
    except CapsweepConfigError:
        raise  # an option of the caller's (a negative tolerance): theirs to fix, not the data's
    except ValueError as error:
        return Report(records, summaries, None, {}, problem=str(error), unfinished=unfinished)
    files = write_report(
        directory,
        records,
        summaries,
        recommendation,
        unfinished=unfinished,
        ranges=pick.get("ranges"),
    )
    return Report(records, summaries, recommendation, files, unfinished=unfinished)


ERROR_PREFIX = "capsweep.error."  # set by the sweep loop per failed repeat


def nuisance_ranges(nuisance: dict[str, Any] | None) -> dict[str, NuisanceRange]:
    """The search range of each nuisance hyperparameter, from the study's record of them."""
    ranges = {}
    for key, written in ((nuisance or {}).get("space") or {}).items():
        distribution = json_to_distribution(written)
        if isinstance(distribution, CategoricalDistribution):
            numbers = [c for c in distribution.choices if isinstance(c, int | float)]
            if len(numbers) == len(distribution.choices) and numbers:
                ranges[key] = NuisanceRange(
                    min(numbers), max(numbers), choices=tuple(sorted(numbers))
                )
        elif isinstance(distribution, FloatDistribution | IntDistribution):
            ranges[key] = NuisanceRange(
                float(distribution.low), float(distribution.high), log=distribution.log
            )
    return ranges


def unfinished_trials(
    study: optuna.Study, trials: Sequence[FrozenTrial] | None = None
) -> list[UnfinishedTrial]:
    """The study's failed, pruned and killed trials, in trial order, each with its reason.

    A FAIL trial whose parameters recovery re-queued (``capsweep.requeued_from`` on the
    new trial) was left RUNNING by a dead worker: it is listed as KILLED.
    """
    if trials is None:
        trials = study.get_trials(deepcopy=False)
    requeued_as = {
        int(trial.user_attrs[studies.REQUEUED_ATTR]): trial.number
        for trial in trials
        if trial.user_attrs.get(studies.REQUEUED_ATTR) is not None
    }
    unfinished = []
    for trial in trials:
        if trial.user_attrs.get(studies.SURPLUS_ATTR) or studies.DUPLICATE_ATTR in trial.user_attrs:
            continue  # given back or drawn twice at once: nothing was trained
        params = dict(trial.params)
        if trial.state == TrialState.PRUNED:
            unfinished.append(UnfinishedTrial(trial.number, "PRUNED", params, _pruned(trial)))
        elif trial.state == TrialState.FAIL:
            errors = _errors(trial.user_attrs)
            if errors:
                unfinished.append(UnfinishedTrial(trial.number, "FAIL", params, errors))
            elif trial.number in requeued_as:
                reason = f"worker died; re-queued as trial {requeued_as[trial.number]}"
                unfinished.append(UnfinishedTrial(trial.number, "KILLED", params, reason))
            else:
                reason = "no reason recorded (see the trial's MLflow run or job log)"
                unfinished.append(UnfinishedTrial(trial.number, "FAIL", params, reason))
    return unfinished


def _errors(attrs: dict[str, Any]) -> str:
    """Each failed repeat's first error line; ``repeat k:`` only when there are repeats."""
    errors = {
        int(key.removeprefix(ERROR_PREFIX)): str(value).strip().splitlines()[0] if value else "?"
        for key, value in attrs.items()
        if key.startswith(ERROR_PREFIX) and key.removeprefix(ERROR_PREFIX).isdigit()
    }
    if list(errors) == [0]:
        return errors[0]
    return "; ".join(f"repeat {repeat}: {errors[repeat]}" for repeat in sorted(errors))


def _pruned(trial: optuna.trial.FrozenTrial) -> str:
    """``pruned at epoch 3 (val_accuracy 0.412)``, from the reported values or the curve."""
    curve = trial.user_attrs.get(studies.CURVE_ATTR) or []
    epoch = trial.last_step if trial.last_step is not None else len(curve) - 1
    if epoch is None or epoch < 0:
        return "pruned"
    value = trial.intermediate_values.get(epoch)
    if value is None and epoch < len(curve):
        value = curve[epoch]
    return f"pruned at epoch {epoch}" + (
        f" (val_accuracy {value:.3f})" if value is not None else ""
    )


class SweepSummary:
    """The study's MLflow parent run, kept up to date as trials finish."""

    def __init__(
        self, config: DictConfig, study: optuna.Study, parent_run_id: str, report_dir: Path
    ) -> None:
        self.uri = str(config.tracking.uri)
        self.study = study
        self.parent_run_id = parent_run_id
        self.report_dir = report_dir

    @classmethod
    def open(
        cls,
        config: DictConfig,
        study: optuna.Study,
        *,
        created: bool,
        storage_url: str,
        report_dir: Path,
    ) -> SweepSummary:
        """Create the parent run (the study's creator does) or find it (everyone else)."""
        uri, experiment = str(config.tracking.uri), str(config.tracking.experiment)
        parent = study.user_attrs.get(studies.PARENT_RUN_ATTR)
        if parent is None and not created:
            parent = _wait_for_parent(study)
        if parent is None:
            parent = tracking.create_parent_run(
                uri,
                experiment,
                study_name=study.study_name,
                storage=studies.redact(storage_url),
            )
            study.set_user_attr(studies.PARENT_RUN_ATTR, parent)
        return cls(config, study, parent, report_dir)

    def update(self, **pick: Any) -> Report:
        """Rewrite the report files, log them to the parent run, tag the recommended run.

        ``pick`` takes :func:`capsweep.select.recommend`'s options (tolerance, max_overfit_gap).
        """
        report = build_report(self.study, self.report_dir, **pick)
        with uninterrupted():  # an interrupted MLflow write would keep its database locked
            self._record(report)
        return report

    def _record(self, report: Report) -> None:
        client = tracking.client_for(self.uri)
        if report.recommendation is None:
            return
        for path in report.files.values():
            client.log_artifact(self.parent_run_id, str(path), "summary")
        complete = sum(1 for r in report.records if r.state == TrialState.COMPLETE.name)
        tracking.TrialRun(client, self.parent_run_id).log_metrics(
            {
                "best_val_accuracy": report.recommendation.best.val_accuracy,
                "recommended_val_accuracy": report.recommendation.chosen.val_accuracy,
                "recommended_trainable_params": report.recommendation.chosen.trainable_params,
                "complete_trials": complete,
            },
            step=complete,
        )
        self._tag_recommended(client, report.recommendation)

    def _tag_recommended(self, client: Any, recommendation: Recommendation) -> None:
        run_ids = [run_id for run_id in recommendation.chosen.run_ids if run_id]
        previous = self.study.user_attrs.get(RECOMMENDED_ATTR) or []
        for run_id in previous:
            if run_id not in run_ids:
                client.set_tag(run_id, RECOMMENDED_TAG, "false")
        for run_id in run_ids:
            client.set_tag(run_id, RECOMMENDED_TAG, "true")
        client.set_tag(self.parent_run_id, "capsweep.recommendation", recommendation.reason[:5000])
        if previous != run_ids:
            self.study.set_user_attr(RECOMMENDED_ATTR, run_ids)


def _wait_for_parent(study: optuna.Study, timeout: float = 60.0) -> str | None:
    """Wait for the worker that created the study to record its parent run."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        parent = study.user_attrs.get(studies.PARENT_RUN_ATTR)  # read from storage each time
        if parent:
            return str(parent)
        time.sleep(0.5)
    return None
