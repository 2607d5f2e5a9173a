"""Nuisance hyperparameters: what a sweep tunes inside every configuration it compares.

The Deep Learning Tuning Playbook's split: ``hydra.sweeper.params`` holds the *scientific*
hyperparameters, whose effect the sweep measures (backbone, unfreeze count, head depth);
``hydra.sweeper.nuisance`` holds the *nuisance* ones, optimized separately for every
scientific configuration before configurations are compared (the learning rates,
foremost); everything else is *fixed*, each a caveat on the comparison. Written in the
same syntax as ``params``::

    nuisance:
      trainer.backbone_learning_rate: tag(log, interval(1e-4, 3e-3))
    nuisance_trials: 3

A nuisance key that cannot change what a configuration trains (the backbone's learning
rate with nothing unfrozen, :mod:`capsweep.settings.inert`) is not searched there. One
that matters only in some configurations can be limited to them, the others keeping its
fixed value::

    nuisance_where:
      trainer.learning_rate: {capacity.unfreeze: 0}   # the head's rate, for head-only

Checked here before any study exists; never imports TensorFlow.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice, product
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from scipy.stats import qmc

from capsweep.errors import CapsweepConfigError
from capsweep.settings import CapsweepConfig
from capsweep.settings.inert import inert_keys
from capsweep.settings.keys import schema_keys, unknown_key_error
from capsweep.sweep.job_settings import check_job_settings, configuration_settings
from capsweep.sweep.param_paths import check_param_paths
from capsweep.sweep.search_space import SearchSpace, finite, grid_choices, parse_search_space

# Keys the procedure itself sets: candidates train with the base seeds, confirmations
# with fresh ones. Tuning a seed would select noise.
SEEDS = ("trainer.seed", "data.split_seed", "data.test_seed")
# How many scientific configurations to look at, at most, for a nuisance key's effect.
CONFIGURATIONS_CHECKED = 4096


@dataclass(frozen=True)
class NuisancePlan:
    """The nuisance space, the candidates each configuration may try, and how they are drawn.

    Args:
        space: The nuisance distributions (``hydra.sweeper.nuisance``).
        budget: Candidates per configuration (``hydra.sweeper.nuisance_trials``).
        sampler: ``None`` for the default: a grid when the budget covers every value of a
            finite space, else quasi-random (scrambled Sobol); or ``qmc``, ``random`` or
            ``grid`` (every value of a finite space, whatever the budget).
        rescore: After every candidate's first run, the best this many are trained once
            more on other seeds and the pick is the best mean of two runs (0 or 1: the
            best single run).
        where: For a nuisance key, the settings a configuration must have for the key to
            be tuned in it (``hydra.sweeper.nuisance_where``); a list is any of its values.
    """

    space: SearchSpace
    budget: int
    sampler: str | None = None
    rescore: int = 0
    where: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def effective(self, settings: CapsweepConfig) -> dict[str, BaseDistribution]:
        """The nuisance distributions that can change what ``settings`` trains, and are
        tuned in configurations like it."""
        skipped = self.skipped(settings)
        return {key: d for key, d in self.space.distributions.items() if key not in skipped}

    def skipped(self, settings: CapsweepConfig) -> dict[str, str]:
        """The nuisance keys not tuned in ``settings``, each with the reason."""
        skipped = dict(inert_keys(settings))
        for key, conditions in self.where.items():
            if key not in skipped and not _matches(settings, conditions):
                skipped[key] = f"{WHERE} limits it to {_conditions(conditions)}"
        return skipped

    def description(self) -> dict[str, Any]:
        """What a study records, so that resuming with another space or budget is refused."""
        described = {
            "space": self.space.describe(),
            "budget": self.budget,
            "sampler": self.sampler,
            "rescore": self.rescore,
        }
        if self.where:  # studies made before nuisance_where keep their description
            described["where"] = {key: dict(value) for key, value in sorted(self.where.items())}
        return described

    def candidates(self, effective: Mapping[str, BaseDistribution]) -> int:
        """How many candidates a configuration with these distributions tries."""
        if not effective:
            return 0
        if self.sampler_for(effective) == "grid":
            return _grid_size(effective)
        if finite(effective):  # no more candidates than values, whatever draws them
            return min(self.budget, _grid_size(effective))
        return self.budget

    def sampler_for(self, effective: Mapping[str, BaseDistribution]) -> str:
        """How a configuration's candidates are drawn: ``grid``, ``qmc`` or ``random``."""
        if self.sampler is not None:
            return self.sampler
        covered = finite(effective) and _grid_size(effective) <= self.budget
        return "grid" if covered else "qmc"


SAMPLERS = ("qmc", "random", "grid")


