"""The nuisance block of a sweep: checked before any study exists, and the candidates each
configuration tries, drawn up front."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import compose_config
from capsweep.sweep.job_settings import configuration_settings
from capsweep.sweep.nuisance import NuisancePlan, design, plan_nuisance
from capsweep.sweep.search_space import parse_search_space
from capsweep.sweep.sweep_plan import plan_sweep

BACKBONE_RATE = "trainer.backbone_learning_rate"
LOG_RANGE = "tag(log, interval(1e-4, 1e-2))"
GRID = {"capacity.unfreeze": "choice(0, 1, 2)", "head.depth": "choice(0, 1)"}


@pytest.fixture
def config(tmp_path: Path) -> DictConfig:
    """The default configuration with Hydra's node, as the sweeper receives it."""
    return compose_config([f"paths.outputs={tmp_path}"], return_hydra_config=True)


def plan(config: DictConfig, nuisance: dict[str, str], **options: Any) -> NuisancePlan | None:
    return plan_nuisance({"nuisance": nuisance, **options}, config, parse_search_space(GRID))


def refusal(config: DictConfig, nuisance: dict[str, str], **options: Any) -> str:
    with pytest.raises(CapsweepConfigError) as raised:
        plan(config, nuisance, **options)
    return str(raised.value)


def test_no_nuisance_block_plans_no_tuning(config: DictConfig) -> None:
    assert plan(config, {}) is None


def test_a_key_both_compared_and_tuned_is_refused_naming_it(config: DictConfig) -> None:
    error = refusal(config, {"head.depth": "choice(0, 1)"})

    assert error.startswith("hydra.sweeper.nuisance.head.depth='choice(0, 1)': is also in ")
    assert "remove head.depth from params or from nuisance" in error
    assert "hydra.sweeper.nuisance=null tunes nothing" in error


@pytest.mark.parametrize("seed", ["trainer.seed", "data.split_seed"])
def test_a_seed_is_refused(config: DictConfig, seed: str) -> None:
    error = refusal(config, {seed: "range(0, 4)"})

    assert error.startswith(f"hydra.sweeper.nuisance.{seed}=")
    assert "tuning a seed selects noise" in error


def test_a_key_inert_in_every_configuration_is_refused_with_the_reason(
    config: DictConfig,
) -> None:
    scientific = parse_search_space({"capacity.unfreeze": "0", "head.depth": "choice(0, 1)"})

    with pytest.raises(CapsweepConfigError) as raised:
        plan_nuisance({"nuisance": {BACKBONE_RATE: LOG_RANGE}}, config, scientific)

    assert str(raised.value) == (
        f"hydra.sweeper.nuisance.{BACKBONE_RATE}='{LOG_RANGE}': has no effect in any "
        "configuration this sweep compares: nothing of the backbone trains "
        f"(capacity.unfreeze=0); remove {BACKBONE_RATE} from nuisance, or compare "
        "configurations where it matters"
    )


@pytest.mark.parametrize("budget", [0, -1, 1.5, True])
def test_a_budget_below_one_is_refused(config: DictConfig, budget: Any) -> None:
    error = refusal(config, {BACKBONE_RATE: LOG_RANGE}, nuisance_trials=budget)

    assert error.startswith(f"hydra.sweeper.nuisance_trials={budget!r}: must be a whole number")


@pytest.mark.parametrize("rescore", [-1, 1.5, True])
def test_a_rescore_that_is_no_count_is_refused(config: DictConfig, rescore: Any) -> None:
    error = refusal(config, {BACKBONE_RATE: LOG_RANGE}, nuisance_rescore=rescore)

    assert error.startswith(f"hydra.sweeper.nuisance_rescore={rescore!r}: must be a whole")


def test_a_fixed_value_is_refused_as_nothing_to_tune(config: DictConfig) -> None:
    error = refusal(config, {BACKBONE_RATE: "0.001"})

    assert "is a fixed value: a nuisance parameter is a range to tune" in error


def test_an_unknown_key_is_refused_naming_the_nuisance_block(config: DictConfig) -> None:
    error = refusal(config, {"trainer.backbone_lr": LOG_RANGE})

    assert error.startswith("hydra.sweeper.nuisance='trainer.backbone_lr': is not a key")
    assert "did you mean trainer.backbone_learning_rate" in error


def test_a_value_jobs_would_refuse_is_refused_before_any_study(config: DictConfig) -> None:
    error = refusal(config, {BACKBONE_RATE: "choice(0.0, 0.001)"})

    assert error.startswith("trainer.backbone_learning_rate=0.0: must be positive")


def test_an_unknown_candidate_sampler_is_refused_with_the_choices(config: DictConfig) -> None:
    error = refusal(config, {BACKBONE_RATE: LOG_RANGE}, nuisance_sampler="tpe")

    assert "choose one of: qmc, random, grid, None" in error


