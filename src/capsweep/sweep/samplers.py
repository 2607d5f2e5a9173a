"""Optuna samplers by name, with their options."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna

from capsweep.errors import CapsweepConfigError
from capsweep.sweep.search_space import SearchSpace

SAMPLERS: dict[str, Any] = {
    "tpe": optuna.samplers.TPESampler,
    "random": optuna.samplers.RandomSampler,
    "nsga2": optuna.samplers.NSGAIISampler,
    "nsga3": optuna.samplers.NSGAIIISampler,
    "qmc": optuna.samplers.QMCSampler,
    "cmaes": optuna.samplers.CmaEsSampler,
    "bruteforce": optuna.samplers.BruteForceSampler,
    "gp": optuna.samplers.GPSampler,
    "grid": optuna.samplers.GridSampler,
}


def make_sampler(
    name: str, options: Mapping[str, Any], *, seed: int | None, space: SearchSpace
) -> optuna.samplers.BaseSampler:
    """Build an Optuna sampler by name, or raise naming the choices."""
    if name not in SAMPLERS:
        raise CapsweepConfigError(
            "hydra.sweeper.sampler", name, "unknown sampler", choices=sorted(SAMPLERS)
        )
    try:
        if name == "grid":
            return optuna.samplers.GridSampler(space.grid(), seed=seed, **options)
        sampler: optuna.samplers.BaseSampler = SAMPLERS[name](seed=seed, **options)
        return sampler
    except TypeError as error:
        raise CapsweepConfigError(
            "hydra.sweeper.sampler_options", dict(options), f"do not fit sampler {name} ({error})"
        ) from None
