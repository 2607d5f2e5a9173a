"""The sweeper's options, checked in one pass into a plan, before any study or run is touched.

Reads Hydra's composed config (the sweeper is part of the Hydra layer) and imports Optuna,
never TensorFlow or MLflow: a bad option is refused in the seconds Hydra takes to start.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from omegaconf import DictConfig, OmegaConf

from capsweep.errors import CapsweepConfigError
from capsweep.redaction import has_password, redact_url
from capsweep.settings import as_plain_dict
from capsweep.settings.choices import RepeatOver
from capsweep.settings.validate import member
from capsweep.sweep import study as studies
from capsweep.sweep.job_settings import check_job_settings, configuration_settings
from capsweep.sweep.nuisance import NuisancePlan, plan_nuisance
from capsweep.sweep.objectives import Objectives, parse_objectives
from capsweep.sweep.param_paths import check_param_paths
from capsweep.sweep.points import with_points
from capsweep.sweep.pruning import make_pruner
from capsweep.sweep.samplers import make_sampler
from capsweep.sweep.search_space import SearchSpace, empty_space_error, parse_search_space

log = logging.getLogger(__name__)

_BASIC_LAUNCHER = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
DEFAULT_N_TRIALS = 20


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
    # The storage as jobs receive it: an unresolved ``${oc.env:...}`` stays unresolved, so
    # a password read from the environment is never written into a job's Hydra folder.
    job_storage: str
    study_name: str
    stale_after_seconds: float
    # Whether a worker whose share is done waits for the other workers' trials (and
    # retrains those of workers that die) before it exits.
    wait_for_others: bool = True
    # Stop after this many failed trials in a row (None: never for that reason).
    max_failures_in_a_row: int | None = None
    # The sampler's options and seed, to build the sampler again with a worker's own seed.
    sampler_options: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    # Redraw the report and the parent run's summary at most this often (and at the end).
    summary_every_seconds: float = 30.0
    # GPU ids local workers claim one each of (None: no assignment).
    gpus: list[int] | None = None
    # What each configuration tunes before configurations are compared (None: nothing).
    nuisance: NuisancePlan | None = None
    # The hyperparameters neither compared nor tuned, with their values: caveats on the
    # comparison, which the recommendation names.
    fixed: dict[str, Any] = field(default_factory=dict)


def plan_sweep(options: Mapping[str, Any], config: DictConfig, arguments: list[str]) -> SweepPlan:
    """Check the sweeper's options and the command line's sweep overrides.

    Raises:
        CapsweepConfigError: the first option that cannot work, with the key and the fix.
    """
    space = with_points(
        parse_search_space(options.get("params") or {}, arguments, require_search=False),
        options.get("points"),
    )
    if not space.distributions:
        raise empty_space_error(options.get("params") or {})
    check_param_paths(config, space.written)
    objectives = parse_objectives(options.get("objectives"), options.get("direction"))
    pruner_name = options.get("pruner")
    pruner_options = dict(options.get("pruner_options") or {})
    pruner = make_pruner(pruner_name, pruner_options)
    sampler_name = str(options.get("sampler", "tpe"))
    sampler = make_sampler(
        sampler_name,
        dict(options.get("sampler_options") or {}),
        seed=options.get("seed"),
        space=space,
    )
    repeats = _at_least_one("repeats", options.get("repeats", 1))
    repeat_over = member(
        "hydra.sweeper.repeat_over",
        options.get("repeat_over", RepeatOver.both),
        RepeatOver,
        "is not what repeats vary",
    )
    _check_repeats_own_their_seeds(space, repeats, repeat_over)
    check_job_settings(config, space)
    nuisance = plan_nuisance(options, config, space)
    if nuisance is not None and repeat_over == RepeatOver.seed:
        log.warning(
            "hydra.sweeper.repeat_over=seed with tuning: the confirmations train on the "
            "training/validation split the candidates were chosen on, so their mean keeps "
            "some of the selection's luck; repeat_over=both draws fresh splits"
        )
    if nuisance is None:  # with tuning, pruning judges a configuration's candidates only
        _check_pruner_reads_the_objective(pruner_name, pruner is not None, objectives)
    listed = sampler_name == "grid" or space.points
    # With tuning, a configuration is trained once (a study of its own): a finite space
    # holds no more trials than configurations, whatever the sampler.
    distinct = nuisance is not None and space.finite()
    default_trials = space.grid_size() if listed else DEFAULT_N_TRIALS
    if distinct:
        default_trials = min(default_trials, space.grid_size())
    n_trials = _at_least_one("n_trials", options.get("n_trials") or default_trials)
    if distinct and n_trials > space.grid_size():
        raise CapsweepConfigError(
            "hydra.sweeper.n_trials",
            n_trials,
            f"a tuned sweep trains each of its {space.grid_size()} configurations once "
            "(hydra.sweeper.nuisance), so it cannot hold more trials",
            fix=f"hydra.sweeper.n_trials={space.grid_size()} (or leave it out), or widen "
            "hydra.sweeper.params",
        )
    max_failures = options.get("max_failures")
    study_name = str(options["study_name"])
    storage_url = studies.storage_url(options.get("storage"), str(config.paths.outputs), study_name)
    batch_size = _at_least_one("n_jobs", options.get("n_jobs", 1))
    separate_processes = _launcher(config) != _BASIC_LAUNCHER
    _check_parallel_storage(storage_url, parallel=batch_size > 1 or separate_processes)
    _check_parallel_tracking(
        str(config.tracking.uri), parallel=batch_size > 1 and separate_processes
    )
    sampler_options = dict(options.get("sampler_options") or {})
    _warn_of_plain_tracking_password(config)
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
        job_storage=_job_storage(config, storage_url),
        study_name=study_name,
        stale_after_seconds=_positive(
            "stale_after_seconds", options.get("stale_after_seconds", 1800.0)
        ),
        wait_for_others=bool(options.get("wait_for_others", True)),
        max_failures_in_a_row=_optional_at_least_one(
            "max_failures_in_a_row", options.get("max_failures_in_a_row")
        ),
        sampler_options=sampler_options,
        seed=options.get("seed"),
        gpus=_gpus(options.get("gpus"), config),
        summary_every_seconds=_positive(
            "summary_every_seconds", options.get("summary_every_seconds", 30.0), zero_ok=True
        ),
        nuisance=nuisance,
        fixed=fixed_hyperparameters(config, space, nuisance),
    )


# The hyperparameters a capacity comparison holds fixed unless it compares or tunes them.
CAVEATS = (
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.optimizer",
    "trainer.learning_rate",
    "trainer.backbone_learning_rate",
    "trainer.early_stopping_patience",
    "trainer.protocol",
)


def fixed_hyperparameters(
    config: DictConfig, space: SearchSpace, nuisance: NuisancePlan | None
) -> dict[str, Any]:
    """The training hyperparameters neither compared nor tuned, with the values jobs get
    (a nuisance key tuned only where ``nuisance_where`` says: its value elsewhere)."""
    settings = as_plain_dict(configuration_settings(config, space, {}))
    tuned = set(space.distributions) | set(nuisance.space.distributions if nuisance else ())
    fixed = {}
    for key in CAVEATS:
        section, name = key.split(".")
        if key not in tuned:
            fixed[key] = settings[section][name]
        elif nuisance and key in nuisance.where:
            where = ", ".join(f"{k}={v}" for k, v in nuisance.where[key].items())
            fixed[key] = f"{settings[section][name]} (tuned only where {where})"
    return fixed


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


def _optional_at_least_one(name: str, value: Any) -> int | None:
    return None if value is None else _at_least_one(name, value)


def _positive(name: str, value: Any, *, zero_ok: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value < 0
        or (value == 0 and not zero_ok)
    ):
        raise CapsweepConfigError(
            f"hydra.sweeper.{name}",
            value,
            "must be a number of seconds " + (">= 0" if zero_ok else "> 0"),
        )
    return float(value)


# Optuna's pruners compare the values trials report (val_accuracy, each epoch) in the
# study's direction; that only means something when the study maximizes val_accuracy.
_PRUNED_ON = ("val_accuracy", "maximize")


def _check_pruner_reads_the_objective(
    pruner_name: str | None, prunes: bool, objectives: Objectives
) -> None:
    if not prunes or pruner_name == "dominance":
        return
    if objectives.multi:
        raise CapsweepConfigError(
            "hydra.sweeper.pruner",
            pruner_name,
            f"Optuna's pruners cannot prune a study with several objectives {objectives.names}",
            fix="use hydra.sweeper.pruner=dominance",
        )
    (name,), (direction,) = objectives.names, objectives.directions
    if (name, direction) != _PRUNED_ON:
        raise CapsweepConfigError(
            "hydra.sweeper.pruner",
            pruner_name,
            f"trials report val_accuracy each epoch, and Optuna's pruners read it in the "
            f"study's direction: with objectives={name} direction={direction} the pruner "
            "would judge trials on a value the study does not optimize (and, minimizing, "
            "prune the most accurate ones)",
            fix="use hydra.sweeper.pruner=dominance (judges val_accuracy against smaller "
            "finished trials, whatever the objectives), pruner=none, or "
            "objectives=val_accuracy direction=maximize",
        )


def _check_parallel_tracking(uri: str, *, parallel: bool) -> None:
    if uri.startswith("sqlite") and parallel:
        raise CapsweepConfigError(
            "tracking.uri",
            uri,
            "MLflow on SQLite cannot serve several trials writing at once (it fails with "
            "'database is locked')",
            fix="run an MLflow tracking server (mlflow server ...; tracking.uri=http://host:5000) "
            "or use a postgresql:// store, or hydra.sweeper.n_jobs=1",
        )


def _warn_of_plain_tracking_password(config: DictConfig) -> None:
    written = OmegaConf.to_container(config.tracking, resolve=False)
    raw = written.get("uri") if isinstance(written, dict) else None
    uri = str(config.tracking.uri)
    if has_password(uri) and not (isinstance(raw, str) and "${" in raw):
        log.warning(
            "tracking.uri holds a password in plain text (%s): Hydra writes it into every "
            "job's .hydra folder. Read it from the environment instead: MLFLOW_TRACKING_"
            "PASSWORD for a server, PGPASSWORD for PostgreSQL, or ${oc.env:VARIABLE}",
            redact_url(uri),
        )


def _job_storage(config: DictConfig, storage_url: str) -> str:
    """The storage URL as written, when it reads a secret from the environment."""
    written = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
    raw = written.get("storage") if isinstance(written, dict) else None
    if isinstance(raw, str) and "${" in raw:
        return raw
    if has_password(storage_url):
        log.warning(
            "hydra.sweeper.storage holds a password in plain text (%s): Hydra writes it into "
            "every job's .hydra folder. Read it from the environment instead: libpq's "
            "PGPASSWORD or ~/.pgpass, or ${oc.env:VARIABLE} in the URL",
            redact_url(storage_url),
        )
    return storage_url


def _local_workers(n_jobs: Any) -> int | None:
    """How many processes a joblib pool of ``n_jobs`` starts (joblib: -1 is every CPU,
    -2 every CPU but one, ...); ``None`` when it is not a number."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int):
        return None
    if n_jobs < 0:
        return max(1, _joblib_cpus() + 1 + n_jobs)
    return n_jobs


