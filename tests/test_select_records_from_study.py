"""A study's trials as selection records: the seeds each repeat trained with."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from capsweep.sweep import study as studies
from capsweep.sweep.trial_records import records_from_study

PARAMS = {"capacity.unfreeze": 1}
DISTRIBUTIONS: dict[str, Any] = {"capacity.unfreeze": optuna.distributions.IntDistribution(0, 6)}
METRICS = {"val_accuracy": 0.8, "trainable_params": 10.0}


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def study_with(user_attrs: dict[str, Any]) -> optuna.Study:
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(
            params=PARAMS, distributions=DISTRIBUTIONS, value=0.8, user_attrs=user_attrs
        )
    )
    return study


def test_records_carry_each_repeats_seed_and_split_seed() -> None:
    attrs: dict[str, Any] = {}
    for repeat, (seed, split_seed) in enumerate([(0, 5), (1, 5)]):
        attrs[studies.METRICS_ATTR.format(repeat=repeat)] = METRICS
        attrs[studies.SEED_ATTR.format(repeat=repeat)] = seed
        attrs[studies.SPLIT_SEED_ATTR.format(repeat=repeat)] = split_seed

    records = records_from_study(study_with(attrs))

    assert [(r.repeat, r.seed, r.split_seed) for r in records] == [(0, 0, 5), (1, 1, 5)]


def test_records_without_recorded_seeds_have_none() -> None:
    records = records_from_study(study_with({studies.METRICS_ATTR.format(repeat=0): METRICS}))

    assert [(r.seed, r.split_seed) for r in records] == [(None, None)]


def test_seed_attribute_names_are_per_repeat() -> None:
    assert studies.SEED_ATTR.format(repeat=2) == "capsweep.seed.2"
    assert studies.SPLIT_SEED_ATTR.format(repeat=2) == "capsweep.split_seed.2"
