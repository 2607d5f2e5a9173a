"""The sweep loop behind ``capsweep -m``: Optuna ask/tell over Hydra's launcher.

Each Optuna trial is one configuration. Without nuisance tuning it is launched as k Hydra
jobs with different seeds and told the mean (:mod:`capsweep.sweep.repeats`); with it, its
nuisance candidates are tried and the best confirmed first
(:mod:`capsweep.sweep.tuned_batch`). Several ``capsweep -m`` processes on one or many hosts
share a study through its storage: no batch barrier between them, and ``n_trials`` counts
finished trials across all of them. Each pass of the loop reads the study's trials once.
Trials run through the launcher, possibly on other hosts, so this module never imports
TensorFlow.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial, TrialState

from capsweep import tracking
from capsweep.redaction import redact_url
from capsweep.settings import TrialContext
from capsweep.signals import uninterrupted
from capsweep.sweep import study as studies
from capsweep.sweep.jobs import SweepJobs, Told
from capsweep.sweep.liveness import beat_interval, heartbeat, trial_ids
from capsweep.sweep.progress import SweepProgress
from capsweep.sweep.pruning import study_pruner
from capsweep.sweep.recovery import recover_stale_trials
from capsweep.sweep.repeats import RepeatedBatch
from capsweep.sweep.samplers import make_sampler
from capsweep.sweep.study import tell
from capsweep.sweep.summary import Report, SweepSummary
from capsweep.sweep.sweep_plan import SweepPlan
from capsweep.sweep.tuned_batch import TunedBatch

log = logging.getLogger(__name__)


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
        study, created = self._open_study()
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
        context = TrialContext(
            storage=plan.job_storage,
            study_name=plan.study_name,
            pruner=plan.pruner_name,
            pruner_options=plan.pruner_options,
            multi_objective=plan.objectives.multi,
            parent_run_id=summary.parent_run_id,
            gpus=plan.gpus,
        )
        launcher = Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=self.task_function
        )
        self.jobs = SweepJobs(plan, self.config, launcher)
        trials = self._read(study)
        progress = SweepProgress(total=plan.n_trials, done=_finished(trials))
        progress.say(
            f"Study {plan.study_name!r} ({'new' if created else 'resumed'}) in "
            f"{studies.redact(plan.storage_url)}: {plan.n_trials} trials of "
            f"{plan.space.describe_short()}, "
            + (
                "listed in hydra.sweeper.points"
                if plan.space.points
                else f"{plan.sampler_name} sampler"
            )
            + (f", {plan.repeats} repeats each over {plan.repeat_over}" if plan.repeats > 1 else "")
        )
        with (
            tracking.sweep_run(
                uri,
                summary.parent_run_id,
                others_at_work=lambda: _running(study.get_trials(deepcopy=False)) > 0,
            ),
            progress,
        ):
            results = self._loop(study, context, summary, progress)
        _tell_the_outcome(progress, summary.update(), summary, uri)
        return results

    def _open_study(self) -> tuple[optuna.Study, bool]:
        plan = self.plan
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
        return study, created

    def _read(self, study: optuna.Study) -> list[FrozenTrial]:
        """The study's trials, once dead workers' trials are given back: read once a pass
        (on PostgreSQL, every read fetches every trial)."""
        trials = study.get_trials(deepcopy=False)
        recovered = recover_stale_trials(
            study,
            stale_after=self.plan.stale_after_seconds,
            tracking_uri=str(self.config.tracking.uri),
            trials=trials,
        )
        return study.get_trials(deepcopy=False) if recovered else trials

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
            counts = studies.count_states(self._read(study))
            running = counts[TrialState.RUNNING]
            wanted = plan.n_trials - counts[TrialState.COMPLETE] - counts[TrialState.PRUNED]
            wanted -= running
            if wanted <= 0 or self._exhausted(study, queued=counts[TrialState.WAITING]):
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
            count = ask_count(
                plan.batch_size, wanted, counts[TrialState.WAITING], listed=bool(plan.space.points)
            )
            trials = self._ask(study, count)
            if not trials:
                continue
            for result, line in self._train(study, trials, context, progress):
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

    def _train(
        self,
        study: optuna.Study,
        trials: Sequence[optuna.Trial],
        context: TrialContext,
        progress: SweepProgress,
    ) -> list[Told]:
        """Train a batch of configurations; give them back if this worker is stopped."""
        plan = self.plan
        ids = trial_ids(self.storage, plan.study_name, [t.number for t in trials])
        # Marked alive from a thread while the jobs wait in a queue and train: a long epoch
        # must not look like a dead worker to the others (and until each is told: a late
        # mark would let another worker fail it meanwhile).
        try:
            with heartbeat(self.storage, ids, interval=beat_interval(plan.stale_after_seconds)):
                if plan.nuisance is None:
                    return RepeatedBatch(self.jobs, study, self.tracking_uri).run(trials, context)
                batch = TunedBatch(self.jobs, study, self.storage, self.tracking_uri)
                return batch.run(trials, context, progress)
        except BaseException as error:  # a signal, preemption, a crash: nothing is lost
            self._give_back(study, trials, error)
            raise

    def _give_back(
        self, study: optuna.Study, trials: Sequence[optuna.Trial], error: BaseException
    ) -> None:
        """Queue again, then fail, the trials this worker can no longer tell, so others train
        them now rather than after ``stale_after_seconds``."""
        with uninterrupted():
            current = study.get_trials(deepcopy=False)
            for trial in trials:
                frozen = current[trial.number]
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

    def _exhausted(self, study: optuna.Study, *, queued: int) -> bool:
        """Whether a grid or a list of points has nothing left.

        GridSampler counts a failed point as visited, so a point queued again (a dead
        worker's) keeps the grid open. Listed points are all queued when the study is
        created: none queued is none left.
        """
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
        asked = []
        for _ in range(count):
            trial = study.ask(fixed_distributions=self.plan.space.distributions)
            trial.set_user_attr(studies.OWNER_ATTR, self._owner())
            asked.append(trial)
        # One read for the whole batch: which trials other workers asked meanwhile.
        current = study.get_trials(deepcopy=False)
        grid = isinstance(study.sampler, optuna.samplers.GridSampler)
        tuned = self.plan.nuisance is not None
        trials = []
        for trial in asked:
            frozen = current[trial.number]
            if studies.trials_ahead(current, trial.number) >= self.plan.n_trials:
                # Another worker asked at the same moment and n_trials is reached: give the
                # parameters back for a later resume instead of exceeding n_trials.
                trial.set_user_attr(studies.SURPLUS_ATTR, True)
                studies.enqueue_again(study, frozen, **{studies.REQUEUED_ATTR: trial.number})
                tell(study, trial, state=TrialState.FAIL)
                continue
            # Two workers drew the same grid point at the same moment: one trains it. A tuned
            # configuration is one study of its own, driven by one worker at a time.
            duplicate = studies.duplicate_of(current, frozen) if grid or tuned else None
            if duplicate is not None:
                trial.set_user_attr(studies.DUPLICATE_ATTR, duplicate)
                tell(study, trial, state=TrialState.FAIL)
                continue
            trials.append(trial)
        return trials

    def _owner(self) -> dict[str, Any]:
        return {**studies.owner_tag(), "sampler_seed": self.sampler_seed}


def ask_count(batch_size: int, wanted: int, queued: int, *, listed: bool) -> int:
    """How many trials a pass asks: a batch, no more than the study still wants, and for a
    listed sweep no more than are queued (asking with an empty queue would sample a
    configuration that is not in the list)."""
    count = min(batch_size, wanted)
    return min(count, queued) if listed else count


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


def _finished(trials: Sequence[FrozenTrial]) -> int:
    counts = studies.count_states(trials)
    return counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]


def _running(trials: Sequence[FrozenTrial]) -> int:
    return studies.count_states(trials)[TrialState.RUNNING]


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
