"""The sweep loop behind ``capsweep -m``: Optuna ask/tell over Hydra's launcher.

Each Optuna trial is one configuration; with ``repeats: k`` it is launched as k Hydra
jobs with different seeds and told the mean. Several ``capsweep -m`` processes on one or
many hosts share a study through its storage: no batch barrier between them, and
``n_trials`` counts finished trials across all of them. Trials run through the launcher,
possibly on other hosts, so this module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import socket
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from capsweep import tracking
from capsweep.redaction import redact_text, redact_url
from capsweep.settings import TrialContext
from capsweep.signals import JobTerminated, uninterrupted
from capsweep.sweep import launching
from capsweep.sweep import study as studies
from capsweep.sweep.cache_cuts import cache_overrides
from capsweep.sweep.job_settings import configuration_settings
from capsweep.sweep.liveness import beat_interval, heartbeat, trial_ids
from capsweep.sweep.progress import SweepProgress, TrialLine, job_line
from capsweep.sweep.pruning import study_pruner
from capsweep.sweep.recovery import recover_stale_trials
from capsweep.sweep.samplers import make_sampler
from capsweep.sweep.search_space import override_value
from capsweep.sweep.study import tell
from capsweep.sweep.summary import Report, SweepSummary
from capsweep.sweep.sweep_plan import SweepPlan, repeated_seeds
from capsweep.sweep.tuning import (
    CHOSEN_ATTR,
    SEARCH,
    TRIED_ATTR,
    ConfigurationTuning,
    TuningJob,
    confirmation_values,
)

log = logging.getLogger(__name__)

# What a tuned configuration's trial takes from each confirmation (written for repeat 0).
CONFIRMATION_ATTRS = (
    studies.METRICS_ATTR,
    studies.RUN_ID_ATTR,
    studies.SEED_ATTR,
    studies.SPLIT_SEED_ATTR,
)


class SweepLoop:
    """One ``capsweep -m`` invocation of a checked plan: open the study, ask, launch, tell."""

    def __init__(
        self,
        plan: SweepPlan,
        config: DictConfig,
        hydra_context: HydraContext,
        task_function: TaskFunction,
    ) -> None:
        self.plan = plan
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.job_index = 0
        capacity = config.capacity
        self.cache_overrides = cache_overrides(plan.space, capacity.unfreeze, capacity.position)

    def run(self) -> list[dict[str, Any]]:
        """Run the sweep until the study holds ``n_trials`` finished trials."""
        plan = self.plan
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # capsweep says it in one line
        tracking_settings = self.config.tracking
        # A tracking server that is down is refused before any study or run exists.
        tracking.prepare_tracking(
            str(tracking_settings.uri),
            request_timeout=int(tracking_settings.request_timeout),
            max_retries=int(tracking_settings.max_retries),
        )
        self.storage = studies.open_storage(plan.storage_url)
        study, created = studies.open_study(
            self.storage,
            plan.study_name,
            directions=plan.objectives.directions,
            objectives=plan.objectives.names,
            space_signature=plan.space.signature(),
            space_description=plan.space.describe(),
            repeats={"repeats": plan.repeats, "over": plan.repeat_over},
            nuisance=plan.nuisance.description() if plan.nuisance else None,
            fixed=plan.fixed,
            sampler=plan.sampler,
            pruner=study_pruner(plan.pruner),
        )
        if created:
            for point in plan.space.points:  # a listed sweep: every point queued once
                study.enqueue_trial(point)
        summary = SweepSummary.open(
            self.config,
            study,
            created=created,
            storage_url=plan.storage_url,
            report_dir=Path(str(self.config.hydra.sweep.dir)) / "report",
        )
        self.sampler_seed = plan.seed
        if not created and plan.seed is not None:
            # Workers that join a study each get their own seed: with the same one, they
            # would all propose the same parameters.
            self.sampler_seed = worker_seed(plan.seed)
            study.sampler = make_sampler(
                plan.sampler_name, plan.sampler_options, seed=self.sampler_seed, space=plan.space
            )
        uri = str(self.config.tracking.uri)
        self.tracking_uri = uri
        recover_stale_trials(study, stale_after=plan.stale_after_seconds, tracking_uri=uri)
        context = TrialContext(
            storage=plan.job_storage,
            study_name=plan.study_name,
            pruner=plan.pruner_name,
            pruner_options=plan.pruner_options,
            multi_objective=plan.objectives.multi,
            parent_run_id=summary.parent_run_id,
            gpus=plan.gpus,
        )
        self.launcher = Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=self.task_function
        )
        progress = SweepProgress(total=plan.n_trials, done=_finished(study))
        progress.say(
            f"Study {plan.study_name!r} ({'new' if created else 'resumed'}) in "
            f"{studies.redact(plan.storage_url)}: {plan.n_trials} trials of "
            f"{plan.space.describe_short()}, {plan.sampler_name} sampler"
            + (f", {plan.repeats} repeats each over {plan.repeat_over}" if plan.repeats > 1 else "")
        )
        with (
            tracking.sweep_run(
                uri, summary.parent_run_id, others_at_work=lambda: _running(study) > 0
            ),
            progress,
        ):
            results = self._loop(study, context, summary, progress)
        _tell_the_outcome(progress, summary.update(), summary, uri)
        return results

    def _loop(
        self,
        study: optuna.Study,
        context: TrialContext,
        summary: SweepSummary,
        progress: SweepProgress,
    ) -> list[dict[str, Any]]:
        plan = self.plan
        failures = failures_in_a_row = 0
        results: list[dict[str, Any]] = []
        summarized = time.monotonic()
        waiting_said = False
        while True:
            # Every pass, not only at start-up: a worker may have died since.
            recover_stale_trials(
                study, stale_after=plan.stale_after_seconds, tracking_uri=self.tracking_uri
            )
            counts = studies.count_states(study)
            running = counts[TrialState.RUNNING]
            wanted = plan.n_trials - _finished(study) - running
            if wanted <= 0 or self._grid_exhausted(study, queued=counts[TrialState.WAITING]):
                if running == 0 or not plan.wait_for_others:
                    break
                if not waiting_said:
                    progress.say(
                        f"Waiting for {running} trial(s) of other workers (retraining any "
                        "whose worker dies)"
                    )
                    waiting_said = True
                time.sleep(_poll_interval(plan.stale_after_seconds))
                continue
            waiting_said = False
            trials = self._ask(study, min(plan.batch_size, wanted))
            if not trials:
                continue
            ids = trial_ids(self.storage, plan.study_name, [t.number for t in trials])
            # Marked alive from a thread while the jobs wait in a queue and train: a long
            # epoch must not look like a dead worker to the others.
            # (and until each is told: a late mark would let another worker fail it meanwhile)
            try:
                with heartbeat(self.storage, ids, interval=beat_interval(plan.stale_after_seconds)):
                    if plan.nuisance is None:
                        returns = self._launch(trials, context)
                        told = [self._tell(study, trial, returns[trial.number]) for trial in trials]
                    else:
                        told = self._tune(study, trials, context, progress)
            except BaseException as error:  # a signal, preemption, a crash: nothing is lost
                self._give_back(study, trials, error)
                raise
            for result, line in told:
                progress.trial_finished(line)
                results.append(result)
                if result["state"] == "DROPPED":
                    continue  # neither a success nor a failure of this worker's
                failed = result["state"] == "FAIL"
                failures += failed
                failures_in_a_row = failures_in_a_row + 1 if failed else 0
            if time.monotonic() - summarized >= plan.summary_every_seconds:
                summary.update()
                summarized = time.monotonic()
            self._check_failure_budget(failures, failures_in_a_row)
        return results

    def _tune(
        self,
        study: optuna.Study,
        trials: Sequence[optuna.Trial],
        context: TrialContext,
        progress: SweepProgress,
    ) -> list[tuple[dict[str, Any], TrialLine]]:
        """Tune and confirm each configuration of ``trials``; tell the study their scores.

        Every round launches what each configuration needs next (its candidates, then its
        chosen candidate's confirmations, then anything queued again) as one batch.
        """
        tunings = [self._tuning(study, trial) for trial in trials]
        try:
            while True:
                jobs = [job for tuning in tunings for job in tuning.next_jobs()]
                if not jobs:
                    break
                overrides = [self._tuning_overrides(job, context) for job in jobs]
                returns = launching.launch(self.launcher, overrides, self.job_index)
                self.job_index += len(returns)
                for job, result in zip(jobs, returns, strict=True):
                    progress.say(job_line(job.tuning.record(job, result), self.plan.nuisance))
        except BaseException as error:
            with uninterrupted():
                for tuning in tunings:
                    tuning.give_back(error)
            raise
        return [self._tell_tuned(study, tuning) for tuning in tunings]

    def _tuning(self, study: optuna.Study, trial: optuna.Trial) -> ConfigurationTuning:
        plan = self.plan
        assert plan.nuisance is not None
        settings = configuration_settings(self.config, plan.space, trial.params)
        return ConfigurationTuning(
            storage=self.storage,
            sweep_study=study,
            sweep_trial=trial,
            plan=plan.nuisance,
            effective=plan.nuisance.effective(settings),
            repeats=plan.repeats,
            seed=plan.seed,
            pruner=plan.pruner,
            tracking_uri=self.tracking_uri,
            secrets=(self.tracking_uri, plan.storage_url),
        )

    def _tuning_overrides(self, job: TuningJob, context: TrialContext) -> list[str]:
        """A candidate's first run trains with the base seeds, its second with the next, a
        confirmation with fresh ones after those."""
        plan = self.plan
        sweep_trial = job.tuning.sweep_trial
        seed, split_seed = repeat_seeds(
            plan.repeat_over, job.seed_index, **self._base_seeds(sweep_trial)
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
        return [
            *self.cache_overrides,
            *(f"{name}={value}" for name, value in plan.space.fixed.items()),
            *(f"{name}={override_value(value)}" for name, value in sweep_trial.params.items()),
            *(f"{name}={override_value(value)}" for name, value in job.values.items()),
            f"trainer.seed={seed}",
            f"data.split_seed={split_seed}",
            *job_context.as_overrides(),
        ]

    def _base_seeds(self, trial: optuna.Trial) -> dict[str, int]:
        """The seeds a trial's configuration starts from: swept, or the configuration's."""
        return {
            "seed": int(trial.params.get("trainer.seed", self.config.trainer.seed)),
            "split_seed": int(trial.params.get("data.split_seed", self.config.data.split_seed)),
        }

    def _tell_tuned(
        self, study: optuna.Study, tuning: ConfigurationTuning
    ) -> tuple[dict[str, Any], TrialLine]:
        """Record a tuned configuration's confirmations on its trial and tell its score."""
        trial = tuning.sweep_trial
        line = TrialLine(trial.number, dict(trial.params), "FAIL")
        outcome = tuning.confirmed()
        try:
            if outcome is None:
                reason = tuning.failure or "its confirmations did not complete"
                trial.set_user_attr("capsweep.error.0", reason[:1000])
                line.detail = reason[:200]
                if not tell(study, trial, state=TrialState.FAIL):
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
            if not tell(study, trial, values=values):
                raise UpdateFinishedTrialError(f"trial {trial.number}")
        except UpdateFinishedTrialError:
            return self._dropped(trial)
        metrics = [c.user_attrs[studies.METRICS_ATTR.format(repeat=0)] for c in confirmations]
        line.state = "COMPLETE"
        line.val_accuracies = [float(m["val_accuracy"]) for m in metrics]
        line.trainable_params = float(metrics[0]["trainable_params"])
        line.nuisance = outcome["attrs"][CHOSEN_ATTR]
        line.tried = outcome["attrs"][TRIED_ATTR]
        return {"number": trial.number, "state": "COMPLETE", "values": values}, line

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
        if not jobs:
            return []
        overrides = [self._job_overrides(trial, context, repeat) for trial, repeat in jobs]
        returns = launching.launch(self.launcher, overrides, self.job_index)
        self.job_index += len(returns)
        return returns

    def _give_back(
        self, study: optuna.Study, trials: Sequence[optuna.Trial], error: BaseException
    ) -> None:
        """Queue again, then fail, the trials this worker can no longer tell, so others train
        them now rather than after ``stale_after_seconds``."""
        with uninterrupted():
            for trial in trials:
                frozen = study.get_trials(deepcopy=False)[trial.number]
                if frozen.state.is_finished():
                    continue
                queued = studies.enqueue_again(
                    study, frozen, **{studies.REQUEUED_ATTR: trial.number}
                )
                with contextlib.suppress(UpdateFinishedTrialError):
                    trial.set_user_attr(
                        "capsweep.error.0", f"the worker stopped ({type(error).__name__})"
                    )
                tell(study, trial, state=TrialState.FAIL)
                log.warning(
                    "Trial %d given back (%s)%s",
                    trial.number,
                    type(error).__name__,
                    ": parameters queued again" if queued else "",
                )

    def _check_failure_budget(self, failures: int, in_a_row: int) -> None:
        plan = self.plan
        if failures > plan.max_failures:
            raise RuntimeError(
                f"{failures} trials failed in this sweep (hydra.sweeper.max_failures="
                f"{plan.max_failures}); the first failure is in the log above"
            )
        if plan.max_failures_in_a_row is not None and in_a_row >= plan.max_failures_in_a_row:
            raise RuntimeError(
                f"the last {in_a_row} trials failed in a row (hydra.sweeper."
                f"max_failures_in_a_row={plan.max_failures_in_a_row}): stopping rather than "
                "spending the allocation on a setup that fails; the errors are in the log "
                "above and in the trials' capsweep.error attributes (capsweep-report lists them)"
            )

    def _grid_exhausted(self, study: optuna.Study, *, queued: int) -> bool:
        """Whether a grid has nothing left: GridSampler counts a failed point as visited,
        so a point queued again (a dead worker's) keeps the grid open. Listed points
        are all queued when the study is created: none queued is none left."""
        if self.plan.space.points:
            return queued == 0
        sampler = study.sampler
        return (
            isinstance(sampler, optuna.samplers.GridSampler)
            and queued == 0
            and sampler.is_exhausted(study)
        )

    def _ask(self, study: optuna.Study, count: int) -> list[optuna.Trial]:
        """Ask up to ``count`` trials; give back any that another worker made surplus."""
        trials = []
        grid = isinstance(study.sampler, optuna.samplers.GridSampler)
        tuned = self.plan.nuisance is not None
        for _ in range(count):
            trial = study.ask(fixed_distributions=self.plan.space.distributions)
            trial.set_user_attr(studies.OWNER_ATTR, self._owner())
            frozen = study.get_trials(deepcopy=False)[trial.number]
            if studies.trials_ahead(study, trial.number) >= self.plan.n_trials:
                # Another worker asked at the same moment and n_trials is reached: give the
                # parameters back for a later resume instead of exceeding n_trials.
                trial.set_user_attr(studies.SURPLUS_ATTR, True)
                studies.enqueue_again(study, frozen, **{studies.REQUEUED_ATTR: trial.number})
                tell(study, trial, state=TrialState.FAIL)
                break
            # Two workers drew the same grid point at the same moment: one trains it. A tuned
            # configuration is one study of its own, driven by one worker at a time.
            duplicate = studies.duplicate_of(study, frozen) if grid or tuned else None
            if duplicate is not None:
                trial.set_user_attr(studies.DUPLICATE_ATTR, duplicate)
                tell(study, trial, state=TrialState.FAIL)
                continue
            trials.append(trial)
        return trials

    def _owner(self) -> dict[str, Any]:
        return {**studies.owner_tag(), "sampler_seed": self.sampler_seed}

    def _job_overrides(self, trial: optuna.Trial, context: TrialContext, repeat: int) -> list[str]:
        plan = self.plan
        seed, split_seed = repeat_seeds(plan.repeat_over, repeat, **self._base_seeds(trial))
        trial.set_user_attr(studies.SEED_ATTR.format(repeat=repeat), seed)
        trial.set_user_attr(studies.SPLIT_SEED_ATTR.format(repeat=repeat), split_seed)
        seeds = {"trainer.seed": seed, "data.split_seed": split_seed}
        return [
            *self.cache_overrides,
            *(f"{name}={value}" for name, value in plan.space.fixed.items()),
            *(f"{name}={override_value(value)}" for name, value in trial.params.items()),
            # Only the seeds repeats vary are set here; a plain or swept seed stays as given.
            *(f"{key}={seeds[key]}" for key in repeated_seeds(plan.repeats, plan.repeat_over)),
            *dataclasses.replace(
                context,
                number=trial.number,
                repeat=repeat,
                job_name=f"trial-{trial.number}-repeat-{repeat}",
            ).as_overrides(),
        ]

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, returns: Sequence[JobReturn]
    ) -> tuple[dict[str, Any], TrialLine]:
        try:
            if not study.get_trials(deepcopy=False)[trial.number].state.is_finished():
                return self._record(study, trial, returns)
        except UpdateFinishedTrialError:
            pass
        return self._dropped(trial)

    def _dropped(self, trial: optuna.Trial) -> tuple[dict[str, Any], TrialLine]:
        # Another worker took this one's for dead (no liveness mark for stale_after_seconds)
        # and queued the configuration again: the result stays in MLflow; the study keeps
        # the retrained one.
        line = TrialLine(trial.number, dict(trial.params), "DROPPED")
        line.detail = "taken for dead by another worker, queued again"
        log.warning("Trial %d: %s; result dropped", trial.number, line.detail)
        return {"number": trial.number, "state": "DROPPED"}, line

    def _record(
        self, study: optuna.Study, trial: optuna.Trial, returns: Sequence[JobReturn]
    ) -> tuple[dict[str, Any], TrialLine]:
        """Record the jobs' results on the trial and tell the study how it ended."""
        line = TrialLine(trial.number, dict(trial.params), "FAIL")
        outcomes = []
        for repeat, job in enumerate(returns):
            try:
                outcome = job.return_value  # re-raises the job's exception if it failed
            except Exception as error:
                # Error texts may quote a URL with its password (MLflow's do).
                reason = redact_text(str(error), self.tracking_uri, self.plan.storage_url)
                log.warning("Trial %d repeat %d failed: %s", trial.number, repeat, reason)
                trial.set_user_attr(f"capsweep.error.{repeat}", reason[:1000])
                line.detail = f"(repeat {repeat}): {(reason.splitlines() or [''])[0][:200]}"
                if isinstance(error, JobTerminated):
                    # Cancelled or preempted, not the configuration's fault: train it again
                    # (queued before the trial fails, so a kill in between loses nothing).
                    frozen = study.get_trials(deepcopy=False)[trial.number]
                    run_id = frozen.user_attrs.get(studies.RUN_ID_ATTR.format(repeat=repeat))
                    if run_id:  # a job killed before it could end its run
                        tracking.end_if_running(self.tracking_uri, str(run_id), "KILLED")
                    studies.enqueue_again(study, frozen, **{studies.REQUEUED_ATTR: trial.number})
                    tell(study, trial, state=TrialState.FAIL)
                    line.detail += "; queued again"
                    return {"number": trial.number, "state": "REQUEUED", "error": reason}, line
                tell(study, trial, state=TrialState.FAIL)
                return {"number": trial.number, "state": "FAIL", "error": reason}, line
            trial.set_user_attr(studies.METRICS_ATTR.format(repeat=repeat), outcome["metrics"])
            trial.set_user_attr(studies.RUN_ID_ATTR.format(repeat=repeat), outcome["run_id"])
            outcomes.append(outcome)
        line.seconds = sum(float(o.get("seconds") or 0.0) for o in outcomes)
        if any(outcome["state"] == "PRUNED" for outcome in outcomes):
            tell(study, trial, state=TrialState.PRUNED)
            epoch = next(o["pruned_at_epoch"] for o in outcomes if o["state"] == "PRUNED")
            line.state, line.detail = "PRUNED", f"at epoch {epoch}"
            return {"number": trial.number, "state": "PRUNED"}, line
        names = self.plan.objectives.names
        values = [statistics.fmean(float(o["metrics"][name]) for o in outcomes) for name in names]
        accuracies = [float(o["metrics"]["val_accuracy"]) for o in outcomes]
        tell(study, trial, values=values)
        line.state, line.val_accuracies = "COMPLETE", accuracies
        line.trainable_params = float(outcomes[0]["metrics"]["trainable_params"])
        return {"number": trial.number, "state": "COMPLETE", "values": values}, line


