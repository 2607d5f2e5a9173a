"""The sweeper's closed sets of names: Hydra refuses a name outside them, every name in
them builds, and the README lists exactly them."""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import pytest
from hydra.errors import HydraException
from omegaconf import DictConfig
from optuna.distributions import CategoricalDistribution

from capsweep.paths import CONF_DIR
from capsweep.sweep.choices import Pruner, Sampler
from capsweep.sweep.pruning import make_pruner
from capsweep.sweep.samplers import make_sampler
from capsweep.sweep.search_space import SearchSpace

README = CONF_DIR.parent / "README.md"
# Options without which an Optuna pruner cannot be built.
REQUIRED_PRUNER_OPTIONS: dict[str, dict[str, Any]] = {
    "percentile": {"percentile": 25.0},
    "threshold": {"lower": 0.1},
    "patient": {"wrapped_pruner": None, "patience": 1},
}


@pytest.mark.parametrize("sampler", list(Sampler))
def test_every_sampler_name_builds_a_sampler(sampler: Sampler) -> None:
    space = SearchSpace({"head.depth": CategoricalDistribution([0, 1])}, {})

    built = make_sampler(sampler.value, {}, seed=0, space=space)

    assert type(built).__name__.lower().startswith(sampler.value[:2])


@pytest.mark.parametrize("pruner", [p for p in Pruner if p is not Pruner.none])
def test_every_pruner_name_builds_a_pruner(pruner: Pruner) -> None:
    built = make_pruner(pruner.value, REQUIRED_PRUNER_OPTIONS.get(pruner.value, {}))

    assert built is not None


def test_pruner_none_builds_no_pruner() -> None:
    assert make_pruner(Pruner.none.value, {}) is None


@pytest.mark.parametrize(
    ("override", "choices"),
    [
        ("hydra.sweeper.sampler=tpee", Sampler),
        ("hydra.sweeper.pruner=medain", Pruner),
    ],
)
def test_hydra_refuses_a_name_outside_the_set_while_composing(
    compose: Callable[..., DictConfig], override: str, choices: type[StrEnum]
) -> None:
    with pytest.raises(HydraException) as raised:
        compose(override)

    message = f"{raised.value} {raised.value.__cause__}"  # Hydra says why in the cause
    assert "expected one of" in message
    assert [name for name in choices if name not in message] == []


def readme_row_names(key: str) -> list[str]:
    """The backticked names in the README's sweeper-option row for ``key``."""
    (row,) = [line for line in README.read_text().splitlines() if line.startswith(f"| `{key}`")]
    return re.findall(r"`([a-z0-9_]+)`", row.split("|")[2])


@pytest.mark.parametrize(("key", "choices"), [("hydra.sweeper.sampler", Sampler)])
def test_the_readme_lists_every_sampler(key: str, choices: type[StrEnum]) -> None:
    assert sorted(readme_row_names(key)) == sorted(choice.value for choice in choices)


def test_the_readme_lists_every_pruner() -> None:
    named = readme_row_names("hydra.sweeper.pruner")

    assert sorted(named) == sorted(p.value for p in Pruner if p is not Pruner.none)