def test_a_grid_of_a_continuous_range_is_refused(config: DictConfig) -> None:
    error = refusal(config, {BACKBONE_RATE: LOG_RANGE}, nuisance_sampler="grid")

    assert "the grid sampler needs a finite set of values" in error


def test_the_backbone_rate_is_not_tuned_where_nothing_of_the_backbone_trains(
    config: DictConfig,
) -> None:
    nuisance = plan(config, {BACKBONE_RATE: LOG_RANGE, "trainer.learning_rate": LOG_RANGE})
    assert nuisance is not None
    space = parse_search_space(GRID)

    frozen = nuisance.effective(configuration_settings(config, space, {"capacity.unfreeze": 0}))
    unfrozen = nuisance.effective(configuration_settings(config, space, {"capacity.unfreeze": 1}))

    assert sorted(frozen) == ["trainer.learning_rate"]
    assert sorted(unfrozen) == [BACKBONE_RATE, "trainer.learning_rate"]


HEAD_RATE = "trainer.learning_rate"
HEAD_ONLY = {HEAD_RATE: {"capacity.unfreeze": 0}}


def test_a_key_limited_by_nuisance_where_is_tuned_only_where_the_settings_match(
    config: DictConfig,
) -> None:
    nuisance = plan(
        config, {BACKBONE_RATE: LOG_RANGE, HEAD_RATE: LOG_RANGE}, nuisance_where=HEAD_ONLY
    )
    assert nuisance is not None
    space = parse_search_space(GRID)

    frozen = nuisance.effective(configuration_settings(config, space, {"capacity.unfreeze": 0}))
    unfrozen = nuisance.effective(configuration_settings(config, space, {"capacity.unfreeze": 2}))

    assert sorted(frozen) == [HEAD_RATE]
    assert sorted(unfrozen) == [BACKBONE_RATE]


def test_nuisance_where_accepts_a_list_as_any_of_its_values(config: DictConfig) -> None:
    where = {HEAD_RATE: {"capacity.unfreeze": [0, 1]}}
    nuisance = plan(config, {HEAD_RATE: LOG_RANGE}, nuisance_where=where)
    assert nuisance is not None
    space = parse_search_space(GRID)

    tuned = [
        unfreeze
        for unfreeze in (0, 1, 2)
        if nuisance.effective(
            configuration_settings(config, space, {"capacity.unfreeze": unfreeze})
        )
    ]

    assert tuned == [0, 1]


def test_nuisance_where_is_part_of_what_a_study_records(config: DictConfig) -> None:
    """Resuming with another limit would compare configurations tuned differently."""
    limited = plan(config, {HEAD_RATE: LOG_RANGE}, nuisance_where=HEAD_ONLY)
    everywhere = plan(config, {HEAD_RATE: LOG_RANGE})
    assert limited is not None and everywhere is not None

    assert limited.description() != everywhere.description()
    assert "where" not in everywhere.description()


@pytest.mark.parametrize(
    ("where", "problem"),
    [
        (
            {BACKBONE_RATE: {"capacity.unfreeze": 0}},
            f"hydra.sweeper.nuisance_where.{BACKBONE_RATE}=",
        ),
        ({HEAD_RATE: {"capacity.unfrezee": 0}}, "capacity.unfrezee=0: is not a key"),
        ({HEAD_RATE: {}}, "must map settings to the values"),
        ([HEAD_RATE], "must map a nuisance key to the settings it is tuned with"),
    ],
)
def test_a_bad_nuisance_where_is_refused_naming_it(
    config: DictConfig, where: Any, problem: str
) -> None:
    assert problem in refusal(config, {HEAD_RATE: LOG_RANGE}, nuisance_where=where)


def test_a_key_nuisance_where_limits_to_no_configuration_is_refused(config: DictConfig) -> None:
    where = {HEAD_RATE: {"capacity.unfreeze": 5}}

    error = refusal(config, {HEAD_RATE: LOG_RANGE}, nuisance_where=where)

    assert error.startswith(f"hydra.sweeper.nuisance.{HEAD_RATE}=")
    assert "is tuned in no configuration this sweep compares" in error
    assert "limits it to capacity.unfreeze=5" in error


LOG = {BACKBONE_RATE: FloatDistribution(1e-4, 1e-2, log=True)}


def test_quasi_random_candidates_fill_the_log_range_and_repeat_for_the_same_configuration() -> None:
    plan_ = NuisancePlan(parse_search_space({BACKBONE_RATE: LOG_RANGE}, section="nuisance"), 8)

    first = design(plan_, LOG, seed=0, params={"capacity.unfreeze": 1})
    again = design(plan_, LOG, seed=0, params={"capacity.unfreeze": 1})

    values = sorted(c[BACKBONE_RATE] for c in first)
    assert first == again
    assert len(values) == 8 and all(1e-4 <= v <= 1e-2 for v in values)
    # Sobol points: one in each eighth of the log range.
    eighths = sorted(int(8 * (math.log(v) - math.log(1e-4)) / math.log(100)) for v in values)
    assert eighths == list(range(8))


