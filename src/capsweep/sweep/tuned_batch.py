"""Tune and confirm each configuration of a batch, then tell the study their scores.

A sweep with nuisance tuning (:mod:`capsweep.sweep.tuning`): every round launches what
each configuration needs next — its candidates, the chosen one's confirmations, anything
queued again — as one batch of jobs, until each configuration is confirmed or has failed.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

from capsweep.settings import TrialContext
from capsweep.signals import uninterrupted
from capsweep.sweep import study as studies
from capsweep.sweep.job_settings import configuration_settings
from capsweep.sweep.jobs import SweepJobs, Told, dropped, repeat_seeds
from capsweep.sweep.progress import SweepProgress, TrialLine, job_line
from capsweep.sweep.study import tell
from capsweep.sweep.tuning import (
    CHOSEN_ATTR,
    SEARCH,
    TRIED_ATTR,
    ConfigurationTuning,
    TuningJob,
    confirmation_values,
)

# What a tuned configuration's trial takes from each confirmation (written for repeat 0).
CONFIRMATION_ATTRS = (
    studies.METRICS_ATTR,
    studies.RUN_ID_ATTR,
    studies.SEED_ATTR,
    studies.SPLIT_SEED_ATTR,
)

log = logging.getLogger(__name__)


class TunedBatch:
    """Drive the tuning of a batch of configurations through the sweep's launcher."""

    def __init__(
        self, jobs: SweepJobs, study: optuna.Study, storage: BaseStorage, tracking_uri: str
    ) -> None:
        self.jobs = jobs
        self.plan = jobs.plan
        self.study = study
        self.storage = storage
        self.tracking_uri = tracking_uri

    def run(
        self, trials: Sequence[optuna.Trial], context: TrialContext, progress: SweepProgress
    ) -> list[Told]:
        """Tune and confirm each configuration of ``trials``; tell the study their scores."""
        tunings = [self._tuning(trial) for trial in trials]
        held = tunings
        try:
            while True:
                held = self._held(held)
                jobs = [job for tuning in held for job in tuning.next_jobs()]
                if not jobs:
                    break
                returns = self.jobs.launch([self._overrides(job, context) for job in jobs])
                for job, result in zip(jobs, returns, strict=True):
                    progress.say(job_line(job.tuning.record(job, result), self.plan.nuisance))
        except BaseException as error:
            with uninterrupted():
                for tuning in held:
                    tuning.give_back(error)
            raise
        return [self._tell(tuning) for tuning in tunings]

    def _held(self, tunings: list[ConfigurationTuning]) -> list[ConfigurationTuning]:
        """The tunings whose sweep trial this worker still holds RUNNING. A trial another
        worker took for dead (this one stalled past stale_after_seconds) is its now: this
        worker launches nothing more for it and leaves its configuration's trials alone."""
        current = self.study.get_trials(deepcopy=False)
        held = []
        for tuning in tunings:
            if current[tuning.sweep_trial.number].state == TrialState.RUNNING:
                held.append(tuning)
            else:
                log.warning(
                    "trial %d was taken over by another worker: this worker stops driving it",
                    tuning.sweep_trial.number,
                )
        return held

    def _tuning(self, trial: optuna.Trial) -> ConfigurationTuning:
        plan = self.plan
        assert plan.nuisance is not None  # a tuned batch exists only with a nuisance plan
        settings = configuration_settings(self.jobs.config, plan.space, trial.params)
        return ConfigurationTuning(
            storage=self.storage,
            sweep_study=self.study,
            sweep_trial=trial,
            plan=plan.nuisance,
            effective=plan.nuisance.effective(settings),
            repeats=plan.repeats,
            seed=plan.seed,
            pruner=plan.pruner,
            tracking_uri=self.tracking_uri,
            secrets=(self.tracking_uri, plan.storage_url),
        )

    def _overrides(self, job: TuningJob, context: TrialContext) -> list[str]:
        """A candidate's first run trains with the base seeds, its second with the next, a
        confirmation with fresh ones after those."""
        plan = self.plan
        sweep_trial = job.tuning.sweep_trial
        seed, split_seed = repeat_seeds(
            plan.repeat_over, job.seed_index, **self.jobs.base_seeds(sweep_trial)
        )
        job.trial.set_user_attr(studies.SEED_ATTR.format(repeat=0), seed)
        job.trial.set_user_attr(studies.SPLIT_SEED_ATTR.format(repeat=0), split_seed)
        job_context = dataclasses.replace(
            context,
            number=job.trial.number,
            repeat=job.repeat,
            study_name=job.tuning.name,
            sweep_study=plan.study_name,
            configuration=sweep_trial.number,
            role=job.role,
            # A configuration's study has one objective, val_accuracy, whatever the sweep's.
            multi_objective=False,
            pruner=plan.pruner_name if job.role == SEARCH else None,
            job_name=job.job_name,
        )
        seeds = {"trainer.seed": seed, "data.split_seed": split_seed}
        return self.jobs.overrides(sweep_trial.params, job_context, values=job.values, seeds=seeds)

    def _tell(self, tuning: ConfigurationTuning) -> Told:
        """Record a tuned configuration's confirmations on its trial and tell its score."""
        trial = tuning.sweep_trial
        line = TrialLine(trial.number, dict(trial.params), "FAIL")
        outcome = tuning.confirmed()
        try:
            if outcome is None:
                reason = tuning.failure or "its confirmations did not complete"
                trial.set_user_attr("capsweep.error.0", reason[:1000])
                line.detail = reason[:200]
                if not tell(self.study, trial, state=TrialState.FAIL):
                    raise UpdateFinishedTrialError(reason)
                return {"number": trial.number, "state": "FAIL", "error": reason}, line
            confirmations = outcome["confirmations"]
            for repeat, confirmation in enumerate(confirmations):
                for key in CONFIRMATION_ATTRS:
                    value = confirmation.user_attrs.get(key.format(repeat=0))
                    trial.set_user_attr(key.format(repeat=repeat), value)
            for key, value in outcome["attrs"].items():
                trial.set_user_attr(key, value)
            values = confirmation_values(confirmations, self.plan.objectives.names)
            if not tell(self.study, trial, values=values):
                raise UpdateFinishedTrialError(f"trial {trial.number}")
        except UpdateFinishedTrialError:
            return dropped(trial)
        metrics = [c.user_attrs[studies.METRICS_ATTR.format(repeat=0)] for c in confirmations]
        line.state = "COMPLETE"
        line.val_accuracies = [float(m["val_accuracy"]) for m in metrics]
        line.trainable_params = float(metrics[0]["trainable_params"])
        line.nuisance = outcome["attrs"][CHOSEN_ATTR]
        line.tried = outcome["attrs"][TRIED_ATTR]
        return {"number": trial.number, "state": "COMPLETE", "values": values}, line
