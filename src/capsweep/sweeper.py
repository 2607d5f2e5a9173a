"""The sweep loop behind ``capsweep -m``: Optuna ask/tell over Hydra's launcher.

Each Optuna trial is one configuration; with ``repeats: k`` it is launched as k Hydra
jobs with different seeds and told the mean. Several ``capsweep -m`` processes on one or
many hosts share a study through its storage: no batch barrier between them, and
``n_trials`` counts finished trials across all of them. This module never imports
TensorFlow: trials run through the launcher, possibly on other hosts.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf
from optuna.trial import TrialState

from capsweep import study as studies
from capsweep.errors import CapsweepConfigError
from capsweep.pruning import make_pruner, study_pruner
from capsweep.search_space import SearchSpace, override_value, parse_search_space
from capsweep.study import tell

log = logging.getLogger(__name__)

DIRECTIONS = ("maximize", "minimize")
_BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"


def make_sampler(
    name: str, options: Mapping[str, Any], *, seed: int | None, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """Build an Optuna sampler by name, or raise naming the choices."""
    factories: dict[str, Any] = {
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
        "nsga2": optuna.samplers.NSGAIISampler,
        "nsga3": optuna.samplers.NSGAIIISampler,
        "qmc": optuna.samplers.QMCSampler,
        "cmaes": optuna.samplers.CmaEsSampler,
        "bruteforce": optuna.samplers.BruteForceSampler,
        "gp": optuna.samplers.GPSampler,
        "grid": None,
    }
    if name not in factories:
        raise CapsweepConfigError(
            "hydra.sweeper.sampler", name, "unknown sampler", choices=sorted(factories)
        )
    try:
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid(), seed=seed, **options)
        sampler: optuna.samplers.BaseSampler = factories[name](seed=seed, **options)
        return sampler
    except TypeError as error:
        raise CapsweepConfigError(
            "hydra.sweeper.sampler_options", dict(options), f"do not fit sampler {name} ({error})"
        ) from None


def as_list(value: Any) -> list[Any]:
    if isinstance(value, ListConfig | list | tuple):
        return list(value)
    return [value]


@dataclass(frozen=True)
class Objectives:
    names: list[str]
    directions: list[str]

    @property
    def multi(self) -> bool:
        return len(self.names) > 1


def parse_objectives(objectives: Any, direction: Any) -> Objectives:
    """Pair objective metric names with directions, or raise naming the bad value."""
    names = [str(name) for name in as_list(objectives)]
    directions = [str(d) for d in as_list(direction)]
    for name in names:
        if name not in studies.OBJECTIVE_METRICS:
            raise CapsweepConfigError(
                "hydra.sweeper.objectives",
                name,
                "unknown metric",
                choices=studies.OBJECTIVE_METRICS,
            )
    for item in directions:
        if item not in DIRECTIONS:
            raise CapsweepConfigError(
                "hydra.sweeper.direction", item, "unknown direction", choices=DIRECTIONS
            )
    if len(names) != len(directions):
        raise CapsweepConfigError(
            "hydra.sweeper.direction",
            directions,
            f"gives {len(directions)} direction(s) for {len(names)} objective(s) {names}",
            fix="give one direction per objective, e.g. direction=[maximize,minimize]",
        )
    return Objectives(names, directions)


def check_param_paths(config: DictConfig, names: Sequence[str]) -> None:
    """Raise when a swept or fixed parameter is neither a config key nor a config group."""
    groups = set(config.hydra.runtime.choices.keys())
    missing = object()
    for name in names:
        key = name.lstrip("+~")
        if name.startswith("+") or key in groups or key.startswith("hydra."):
            continue
        if OmegaConf.select(config, key, default=missing) is missing:
            known = [*groups, *_leaf_keys(config)]
            close = difflib.get_close_matches(key, known, n=3)
            raise CapsweepConfigError(
                "hydra.sweeper.params",
                name,
                "is not a key of the configuration",
                fix=f"did you mean {' or '.join(close)}?" if close else "see capsweep --cfg job",
            )


def _leaf_keys(config: DictConfig) -> list[str]:
    """Every dotted key of the job's configuration (Hydra's own node left out)."""
    plain = OmegaConf.to_container(config, resolve=False)
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                keys.append(f"{prefix}{key}")

    if isinstance(plain, dict):
        walk({key: value for key, value in plain.items() if key != "hydra"}, "")
    return keys


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _dict_override(options: Mapping[str, Any]) -> str:
    return "{" + ",".join(f"{key}:{json.dumps(value)}" for key, value in options.items()) + "}"


class SweepLoop:
    """One ``capsweep -m`` invocation: validate, open the study, ask, launch, tell, report."""

    def __init__(
        self,
        options: Mapping[str, Any],
        config: DictConfig,
        hydra_context: HydraContext,
        task_function: TaskFunction,
    ) -> None:
        self.options = dict(options)
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.job_index = 0

    # -- set-up: everything is checked before the first trial starts ------------------

    def _storage_url(self) -> str:
        return studies.storage_url(
            self.options.get("storage"),
            str(self.config.paths.outputs),
            str(self.options["study_name"]),
        )

    def _check_parallel_storage(self, storage: str) -> None:
        launcher = str(self.config.hydra.launcher.get("_target_", ""))
        parallel = int(self.options.get("n_jobs", 1)) > 1 or launcher != _BASIC_LAUNCHER
        if storage.startswith("sqlite") and parallel:
            raise CapsweepConfigError(
                "hydra.sweeper.storage",
                storage,
                "SQLite cannot serve several workers (it fails with 'database is locked')",
                fix="leave hydra.sweeper.storage unset for a journal file, or use postgresql://",
            )

    def run(self, arguments: list[str]) -> list[dict[str, Any]]:
        options = self.options
        space = parse_search_space(options.get("params") or {}, arguments)
        check_param_paths(self.config, [*space.distributions, *space.fixed])
        objectives = parse_objectives(options.get("objectives"), options.get("direction"))
        pruner = make_pruner(options.get("pruner"), options.get("pruner_options") or {})
        if objectives.multi and pruner is not None and options.get("pruner") != "dominance":
            raise CapsweepConfigError(
                "hydra.sweeper.pruner",
                options.get("pruner"),
                f"Optuna's pruners cannot prune a study with several objectives {objectives.names}",
                fix="use hydra.sweeper.pruner=dominance",
            )
        sampler_name = str(options.get("sampler", "tpe"))
        sampler = make_sampler(
            sampler_name,
            options.get("sampler_options") or {},
            seed=options.get("seed"),
            space=space,
        )
        repeats = int(options.get("repeats", 1))
        if repeats < 1:
            raise CapsweepConfigError("hydra.sweeper.repeats", repeats, "must be >= 1")
        n_trials = options.get("n_trials")
        if n_trials is None:
            n_trials = space.grid_size() if sampler_name == "grid" else 20
        if int(n_trials) < 1:
            raise CapsweepConfigError("hydra.sweeper.n_trials", n_trials, "must be >= 1")
        storage_url = self._storage_url()
        self._check_parallel_storage(storage_url)
        storage = studies.open_storage(storage_url)
        study_name = str(options["study_name"])
        study, created = studies.open_study(
            storage,
            study_name,
            directions=objectives.directions,
            objectives=objectives.names,
            space_signature=space.signature(),
            space_description=space.describe(),
            sampler=sampler,
            pruner=study_pruner(pruner),
        )
        log.info(
            "Study %r in %s: %s %s, sampler %s, %d finished trials wanted (%s)",
            study_name,
            studies.redact(storage_url),
            objectives.directions,
            objectives.names,
            sampler_name,
            n_trials,
            "new" if created else "resumed",
        )
        from capsweep.summary import SweepSummary

        summary = SweepSummary.open(
            self.config,
            study,
            created=created,
            storage_url=storage_url,
            report_dir=Path(str(self.config.hydra.sweep.dir)) / "report",
        )
        stale = studies.recover_stale_trials(
            study, stale_after=float(options.get("stale_after_seconds", 1800.0))
        )
        from capsweep import tracking  # MLflow takes seconds to import: not before checks

        for trial in stale:
            for key, run_id in trial.user_attrs.items():
                if key.startswith("capsweep.run_id."):
                    tracking.end_if_running(str(self.config.tracking.uri), run_id, "KILLED")
        context = {
            "storage": storage_url,
            "study_name": study_name,
            "pruner": options.get("pruner"),
            "pruner_options": dict(options.get("pruner_options") or {}),
            "multi_objective": objectives.multi,
            "parent_run_id": summary.parent_run_id,
        }
        self.launcher = Plugins.instance().instantiate_launcher(
            config=self.config, hydra_context=self.hydra_context, task_function=self.task_function
        )
        return self._loop(study, space, objectives, context, int(n_trials), repeats, summary)

    # -- the ask / launch / tell loop ---------------------------------------------------

    def _loop(
        self,
        study: optuna.Study,
        space: SearchSpace,
        objectives: Objectives,
        context: dict[str, Any],
        n_trials: int,
        repeats: int,
        summary: Any,
    ) -> list[dict[str, Any]]:
        batch_size = max(1, int(self.options.get("n_jobs", 1)))
        max_failures = self.options.get("max_failures")
        max_failures = n_trials if max_failures is None else int(max_failures)
        failures = 0
        results: list[dict[str, Any]] = []
        while True:
            counts = studies.count_states(study)
            finished = counts[TrialState.COMPLETE] + counts[TrialState.PRUNED]
            underway = counts[TrialState.RUNNING]
            wanted = n_trials - finished - underway
            if wanted <= 0 or self._grid_exhausted(study):
                break
            trials = self._ask(study, space, min(batch_size, wanted), n_trials)
            if not trials:
                break
            job_overrides = [
                self._overrides(trial, space, context, repeat)
                for trial in trials
                for repeat in range(repeats)
            ]
            returns = self.launcher.launch(job_overrides, initial_job_idx=self.job_index)
            self.job_index += len(returns)
            for position, trial in enumerate(trials):
                trial_returns = returns[position * repeats : (position + 1) * repeats]
                result = self._tell(study, trial, trial_returns, objectives)
                results.append(result)
                failures += result["state"] == "FAIL"
            summary.update()
            if failures > max_failures:
                raise RuntimeError(
                    f"{failures} trials failed in this sweep (hydra.sweeper.max_failures="
                    f"{max_failures}); the first failure is in the log above"
                )
        summary.update(final=True)
        return results

    def _grid_exhausted(self, study: optuna.Study) -> bool:
        sampler = study.sampler
        return isinstance(sampler, optuna.samplers.GridSampler) and sampler.is_exhausted(study)

    def _ask(
        self, study: optuna.Study, space: SearchSpace, count: int, n_trials: int
    ) -> list[optuna.Trial]:
        """Ask up to ``count`` trials; give back any that another worker made surplus."""
        trials = []
        for _ in range(count):
            trial = study.ask(fixed_distributions=space.distributions)
            trial.set_user_attr(studies.OWNER_ATTR, studies.owner_tag())
            if studies.trials_ahead(study, trial.number) >= n_trials:
                # Another worker asked at the same moment and n_trials is reached: queue
                # the parameters for a later resume instead of exceeding n_trials.
                trial.set_user_attr(studies.SURPLUS_ATTR, True)
                tell(study, trial, state=TrialState.FAIL)
                study.enqueue_trial(trial.params, skip_if_exists=True)
                break
            trials.append(trial)
        return trials

    def _overrides(
        self, trial: optuna.Trial, space: SearchSpace, context: Mapping[str, Any], repeat: int
    ) -> list[str]:
        overrides = [f"{name}={value}" for name, value in space.fixed.items()]
        overrides += [f"{name}={override_value(value)}" for name, value in trial.params.items()]
        seed = int(self.config.trainer.seed) + repeat
        overrides += [
            f"trial.number={trial.number}",
            f"trial.repeat={repeat}",
            f"trainer.seed={seed}",
            f"trial.storage={_quote(context['storage'])}",
            f"trial.study_name={_quote(context['study_name'])}",
            f"trial.pruner={context['pruner'] or 'null'}",
            f"trial.pruner_options={_dict_override(context['pruner_options'])}",
            f"trial.multi_objective={str(context['multi_objective']).lower()}",
            f"trial.parent_run_id={context['parent_run_id'] or 'null'}",
        ]
        return overrides

    def _tell(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        returns: Sequence[JobReturn],
        objectives: Objectives,
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
        values = [_mean([float(o["metrics"][name]) for o in outcomes]) for name in objectives.names]
        if len(outcomes) > 1:
            trial.set_user_attr(
                "capsweep.val_accuracy_std",
                _std([float(o["metrics"]["val_accuracy"]) for o in outcomes]),
            )
        tell(study, trial, values=values)
        log.info(
            "Trial %d %s: %s",
            trial.number,
            trial.params,
            ", ".join(f"{n}={v:.4g}" for n, v in zip(objectives.names, values, strict=True)),
        )
        return {"number": trial.number, "state": "COMPLETE", "values": values}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _std(values: Sequence[float]) -> float:
    mean = _mean(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