def test_each_configuration_draws_its_own_candidates() -> None:
    plan_ = NuisancePlan(parse_search_space({BACKBONE_RATE: LOG_RANGE}, section="nuisance"), 3)

    one = design(plan_, LOG, seed=0, params={"capacity.unfreeze": 1})
    two = design(plan_, LOG, seed=0, params={"capacity.unfreeze": 2})

    assert one != two


def test_a_finite_space_the_budget_covers_is_tried_value_by_value() -> None:
    written = {BACKBONE_RATE: "choice(0.0001, 0.001)", "head.width": "choice(16, 32)"}
    plan_ = NuisancePlan(parse_search_space(written, section="nuisance"), 4)
    effective = {
        BACKBONE_RATE: CategoricalDistribution([0.0001, 0.001]),
        "head.width": CategoricalDistribution([16, 32]),
    }

    candidates = design(plan_, effective, seed=0, params={})

    assert plan_.sampler_for(effective) == "grid"
    assert sorted((c[BACKBONE_RATE], c["head.width"]) for c in candidates) == [
        (0.0001, 16),
        (0.0001, 32),
        (0.001, 16),
        (0.001, 32),
    ]


def test_a_finite_space_larger_than_the_budget_is_sampled_quasi_randomly() -> None:
    written = {"head.width": "range(8, 64)"}
    plan_ = NuisancePlan(parse_search_space(written, section="nuisance"), 3)
    effective = {"head.width": IntDistribution(8, 63)}

    candidates = design(plan_, effective, seed=0, params={})

    assert plan_.sampler_for(effective) == "qmc"
    assert len(candidates) == 3
    assert all(isinstance(c["head.width"], int) and 8 <= c["head.width"] <= 63 for c in candidates)


@pytest.mark.parametrize("sampler", ["qmc", "random"])
def test_drawn_candidates_of_a_small_finite_space_are_each_tried_once(sampler: str) -> None:
    written = {BACKBONE_RATE: "choice(0.0001, 0.001)"}
    plan_ = NuisancePlan(parse_search_space(written, section="nuisance"), 3, sampler=sampler)
    effective = {BACKBONE_RATE: CategoricalDistribution([0.0001, 0.001])}

    candidates = [c[BACKBONE_RATE] for c in design(plan_, effective, seed=0, params={})]

    assert plan_.candidates(effective) == 2
    assert len(candidates) == len(set(candidates))


def test_a_configuration_with_nothing_to_tune_tries_no_candidate() -> None:
    plan_ = NuisancePlan(parse_search_space({BACKBONE_RATE: LOG_RANGE}, section="nuisance"), 3)

    assert plan_.candidates({}) == 0


def shipped_plan(tmp_path: Path, *overrides: str) -> Any:
    """The default sweep's checked plan, with ``overrides``."""
    config = compose_config([f"paths.outputs={tmp_path}", *overrides], return_hydra_config=True)
    options = OmegaConf.to_container(config.hydra.sweeper, resolve=True)
    assert isinstance(options, dict)
    return plan_sweep(options, config, [])


def test_a_tuned_sweep_with_another_sampler_wants_each_configuration_once(
    tmp_path: Path,
) -> None:
    """A tuned configuration is trained once; a sampler asked for more trials than a finite
    space has configurations would ask duplicates for ever."""
    plan = shipped_plan(tmp_path, "hydra.sweeper.sampler=tpe")

    assert plan.n_trials == 8


def test_a_tuned_sweep_asked_for_more_trials_than_configurations_is_refused(
    tmp_path: Path,
) -> None:
    with pytest.raises(CapsweepConfigError) as raised:
        shipped_plan(tmp_path, "hydra.sweeper.sampler=random", "hydra.sweeper.n_trials=9")

    assert str(raised.value).startswith(
        "hydra.sweeper.n_trials=9: a tuned sweep trains each of its 8 configurations once"
    )
    assert "hydra.sweeper.n_trials=8" in str(raised.value)


def test_an_untuned_sweep_may_train_a_configuration_again(tmp_path: Path) -> None:
    plan = shipped_plan(tmp_path, "hydra.sweeper.sampler=tpe", "hydra.sweeper.nuisance=null")

    assert plan.n_trials == 20


def test_confirming_on_the_selections_split_is_warned_of(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipped_plan(tmp_path, "hydra.sweeper.repeat_over=seed")

    assert "the confirmations train on the training/validation split" in caplog.text


def test_confirming_on_fresh_splits_warns_of_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shipped_plan(tmp_path)

    assert "confirmations train on" not in caplog.text