def design(
    plan: NuisancePlan,
    effective: Mapping[str, BaseDistribution],
    *,
    seed: int | None,
    params: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """The nuisance values a configuration tries, in order, all drawn up front.

    A grid lists every combination. Quasi-random candidates are the first points of a
    scrambled Sobol sequence (``scipy.stats.qmc``, the generator behind Optuna's
    ``QMCSampler``, which draws its first point at random instead), seeded for the
    configuration; random ones are uniform draws. Each point maps onto a distribution as
    Optuna's samplers map it: through the log of a log-scaled range, onto the steps of a
    stepped one, onto the index of a choice. Drawn up front, the design is the same for
    whichever worker takes the configuration up, and queued whole in its study.
    """
    names = sorted(effective)
    sampler = plan.sampler_for(effective)
    if sampler == "grid":
        choices = [grid_choices(name, effective[name]) for name in names]
        return [dict(zip(names, values, strict=True)) for values in product(*choices)]
    count = plan.candidates(effective)
    generator_seed = configuration_seed(seed, params)
    if sampler == "qmc":
        sobol = qmc.Sobol(len(names), scramble=True, seed=generator_seed)
        points = sobol.random_base2(max(0, math.ceil(math.log2(count))))[:count]
    else:
        points = np.random.default_rng(generator_seed).random((count, len(names)))
    drawn = [
        {name: _place(effective[name], float(u)) for name, u in zip(names, point, strict=True)}
        for point in points
    ]
    # On a finite space two points may land on one value: each candidate is tried once.
    seen: set[tuple[tuple[str, Any], ...]] = set()
    unique = []
    for values in drawn:
        key = tuple(sorted(values.items()))
        if key not in seen:
            seen.add(key)
            unique.append(values)
    return unique


def _place(distribution: BaseDistribution, u: float) -> Any:
    """The value at quantile ``u`` in [0, 1) of a distribution's range."""
    if isinstance(distribution, CategoricalDistribution):
        choices = distribution.choices
        return choices[min(int(u * len(choices)), len(choices) - 1)]
    if not isinstance(distribution, FloatDistribution | IntDistribution):
        raise TypeError(f"no nuisance values from {distribution}")
    low, high, log = float(distribution.low), float(distribution.high), distribution.log
    if isinstance(distribution, IntDistribution):
        if log:  # each integer's share of the log range, as Optuna's samplers give it
            edges = (math.log(low - 0.5), math.log(high + 0.5))
            value = math.exp(edges[0] + u * (edges[1] - edges[0]))
            return int(min(max(round(value), low), high))
        count = (distribution.high - distribution.low) // distribution.step + 1
        return distribution.low + min(int(u * count), count - 1) * distribution.step
    if distribution.step is not None:
        count = round((high - low) / distribution.step) + 1
        return low + min(int(u * count), count - 1) * distribution.step
    if log:
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    return low + u * (high - low)


def configuration_seed(seed: int | None, params: Mapping[str, Any]) -> int:
    """A sampler seed of a configuration's own, from the sweep's ``seed`` and its params."""
    text = f"{seed}:{sorted((key, str(value)) for key, value in params.items())}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def plan_nuisance(
    options: Mapping[str, Any], config: DictConfig, scientific: SearchSpace
) -> NuisancePlan | None:
    """Check ``hydra.sweeper.nuisance`` and its budget against the scientific space.

    Returns:
        The plan, or ``None`` when the sweep tunes no nuisance hyperparameter.

    Raises:
        CapsweepConfigError: a budget < 1, a key both scientific and nuisance, a seed, a
            key that is not in the configuration, a value a job would refuse, a key that
            has no effect in any configuration the sweep compares, or a ``nuisance_where``
            that names no nuisance key or no setting.
    """
    written = dict(options.get("nuisance") or {})
    budget = options.get("nuisance_trials", 3)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise CapsweepConfigError(
            "hydra.sweeper.nuisance_trials",
            budget,
            "must be a whole number >= 1 (the candidates each configuration tries)",
            fix="e.g. hydra.sweeper.nuisance_trials=3",
        )
    if not written:
        return None
    sampler = options.get("nuisance_sampler")
    if sampler is not None and str(sampler) not in SAMPLERS:
        raise CapsweepConfigError(
            "hydra.sweeper.nuisance_sampler",
            sampler,
            "is not a sampler for nuisance candidates",
            choices=[*SAMPLERS, None],
            fix="leave it null: a grid when the budget covers a finite space, else qmc",
        )
    space = parse_search_space(written, section="nuisance")
    _check_keys(space, scientific, written)
    check_param_paths(config, space.written, section="nuisance")
    check_job_settings(config, space)
    rescore = options.get("nuisance_rescore", 0)
    if isinstance(rescore, bool) or not isinstance(rescore, int) or rescore < 0:
        raise CapsweepConfigError(
            "hydra.sweeper.nuisance_rescore",
            rescore,
            "must be a whole number >= 0 (how many of the best candidates run twice)",
            fix="e.g. hydra.sweeper.nuisance_rescore=2, or 0 to pick from one run each",
        )
    where = _parse_where(options.get("nuisance_where"), space)
    plan = NuisancePlan(
        space, budget, None if sampler is None else str(sampler), rescore, where=where
    )
    if plan.sampler == "grid":
        space.grid()  # raises for a continuous range, naming it (as the sweep's grid does)
    _check_effect(plan, config, scientific)
    return plan


