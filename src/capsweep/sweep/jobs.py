"""What every job of a sweep is launched with: its overrides, its seeds, Hydra's launcher.

Shared by the two ways a configuration is trained — its repeats
(:mod:`capsweep.sweep.repeats`), or its nuisance candidates and confirmations
(:mod:`capsweep.sweep.tuned_batch`) — so both hand their jobs the same fixed values,
feature-cache cuts and trial context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig

from capsweep.settings import TrialContext
from capsweep.sweep import launching
from capsweep.sweep.cache_cuts import cache_overrides
from capsweep.sweep.progress import TrialLine
from capsweep.sweep.search_space import override_value
from capsweep.sweep.sweep_plan import SweepPlan

log = logging.getLogger(__name__)

# How a configuration's trial ended, for the loop: a result row and the console's line.
Told = tuple[dict[str, Any], TrialLine]


class SweepJobs:
    """Hydra's launcher and the overrides every job of one sweep shares."""

    def __init__(self, plan: SweepPlan, config: DictConfig, launcher: Launcher) -> None:
        self.plan = plan
        self.config = config
        self.launcher = launcher
        self.job_index = 0
        capacity = config.capacity
        self.cache = cache_overrides(plan.space, capacity.unfreeze, capacity.position)

    def launch(self, overrides: Sequence[Sequence[str]]) -> Sequence[JobReturn]:
        """Launch one batch of jobs; each one's end collected on its own."""
        if not overrides:
            return []
        returns = launching.launch(self.launcher, overrides, self.job_index)
        self.job_index += len(returns)
        return returns

    def overrides(
        self,
        params: Mapping[str, Any],
        context: TrialContext,
        *,
        values: Mapping[str, Any] | None = None,
        seeds: Mapping[str, int] | None = None,
    ) -> list[str]:
        """A job's overrides: the feature cache's cuts, the sweep's fixed values, the
        configuration's ``params``, nuisance ``values``, ``seeds``, then the trial context."""
        return [
            *self.cache,
            *(f"{name}={value}" for name, value in self.plan.space.fixed.items()),
            *(f"{name}={override_value(value)}" for name, value in params.items()),
            *(f"{name}={override_value(value)}" for name, value in (values or {}).items()),
            *(f"{key}={seed}" for key, seed in (seeds or {}).items()),
            *context.as_overrides(),
        ]

    def base_seeds(self, trial: optuna.Trial) -> dict[str, int]:
        """The seeds a trial's configuration starts from: swept, or the configuration's."""
        return {
            "seed": int(trial.params.get("trainer.seed", self.config.trainer.seed)),
            "split_seed": int(trial.params.get("data.split_seed", self.config.data.split_seed)),
        }


def repeat_seeds(repeat_over: str, repeat: int, *, seed: int, split_seed: int) -> tuple[int, int]:
    """The trainer seed and split seed of one repeat: each moves with the repeat if varied."""
    return (
        seed + repeat if repeat_over in ("seed", "both") else seed,
        split_seed + repeat if repeat_over in ("split", "both") else split_seed,
    )


def dropped(trial: optuna.Trial) -> Told:
    """A result nobody may record: another worker took this one's for dead (no liveness
    mark for ``stale_after_seconds``) and queued the configuration again. The runs stay in
    MLflow; the study keeps the retrained configuration."""
    line = TrialLine(trial.number, dict(trial.params), "DROPPED")
    line.detail = "taken for dead by another worker, queued again"
    log.warning("Trial %d: %s; result dropped", trial.number, line.detail)
    return {"number": trial.number, "state": "DROPPED"}, line
