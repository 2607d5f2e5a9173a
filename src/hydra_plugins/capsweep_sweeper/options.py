"""The sweeper's configuration, registered as ``hydra/sweeper=capsweep``.

Its defaults live here only: a file in ``sweeps/`` sets what its search changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore

from capsweep.settings.choices import RepeatOver
from capsweep.sweep.choices import Pruner, Sampler


@dataclass
class CapsweepSweeperConf:
    _target_: str = "hydra_plugins.capsweep_sweeper.capsweep_sweeper.CapsweepSweeper"
    # Search space in the syntax of Hydra's Optuna sweeper: choice, range, interval, tag(log, …).
    # The scientific hyperparameters: the configurations the sweep compares.
    params: dict[str, str] = field(default_factory=dict)
    # Or the configurations to compare, listed: [{capacity.position: first,
    # capacity.unfreeze: 1}, ...], each trained once (for comparisons no product of
    # ranges expresses). params may still fix values for all of them.
    points: Any = None
    # Nuisance hyperparameters, same syntax: tuned separately inside every configuration
    # (nuisance_trials candidates, one run each), the best then confirmed `repeats` times
    # with fresh seeds; configurations are compared on their confirmations. null: none
    # (hydra.sweeper.nuisance=null turns a sweep file's tuning off).
    nuisance: dict[str, str] | None = None
    # Candidates each configuration tries (those where a nuisance key has an effect).
    nuisance_trials: int = 3
    # How candidates are drawn: null = every value of a finite space the budget covers,
    # else quasi-random (scrambled Sobol); or qmc | random | grid.
    nuisance_sampler: str | None = None
    # After one run each, the best this many candidates are trained once more on other
    # seeds, and the pick is the best mean of two runs; 0: pick from one run each. On the
    # embedded default, 2 cost 16 more jobs and picked the same rates (README).
    nuisance_rescore: int = 0
    # Limit a nuisance key to the configurations with these settings; elsewhere it keeps
    # its value: {trainer.learning_rate: {capacity.unfreeze: 0}} tunes the head's rate
    # for head-only configurations alone. A list is any of its values.
    nuisance_where: Any = None
    # Metrics to optimize (a name or a list), paired with `direction`.
    objectives: Any = "val_accuracy"
    # maximize | minimize, or a list of them (one per objective).
    direction: Any = "maximize"
    # Optuna's sampler (a name of capsweep.sweep.choices.Sampler) and its options.
    sampler: Sampler = Sampler.tpe
    # Keyword options of the sampler, e.g. {n_startup_trials: 5}.
    sampler_options: Any = None
    # Seed of the sampler (null: random).
    seed: int | None = None
    # Finished (complete or pruned) trials the study should hold in total; null: the grid
    # size for sampler=grid, else 20.
    n_trials: int | None = None
    # Trials launched together per batch (parallel with the joblib or submitit launcher).
    n_jobs: int = 1
    # Train each configuration this many times (with nuisance tuning: confirm its chosen
    # candidate this many times); the study optimizes the mean, and the report's
    # tolerance comes from the repeats' spread.
    repeats: int = 1
    # What repeats vary: both (the seed and the training/validation draw: the honest
    # estimate of what a user would see again), seed, or split. The test split stays.
    repeat_over: RepeatOver = RepeatOver.both
    # A name of capsweep.sweep.choices.Pruner (dominance is the only one for several
    # objectives), or null for none, and its options.
    pruner: Pruner | None = None
    # Keyword options of the pruner, e.g. {n_warmup_steps: 3} or {margin: 0.05}.
    pruner_options: Any = None
    # Optuna storage: a file path (journal file, safe for local processes) or a database
    # URL (postgresql://… for clusters). null: <paths.outputs>/optuna/<study_name>.journal
    storage: str | None = None
    study_name: str = "capsweep"
    # A RUNNING trial whose worker left no liveness mark for this long is taken for the
    # trial of a dead worker: failed, its configuration queued again. Live workers mark
    # their trials from a thread every stale_after_seconds / 4 (at most every minute),
    # whatever the trial is doing. On this host a dead worker's process is seen at once.
    stale_after_seconds: float = 1800.0
    # A worker whose share of n_trials is done waits while other workers' trials are under
    # way, retraining those whose worker dies, so the study reaches n_trials.
    wait_for_others: bool = True
    # Stop the sweep after this many failed trials in one invocation (null: n_trials).
    max_failures: int | None = None
    # Stop after this many trials failed in a row, not burning an allocation on a broken
    # setup (null: no limit of this kind).
    max_failures_in_a_row: int | None = 5
    # GPU ids for local workers (hydra/launcher=joblib): each worker process claims one
    # of its own and sees only it (CUDA_VISIBLE_DEVICES), recorded on its trials. null:
    # no assignment (a device list set by Slurm's --gres or by you is used as it is).
    gpus: Any = None
    # Redraw the report files and the MLflow parent run's summary at most this often while
    # the sweep runs, and always at its end (0: after every batch).
    summary_every_seconds: float = 30.0


ConfigStore.instance().store(
    group="hydra/sweeper", name="capsweep", node=CapsweepSweeperConf, provider="capsweep"
)