def _check_keys(space: SearchSpace, scientific: SearchSpace, written: Mapping[str, Any]) -> None:
    for key in space.fixed:
        raise CapsweepConfigError(
            f"hydra.sweeper.nuisance.{key}",
            written[key],
            "is a fixed value: a nuisance parameter is a range to tune in every configuration",
            fix=f"give a range, e.g. tag(log, interval(1e-4, 1e-2)), or set {key} "
            "as a plain override",
        )
    for key in space.distributions:
        if key in scientific.distributions or key in scientific.fixed:
            raise CapsweepConfigError(
                f"hydra.sweeper.nuisance.{key}",
                written[key],
                "is also in hydra.sweeper.params (or set on the command line): a "
                "hyperparameter is compared (scientific), tuned inside each configuration "
                "(nuisance) or fixed, one of these",
                fix=f"remove {key} from params or from nuisance; hydra.sweeper.nuisance=null "
                "tunes nothing",
            )
        if key in SEEDS:
            raise CapsweepConfigError(
                f"hydra.sweeper.nuisance.{key}",
                written[key],
                "is a seed: candidates train with the base seeds and confirmations with "
                "fresh ones (hydra.sweeper.repeats, repeat_over); tuning a seed selects noise",
                fix=f"remove {key} from nuisance",
            )


def _check_effect(plan: NuisancePlan, config: DictConfig, scientific: SearchSpace) -> None:
    """Refuse a nuisance key that is inert in every configuration the sweep compares."""
    unused = dict.fromkeys(plan.space.distributions, "")
    for params in islice(_configurations(scientific), CONFIGURATIONS_CHECKED):
        settings = configuration_settings(config, scientific, params)
        inert = plan.skipped(settings)
        for key in list(unused):
            if key in inert:
                unused[key] = inert[key]
            else:
                del unused[key]
        if not unused:
            return
    key, reason = next(iter(unused.items()))
    limited = reason.startswith(WHERE)
    raise CapsweepConfigError(
        f"hydra.sweeper.nuisance.{key}",
        plan.space.written[key],
        ("is tuned in no configuration" if limited else "has no effect in any configuration")
        + f" this sweep compares: {reason}",
        fix=f"remove {key} from nuisance, or compare configurations where it matters",
    )


WHERE = "hydra.sweeper.nuisance_where"


def _parse_where(written: Any, space: SearchSpace) -> dict[str, dict[str, Any]]:
    """``nuisance_where`` as {nuisance key: {setting: value or list of values}}."""
    where = OmegaConf.to_container(written) if OmegaConf.is_config(written) else written
    if where is None:
        return {}
    example = "e.g. {trainer.learning_rate: {capacity.unfreeze: 0}}"
    if not isinstance(where, Mapping):
        raise CapsweepConfigError(
            WHERE, where, "must map a nuisance key to the settings it is tuned with", fix=example
        )
    parsed: dict[str, dict[str, Any]] = {}
    for written_key, conditions in where.items():
        key = str(written_key)
        if key not in space.distributions:
            raise CapsweepConfigError(
                f"{WHERE}.{key}",
                conditions,
                "names no key of hydra.sweeper.nuisance",
                choices=sorted(space.distributions),
                fix="limit a key the sweep tunes, or remove it from nuisance_where",
            )
        if not isinstance(conditions, Mapping) or not conditions:
            raise CapsweepConfigError(
                f"{WHERE}.{key}",
                conditions,
                "must map settings to the values a configuration has where it is tuned",
                fix=example,
            )
        for setting in conditions:
            if str(setting) not in schema_keys():
                raise unknown_key_error(str(setting), conditions[setting])
        parsed[key] = {str(setting): value for setting, value in conditions.items()}
    return parsed


def _matches(settings: CapsweepConfig, conditions: Mapping[str, Any]) -> bool:
    """Whether ``settings`` has every value ``conditions`` asks for (a list: any of them)."""
    for dotted, wanted in conditions.items():
        value: Any = settings
        for name in dotted.split("."):
            value = getattr(value, name)
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if not any(value == item or str(value) == str(item) for item in allowed):
            return False
    return True


def _conditions(conditions: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in conditions.items())


def _configurations(space: SearchSpace) -> Iterator[dict[str, Any]]:
    """The scientific configurations: every grid point when finite, else each probe value."""
    if finite(space.distributions):
        names = sorted(space.distributions)
        choices = [grid_choices(name, space.distributions[name]) for name in names]
        for values in product(*choices):
            yield dict(zip(names, values, strict=True))
        return
    for name, distribution in space.distributions.items():
        values = (
            distribution.choices
            if isinstance(distribution, CategoricalDistribution)
            else (distribution.low, distribution.high)  # type: ignore[attr-defined]
        )
        for value in values:
            yield {name: value}


def _grid_size(distributions: Mapping[str, BaseDistribution]) -> int:
    size = 1
    for name, distribution in distributions.items():
        size *= len(grid_choices(name, distribution))
    return size
