"""Check the settings every job of a sweep will train with, before the first job starts.

A bad base value (``capsweep -m head.depth=-1``) or a bad swept value
(``head.depth=choice(-1,0)``) would otherwise open a study and a parent run, then fail job
after job. Each fixed value is applied, then each swept value in turn (every choice, or a
range's ends), and the result goes through the same checks as a single run's settings.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from optuna.distributions import BaseDistribution, CategoricalDistribution

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import settings_from
from capsweep.settings import check_settings
from capsweep.sweep.search_space import SearchSpace


def check_job_settings(config: DictConfig, space: SearchSpace) -> None:
    """Raise on the first value a job of this sweep would be refused for.

    Config groups (``backbone=choice(...)``) are left to the jobs: their options compose
    whole configs, which the shipped configs' own tests cover.
    """
    groups = set(config.hydra.runtime.choices.keys())
    base = config.copy()
    with open_dict(base):
        del base["hydra"]
    for name, value in space.fixed_values.items():
        _apply(base, name, value, groups)
    check_settings(settings_from(base))
    for name, distribution in space.distributions.items():
        for value in _probe_values(distribution):
            probe = base.copy()
            if _apply(probe, name, value, groups):
                check_settings(settings_from(probe))


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
