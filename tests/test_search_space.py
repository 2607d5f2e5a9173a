"""Search-space strings (the params syntax of Hydra's Optuna sweeper) to Optuna distributions."""

from __future__ import annotations

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from capsweep.errors import CapsweepConfigError
from capsweep.sweep.search_space import parse_search_space


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("choice(0, 1, 2)", CategoricalDistribution([0, 1, 2])),
        ("choice(block, weighted_layer)", CategoricalDistribution(["block", "weighted_layer"])),
        ("range(0, 7)", IntDistribution(0, 6)),  # stop excluded, as Hydra's range
        ("range(0, 10, 2)", IntDistribution(0, 8, step=2)),
        ("range(0.1, 0.5, 0.1)", FloatDistribution(0.1, 0.4, step=0.1)),
        ("interval(0.0, 0.5)", FloatDistribution(0.0, 0.5)),
        ("interval(1, 8)", FloatDistribution(1.0, 8.0)),  # Hydra's interval is continuous
        ("int(interval(1, 8))", IntDistribution(1, 8)),
        ("tag(log, interval(1e-4, 1e-2))", FloatDistribution(1e-4, 1e-2, log=True)),
        ("int(tag(log, interval(16, 256)))", IntDistribution(16, 256, log=True)),
    ],
)
def test_sweep_string_becomes_distribution(text: str, expected: object) -> None:
    space = parse_search_space({"x": text})
    distribution = space.distributions["x"]
    if isinstance(expected, FloatDistribution) and expected.step is not None:
        assert isinstance(distribution, FloatDistribution)
        assert distribution.low == pytest.approx(expected.low)
        assert distribution.high == pytest.approx(expected.high)
        assert distribution.step == pytest.approx(expected.step)
    else:
        assert distribution == expected


def test_plain_value_is_fixed_for_every_trial() -> None:
    space = parse_search_space({"head.depth": "choice(0, 1)", "trainer.epochs": "5"})
    assert space.fixed == {"trainer.epochs": "5"}
    assert list(space.distributions) == ["head.depth"]


def test_command_line_argument_overrides_the_sweep_file() -> None:
    space = parse_search_space({"head.depth": "choice(0, 1)"}, ["head.depth=choice(0, 1, 2)"])
    assert space.distributions["head.depth"] == CategoricalDistribution([0, 1, 2])


def test_grid_lists_every_value() -> None:
    space = parse_search_space({"capacity.unfreeze": "range(0, 3)", "head.depth": "choice(0, 1)"})
    assert space.grid() == {"capacity.unfreeze": [0, 1, 2], "head.depth": [0, 1]}
    assert space.grid_size() == 6


def test_grid_refuses_a_continuous_interval() -> None:
    space = parse_search_space({"trainer.learning_rate": "interval(0.001, 0.1)"})
    with pytest.raises(CapsweepConfigError, match="grid sampler needs a finite set"):
        space.grid()


def test_empty_search_space_is_refused() -> None:
    with pytest.raises(CapsweepConfigError, match="search space is empty"):
        parse_search_space({"trainer.epochs": "5"})


def test_signature_changes_with_the_space() -> None:
    first = parse_search_space({"head.depth": "choice(0, 1)"})
    same = parse_search_space({"head.depth": "choice(0, 1)"})
    other = parse_search_space({"head.depth": "choice(0, 1, 2)"})
    assert first.signature() == same.signature()
    assert first.signature() != other.signature()