def _joblib_cpus() -> int:
    """The CPUs joblib counts for a negative ``n_jobs``: its own count honours the process's
    CPU affinity, cgroup quotas (Slurm's --cpus-per-task) and LOKY_MAX_CPU_COUNT."""
    try:
        import joblib  # the joblib launcher's dependency (extra "cluster")
    except ImportError:
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
    return int(joblib.cpu_count())


def _gpus(value: Any, config: DictConfig) -> list[int] | None:
    """The GPU ids of ``hydra.sweeper.gpus``, at least one per local worker process."""
    if value is None:
        return None
    ids = list(value) if isinstance(value, list | tuple) or OmegaConf.is_list(value) else [value]
    if not ids or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in ids):
        raise CapsweepConfigError(
            "hydra.sweeper.gpus", value, "must be a list of GPU ids", fix="e.g. gpus=[0,1]"
        )
    written = config.hydra.launcher.get("n_jobs")
    workers = _local_workers(written)
    if _launcher(config) != _BASIC_LAUNCHER and workers is not None and workers > len(ids):
        many = f"{workers} local workers" + (
            " (joblib counts a negative n_jobs back from the CPUs)" if written < 0 else ""
        )
        raise CapsweepConfigError(
            "hydra.launcher.n_jobs",
            written,
            f"local workers would outnumber the GPUs {ids}: it starts {many}, and each "
            "worker needs a GPU of its own",
            fix=f"hydra.launcher.n_jobs={len(ids)}, or list more GPUs",
        )
    return [int(i) for i in ids]
