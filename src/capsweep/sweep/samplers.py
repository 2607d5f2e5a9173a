"""Optuna samplers by name, with their options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from capsweep.errors import CapsweepConfigError
from capsweep.settings.validate import member
from capsweep.sweep.choices import Sampler
from capsweep.sweep.search_space import SearchSpace

SAMPLERS: dict[Sampler, Any] = {
    Sampler.tpe: optuna.samplers.TPESampler,
    Sampler.random: optuna.samplers.RandomSampler,
    Sampler.nsga2: optuna.samplers.NSGAIISampler,
    Sampler.nsga3: optuna.samplers.NSGAIIISampler,
    Sampler.qmc: optuna.samplers.QMCSampler,
    Sampler.cmaes: optuna.samplers.CmaEsSampler,
    Sampler.bruteforce: optuna.samplers.BruteForceSampler,
    Sampler.gp: optuna.samplers.GPSampler,
    Sampler.grid: optuna.samplers.GridSampler,
}


def make_sampler(
    name: str, options: Mapping[str, Any], *, seed: int | None, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """Build an Optuna sampler by name, or raise naming the choices."""
    kind = member("hydra.sweeper.sampler", name, Sampler, "unknown sampler")
    try:
        if kind is Sampler.grid:
            return optuna.samplers.GridSampler(space.grid(), seed=seed, **options)
        sampler: optuna.samplers.BaseSampler = SAMPLERS[kind](seed=seed, **options)
        return sampler
    except TypeError as error:
        raise CapsweepConfigError(
            "hydra.sweeper.sampler_options", dict(options), f"do not fit sampler {name} ({error})"
        ) from None
