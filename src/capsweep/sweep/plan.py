"""The sweeper's options, checked in one pass into a plan, before any study or run is touched.

Reads Hydra's composed config (the sweeper is part of the Hydra layer) and imports Optuna,
never TensorFlow or MLflow: a bad option is refused in the seconds Hydra takes to start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.sweep import study as studies
from capsweep.sweep.job_settings import check_job_settings
from capsweep.sweep.objectives import Objectives, parse_objectives
from capsweep.sweep.param_paths import check_param_paths
from capsweep.sweep.pruning import make_pruner
from capsweep.sweep.samplers import make_sampler
from capsweep.sweep.search_space import SearchSpace, parse_search_space

_BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
DEFAULT_N_TRIALS = 20
# What the k repeats of a configuration vary: the training seed, the draw of the
# training/validation images (data.split_seed; the test split stays), or both.
REPEAT_OVER = ("both", "seed", "split")


@dataclass(frozen=True)
class SweepPlan:
    """Everything one ``capsweep -m`` invocation needs, checked."""

    space: SearchSpace
    objectives: Objectives
    sampler_name: str
    sampler: optuna.samplers.BaseSampler
    pruner_name: str | None
    pruner_options: dict[str, Any]
    pruner: optuna.pruners.BasePruner | None
    repeats: int
    repeat_over: str
    n_trials: int
    batch_size: int
    max_failures: int
    storage_url: str
    study_name: str
    stale_after_seconds: float


def plan_sweep(options: Mapping[str, Any], config: DictConfig, arguments: list[str]) -> SweepPlan:
    """Check the sweeper's options and the command line's sweep overrides.

    Raises:
        CapsweepConfigError: the first option that cannot work, with the key and the fix.
    """
    space = parse_search_space(options.get("params") or {}, arguments)
    check_param_paths(config, space.written)
    objectives = parse_objectives(options.get("objectives"), options.get("direction"))
    pruner_name = options.get("pruner")
    pruner_options = dict(options.get("pruner_options") or {})
    pruner = make_pruner(pruner_name, pruner_options)
    if objectives.multi and pruner is not None and pruner_name != "dominance":
        raise CapsweepConfigError(
            "hydra.sweeper.pruner",
            pruner_name,
            f"Optuna's pruners cannot prune a study with several objectives {objectives.names}",
            fix="use hydra.sweeper.pruner=dominance",
        )
    sampler_name = str(options.get("sampler", "tpe"))
    sampler = make_sampler(
        sampler_name, options.get("sampler_options") or {}, seed=options.get("seed"), space=space
    )
    repeats = _at_least_one("repeats", options.get("repeats", 1))
    repeat_over = str(options.get("repeat_over", "both"))
    if repeat_over not in REPEAT_OVER:
        raise CapsweepConfigError(
            "hydra.sweeper.repeat_over",
            repeat_over,
            "is not what repeats vary",
            choices=REPEAT_OVER,
        )
    _check_repeats_own_their_seeds(space, repeats, repeat_over)
    check_job_settings(config, space)
    default_trials = space.grid_size() if sampler_name == "grid" else DEFAULT_N_TRIALS
    n_trials = _at_least_one("n_trials", options.get("n_trials") or default_trials)
    max_failures = options.get("max_failures")
    study_name = str(options["study_name"])
    storage_url = studies.storage_url(options.get("storage"), str(config.paths.outputs), study_name)
    batch_size = _at_least_one("n_jobs", options.get("n_jobs", 1))
    _check_parallel_storage(
        storage_url, parallel=batch_size > 1 or _launcher(config) != _BASIC_LAUNCHER
    )
    return SweepPlan(
        space=space,
        objectives=objectives,
        sampler_name=sampler_name,
        sampler=sampler,
        pruner_name=pruner_name,
        pruner_options=pruner_options,
        pruner=pruner,
        repeats=repeats,
        repeat_over=repeat_over,
        n_trials=n_trials,
        batch_size=batch_size,
        max_failures=n_trials if max_failures is None else int(max_failures),
        storage_url=storage_url,
        study_name=study_name,
        stale_after_seconds=float(options.get("stale_after_seconds", 1800.0)),
    )


def _at_least_one(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise CapsweepConfigError(
            f"hydra.sweeper.{name}", value, "must be a whole number >= 1", fix=f"e.g. {name}=1"
        )
    return value


def repeated_seeds(repeats: int, repeat_over: str) -> tuple[str, ...]:
    """The seed keys each repeat sets: none for one repeat, else what repeats vary."""
    if repeats == 1:
        return ()
    return {
        "both": ("trainer.seed", "data.split_seed"),
        "seed": ("trainer.seed",),
        "split": ("data.split_seed",),
    }[repeat_over]


def _check_repeats_own_their_seeds(space: SearchSpace, repeats: int, repeat_over: str) -> None:
    for key in repeated_seeds(repeats, repeat_over):
        if key in space.distributions:
            raise CapsweepConfigError(
                "hydra.sweeper.params",
                f"{key}={space.written.get(key, '')}",
                f"repeats over {repeat_over} set {key} themselves (base seed + repeat)",
                fix="set the base seed as a plain override (trainer.seed=7), sweep it with "
                "hydra.sweeper.repeats=1, or vary only the other seed with repeat_over",
            )


def _launcher(config: DictConfig) -> str:
    return str(config.hydra.launcher.get("_target_", ""))


def _check_parallel_storage(storage: str, *, parallel: bool) -> None:
    if storage.startswith("sqlite") and parallel:
        raise CapsweepConfigError(
            "hydra.sweeper.storage",
            storage,
            "SQLite cannot serve several workers (it fails with 'database is locked')",
            fix="leave hydra.sweeper.storage unset for a journal file, or use postgresql://",
        )
