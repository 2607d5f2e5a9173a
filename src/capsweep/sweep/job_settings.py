"""Check the settings every job of a sweep will train with, before the first job starts.

A bad base value (``capsweep -m head.depth=-1``) or a bad swept value
(``head.depth=choice(-1,0)``) would otherwise open a study and a parent run, then fail job
after job. Each fixed value is applied, then each swept value in turn (every choice, or a
range's ends), and the result goes through the same checks as a single run's settings.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import product
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import BaseDistribution, CategoricalDistribution

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import settings_from
from capsweep.settings import CapsweepConfig, check_settings
from capsweep.sweep.search_space import SearchSpace

# Settings whose valid values depend on each other.
JOINT = ("capacity.unfreeze", "capacity.position")


def check_job_settings(config: DictConfig, space: SearchSpace) -> None:
    """Raise on the first value a job of this sweep would be refused for.

    Config groups (``backbone=choice(...)``) are left to the jobs: their options compose
    whole configs, which the shipped configs' own tests cover.
    """
    groups = _groups(config)
    base = _base(config, space, groups)
    check_settings(settings_from(base))
    listed = {key for point in space.points for key in point}
    for name, distribution in space.distributions.items():
        if name in listed:  # only the listed combinations are trained: checked below
            continue
        for value in _probe_values(distribution):
            probe = base.copy()
            if _apply(probe, name, value, groups):
                check_settings(settings_from(probe))
    # Keys valid one by one may not be together (units 4-6 of 6 from position 4 and 3
    # units): every combination of their values is checked.
    joint = [name for name in JOINT if name in space.distributions and name not in listed]
    values = [_probe_values(space.distributions[name]) for name in joint]
    combinations = (
        [dict(zip(joint, chosen, strict=True)) for chosen in product(*values)]
        if len(joint) > 1
        else []
    )
    for point in [*combinations, *space.points]:
        probe = base.copy()
        applied = [_apply(probe, name, value, groups) for name, value in point.items()]
        if any(applied):
            check_settings(settings_from(probe))


def configuration_settings(
    config: DictConfig, space: SearchSpace, params: Mapping[str, Any]
) -> CapsweepConfig:
    """The settings a job of the configuration ``params`` trains with (unchecked).

    Config groups among ``params`` are left out (they compose whole configs); plain keys
    are applied as the job's overrides would.
    """
    groups = _groups(config)
    settings = _base(config, space, groups)
    for name, value in params.items():
        _apply(settings, name, value, groups)
    return settings_from(settings)


def _groups(config: DictConfig) -> set[str]:
    return set(config.hydra.runtime.choices.keys())


def _base(config: DictConfig, space: SearchSpace, groups: set[str]) -> DictConfig:
    """The job's configuration without Hydra's node, the sweep's fixed values applied."""
    base = config.copy()
    with open_dict(base):
        del base["hydra"]
    for name, value in space.fixed_values.items():
        _apply(base, name, value, groups)
    return base


def _probe_values(distribution: BaseDistribution) -> list[Any]:
    if isinstance(distribution, CategoricalDistribution):
        return list(distribution.choices)
    return [distribution.low, distribution.high]  # type: ignore[attr-defined]


def _apply(config: DictConfig, name: str, value: Any, groups: set[str]) -> bool:
    """Set ``name=value`` as the job's override would; False for what is not a plain key."""
    key = name.lstrip("+")
    if key in groups or key.startswith(("hydra.", "~")):
        return False
    try:
        OmegaConf.update(config, key, value, merge=False, force_add=name.startswith("+"))
    except OmegaConfBaseException as error:
        raise CapsweepConfigError(
            key, value, f"does not fit the configuration ({str(error).splitlines()[0]})"
        ) from None
    return True
