"""Train each configuration of a batch ``repeats`` times and tell the study their mean.

A sweep without nuisance tuning: every configuration (Optuna trial) is launched as k
Hydra jobs with k seeds, whose results are recorded on the trial. With a pruner, repeats
1..k-1 of a configuration are launched only once its first repeat has survived pruning.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Sequence

import optuna
from hydra.core.utils import JobReturn, JobStatus
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from capsweep import tracking
from capsweep.redaction import redact_text
from capsweep.settings import TrialContext
from capsweep.signals import JobTerminated
from capsweep.sweep import study as studies
from capsweep.sweep.jobs import SweepJobs, Told, dropped, repeat_seeds
from capsweep.sweep.progress import TrialLine
from capsweep.sweep.study import tell
from capsweep.sweep.sweep_plan import repeated_seeds

log = logging.getLogger(__name__)


class RepeatedBatch:
    """Launch every repeat of a batch of configurations; record and tell each."""

    def __init__(self, jobs: SweepJobs, study: optuna.Study, tracking_uri: str) -> None:
        self.jobs = jobs
        self.plan = jobs.plan
        self.study = study
        self.tracking_uri = tracking_uri

    def run(self, trials: Sequence[optuna.Trial], context: TrialContext) -> list[Told]:
        returns = self._launch(trials, context)
        return [self._tell(trial, returns[trial.number]) for trial in trials]

    def _launch(
        self, trials: Sequence[optuna.Trial], context: TrialContext
    ) -> dict[int, list[JobReturn]]:
        """Launch every repeat of ``trials``; return each trial's job returns in repeat order.

        With a pruner, repeats 1..k-1 of a configuration are launched only once its first
        repeat has survived pruning: a pruned configuration costs one job, not k.
        """
        repeats = self.plan.repeats
        first_only = self.plan.pruner is not None and repeats > 1
        wave = [
            (trial, repeat) for trial in trials for repeat in range(1 if first_only else repeats)
        ]
        returns: dict[int, list[JobReturn]] = {trial.number: [] for trial in trials}
        for (trial, _), job in zip(wave, self._launch_jobs(wave, context), strict=True):
            returns[trial.number].append(job)
        if first_only:
            survivors = [trial for trial in trials if _completed(returns[trial.number][0])]
            rest = [(trial, repeat) for trial in survivors for repeat in range(1, repeats)]
            for (survivor, _), job in zip(rest, self._launch_jobs(rest, context), strict=True):
                returns[survivor.number].append(job)
        return returns

    def _launch_jobs(
        self, jobs: Sequence[tuple[optuna.Trial, int]], context: TrialContext
    ) -> Sequence[JobReturn]:
        return self.jobs.launch([self._overrides(trial, context, repeat) for trial, repeat in jobs])

    def _overrides(self, trial: optuna.Trial, context: TrialContext, repeat: int) -> list[str]:
        plan = self.plan
        seed, split_seed = repeat_seeds(plan.repeat_over, repeat, **self.jobs.base_seeds(trial))
        trial.set_user_attr(studies.SEED_ATTR.format(repeat=repeat), seed)
        trial.set_user_attr(studies.SPLIT_SEED_ATTR.format(repeat=repeat), split_seed)
        seeds = {"trainer.seed": seed, "data.split_seed": split_seed}
        job_context = dataclasses.replace(
            context,
            number=trial.number,
            repeat=repeat,
            job_name=f"trial-{trial.number}-repeat-{repeat}",
        )
        # Only the seeds repeats vary are set here; a plain or swept seed stays as given.
        varied = {key: seeds[key] for key in repeated_seeds(plan.repeats, plan.repeat_over)}
        return self.jobs.overrides(trial.params, job_context, seeds=varied)

    def _tell(self, trial: optuna.Trial, returns: Sequence[JobReturn]) -> Told:
        try:
            return self._record(trial, returns)
        except UpdateFinishedTrialError:
            return dropped(trial)

    def _record(self, trial: optuna.Trial, returns: Sequence[JobReturn]) -> Told:
        """Record the jobs' results on the trial and tell the study how it ended.

        Raises:
            UpdateFinishedTrialError: another worker finished the trial meanwhile.
        """
        study = self.study
        line = TrialLine(trial.number, dict(trial.params), "FAIL")
        outcomes = []
        for repeat, job in enumerate(returns):
            try:
                outcome = job.return_value  # re-raises the job's exception if it failed
            except Exception as error:
                return self._failed(trial, repeat, error, line)
            trial.set_user_attr(studies.METRICS_ATTR.format(repeat=repeat), outcome["metrics"])
            trial.set_user_attr(studies.RUN_ID_ATTR.format(repeat=repeat), outcome["run_id"])
            outcomes.append(outcome)
        line.seconds = sum(float(o.get("seconds") or 0.0) for o in outcomes)
        if any(outcome["state"] == "PRUNED" for outcome in outcomes):
            _told(tell(study, trial, state=TrialState.PRUNED))
            epoch = next(o["pruned_at_epoch"] for o in outcomes if o["state"] == "PRUNED")
            line.state, line.detail = "PRUNED", f"at epoch {epoch}"
            return {"number": trial.number, "state": "PRUNED"}, line
        names = self.plan.objectives.names
        values = [statistics.fmean(float(o["metrics"][name]) for o in outcomes) for name in names]
        _told(tell(study, trial, values=values))
        line.state = "COMPLETE"
        line.val_accuracies = [float(o["metrics"]["val_accuracy"]) for o in outcomes]
        line.trainable_params = float(outcomes[0]["metrics"]["trainable_params"])
        return {"number": trial.number, "state": "COMPLETE", "values": values}, line

    def _failed(self, trial: optuna.Trial, repeat: int, error: Exception, line: TrialLine) -> Told:
        """A repeat failed: the trial fails; a stopped job's configuration is queued again."""
        study = self.study
        # Error texts may quote a URL with its password (MLflow's do).
        reason = redact_text(str(error), self.tracking_uri, self.plan.storage_url)
        log.warning("Trial %d repeat %d failed: %s", trial.number, repeat, reason)
        trial.set_user_attr(f"capsweep.error.{repeat}", reason[:1000])
        line.detail = f"(repeat {repeat}): {(reason.splitlines() or [''])[0][:200]}"
        if isinstance(error, JobTerminated):
            # Cancelled or preempted, not the configuration's fault: train it again
            # (queued before the trial fails, so a kill in between loses nothing).
            frozen = studies.frozen_trial(study, trial.number)
            run_id = frozen.user_attrs.get(studies.RUN_ID_ATTR.format(repeat=repeat))
            if run_id:  # a job killed before it could end its run
                tracking.end_if_running(self.tracking_uri, str(run_id), "KILLED")
            studies.enqueue_again(study, frozen, **{studies.REQUEUED_ATTR: trial.number})
            _told(tell(study, trial, state=TrialState.FAIL))
            line.detail += "; queued again"
            return {"number": trial.number, "state": "REQUEUED", "error": reason}, line
        _told(tell(study, trial, state=TrialState.FAIL))
        return {"number": trial.number, "state": "FAIL", "error": reason}, line


def _told(stored: bool) -> None:
    """Raise when the study kept another worker's verdict instead of this one."""
    if not stored:
        raise UpdateFinishedTrialError("finished by another worker")


def _completed(job: JobReturn) -> bool:
    """Whether a job trained its repeat to the end (neither failed nor pruned)."""
    return job.status == JobStatus.COMPLETED and job.return_value["state"] == "COMPLETE"