def repeat_seeds(repeat_over: str, repeat: int, *, seed: int, split_seed: int) -> tuple[int, int]:
    """The trainer seed and split seed of one repeat: each moves with the repeat if varied."""
    return (
        seed + repeat if repeat_over in ("seed", "both") else seed,
        split_seed + repeat if repeat_over in ("split", "both") else split_seed,
    )


def worker_seed(seed: int) -> int:
    """A sampler seed of this worker's own, derived from the sweep's ``seed``.

    The worker that creates the study uses ``seed`` itself (a one-worker sweep stays
    reproducible); each one that joins derives its own from its host, process and Slurm
    array task.
    """
    who = f"{seed}:{socket.gethostname()}:{os.getpid()}:{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return int.from_bytes(hashlib.sha256(who.encode()).digest()[:4], "big")


def _poll_interval(stale_after: float) -> float:
    """How often a waiting worker looks at the other workers' trials."""
    return min(max(stale_after / 4, 0.5), 5.0)


def _completed(job: JobReturn) -> bool:
    """Whether a job trained its repeat to the end (neither failed nor pruned)."""
    return job.status == JobStatus.COMPLETED and job.return_value["state"] == "COMPLETE"


def _finished(study: optuna.Study) -> int:
    counts = studies.count_states(study)
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


def _running(study: optuna.Study) -> int:
    return studies.count_states(study)[TrialState.RUNNING]


def _tell_the_outcome(
    progress: SweepProgress, report: Report, summary: SweepSummary, uri: str
) -> None:
    """The last lines of a sweep: the recommendation, the report, the MLflow UI command."""
    if report.unfinished:
        states = Counter(trial.state.lower() for trial in report.unfinished)
        progress.say(
            f"{len(report.unfinished)} trial(s) did not finish ("
            + ", ".join(f"{count} {state}" for state, count in sorted(states.items()))
            + "): capsweep-report lists each with its reason"
        )
    if report.recommendation is None:
        progress.say(f"No recommendation yet: {report.problem}")
    else:
        progress.say(f"Recommendation: {report.recommendation.reason}")
        progress.say(f"Report: {summary.report_dir}")
    progress.say(
        f"MLflow: mlflow ui --backend-store-uri {redact_url(uri)}  "
        f"(sweep run {summary.parent_run_id})"
    )
