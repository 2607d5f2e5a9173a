"""The sweep loop behind ``capsweep -m``: Optuna ask/tell over Hydra's launcher.

Each Optuna trial is one configuration; with ``repeats: k`` it is launched as k Hydra
jobs with different seeds and told the mean. Several ``capsweep -m`` processes on one or
many hosts share a study through its storage: no batch barrier between them, and
``n_trials`` counts finished trials across all of them. Trials run through the launcher,
possibly on other hosts, so this module never imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig
from optuna.trial import TrialState

from capsweep.settings import TrialContext
from capsweep.sweep import study as studies
from capsweep.sweep.plan import SweepPlan
from capsweep.sweep.pruning import study_pruner
from capsweep.sweep.recovery import recover_stale_trials
from capsweep.sweep.search_space import override_value
from capsweep.sweep.study import tell
from capsweep.sweep.summary import SweepSummary

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
        self.job_index = 0

    def run(self) -> list[dict[str, Any]]:
        """Run the sweep until the study holds ``n_trials`` finished trials."""
        plan = self.plan
        study, created = studies.open_study(
            studies.open_storage(plan.storage_url),
            plan.study_name,
            directions=plan.objectives.directions,
            objectives=plan.objectives.names,
            space_signature=plan.space.signature(),
            space_description=plan.space.describe(),
            sampler=plan.sampler,
            pruner=study_pruner(plan.pruner),
        )
        log.info(
            "Study %r in %s: %s %s, sampler %s, %d finished trials wanted (%s)",
            plan.study_name,
            studies.redact(plan.storage_url),
            plan.objectives.directions,
            plan.objectives.names,
            plan.sampler_name,
            plan.n_trials,
            "new" if created else "resumed",
        )
        summary = SweepSummary.open(
            self.config,
            study,
            created=created,
            storage_url=plan.storage_url,
            report_dir=Path(str(self.config.hydra.sweep.dir)) / "report",
        )
        recover_stale_trials(
            study,
            stale_after=plan.stale_after_seconds,
            tracking_uri=str(self.config.tracking.uri),
        )
        context = TrialContext(
            storage=plan.storage_url,
            study_name=plan.study_name,
            pruner=plan.pruner_name,
            pruner_options=plan.pruner_options,
            multi_objective=plan.objectives.multi,
            parent_run_id=summary.parent_run_id,
        )
        self.launcher = Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=self.task_function
        )
        return self._loop(study, context, summary)

    def _loop(
        self, study: optuna.Study, context: TrialContext, summary: SweepSummary
    ) -> list[dict[str, Any]]:
        plan = self.plan
        failures = 0
        results: list[dict[str, Any]] = []
        while True:
            counts = studies.count_states(study)
            finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
            wanted = plan.n_trials - finished - counts[TrialState.RUNNING]
            if wanted <= 0 or self._grid_exhausted(study):
                break
            trials = self._ask(study, min(plan.batch_size, wanted))
            if not trials:
                break
            job_overrides = [
                self._job_overrides(trial, context, repeat)
                for trial in trials
                for repeat in range(plan.repeats)
            ]
            returns = self.launcher.launch(job_overrides, initial_job_idx=self.job_index)
            self.job_index += len(returns)
            for position, trial in enumerate(trials):
                trial_returns = returns[position * plan.repeats : (position + 1) * plan.repeats]
                result = self._tell(study, trial, trial_returns)
                results.append(result)
                failures += result["state"] == "FAIL"
            summary.update()
            if failures > plan.max_failures:
                raise RuntimeError(
                    f"{failures} trials failed in this sweep (hydra.sweeper.max_failures="
                    f"{plan.max_failures}); the first failure is in the log above"
                )
        summary.update(final=True)
        return results

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        sampler = study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)

    def _ask(self, study: optuna.Study, count: int) -> list[optuna.Trial]:
        """Ask up to ``count`` trials; give back any that another worker made surplus."""
        trials = []
        for _ in range(count):
            trial = study.ask(fixed_distributions=self.plan.space.distributions)
            trial.set_user_attr(studies.OWNER_ATTR, studies.owner_tag())
            if studies.trials_ahead(study, trial.number) >= self.plan.n_trials:
                # Another worker asked at the same moment and n_trials is reached: queue
                # the parameters for a later resume instead of exceeding n_trials.
                trial.set_user_attr(studies.SURPLUS_ATTR, True)
                tell(study, trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, skip_if_exists=True)
                break
            trials.append(trial)
        return trials

    def _job_overrides(self, trial: optuna.Trial, context: TrialContext, repeat: int) -> list[str]:
        space = self.plan.space
        seed = int(self.config.trainer.seed) + repeat
        return [
            *(f"{name}={value}" for name, value in space.fixed.items()),
            *(f"{name}={override_value(value)}" for name, value in trial.params.items()),
            f"trainer.seed={seed}",
            *dataclasses.replace(context, number=trial.number, repeat=repeat).as_overrides(),
        ]

    def _tell(
        self, study: optuna.Study, trial: optuna.Trial, returns: Sequence[JobReturn]
    ) -> dict[str, Any]:
        outcomes = []
        for repeat, job in enumerate(returns):
            try:
                outcome = job.return_value  # re-raises the job's exception if it failed
            except Exception as error:
                log.warning("Trial %d repeat %d failed: %s", trial.number, repeat, error)
                trial.set_user_attr(f"capsweep.error.{repeat}", str(error)[:1000])
                tell(study, trial, state=TrialState.FAIL)
                return {"number": trial.number, "state": "FAIL", "error": str(error)}
            trial.set_user_attr(studies.METRICS_ATTR.format(repeat=repeat), outcome["metrics"])
            trial.set_user_attr(studies.RUN_ID_ATTR.format(repeat=repeat), outcome["run_id"])
            outcomes.append(outcome)
        if any(outcome["state"] == "PRUNED" for outcome in outcomes):
            tell(study, trial, state=TrialState.PRUNED)
            log.info("Trial %d pruned %s", trial.number, trial.params)
            return {"number": trial.number, "state": "PRUNED"}
        names = self.plan.objectives.names
        values = [statistics.fmean(float(o["metrics"][name]) for o in outcomes) for name in names]
        if len(outcomes) > 1:
            accuracies = [float(o["metrics"]["val_accuracy"]) for o in outcomes]
            trial.set_user_attr("capsweep.val_accuracy_std", statistics.stdev(accuracies))
        tell(study, trial, values=values)
        log.info(
            "Trial %d %s: %s",
            trial.number,
            trial.params,
            ", ".join(f"{n}={v:.4g}" for n, v in zip(names, values, strict=True)),
        )
        return {"number": trial.number, "state": "COMPLETE", "values": values}
