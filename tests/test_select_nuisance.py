"""What the recommendation says of tuned configurations: the values each was compared at,
chosen values at the edge of their range (and which way to widen it), and what stayed
fixed. Expected sentences are written out in the tests."""

from __future__ import annotations

from typing import Any

import pytest

from capsweep.select import TrialRecord, recommend, summarize
from capsweep.select.nuisance import NuisanceRange
from capsweep.select.summaries import Candidate, Tuning

RATE = "trainer.backbone_learning_rate"
LOG_RANGE = NuisanceRange(1e-4, 1e-2, log=True)


def tuned(
    first: int, unfreeze: int, accuracies: list[float], size: float, rate: float | None
) -> list[TrialRecord]:
    """One trial's confirmations of a configuration tuned to ``rate`` (None: nothing tuned)."""
    tuning = Tuning(
        chosen={} if rate is None else {RATE: rate},
        tried=0 if rate is None else 3,
        candidates=() if rate is None else (Candidate({RATE: rate}, "COMPLETE", 0.9),),
        selection=None if rate is None else 0.9,
    )
    return [
        TrialRecord(
            first,
            "COMPLETE",
            {"capacity.unfreeze": unfreeze},
            repeat,
            {"val_accuracy": accuracy, "trainable_params": size, "n_val": 200.0},
            f"run{first}-{repeat}",
            seed=repeat + 1,
            split_seed=repeat + 1,
            tuning=tuning,
        )
        for repeat, accuracy in enumerate(accuracies)
    ]


@pytest.mark.parametrize(
    ("rate", "side"),
    [
        (1.5e-4, "low"),  # log position 0.088
        (1.6e-4, None),  # 0.102
        (6.5e-3, "high"),  # 0.906
        (1e-3, None),
    ],
)
def test_a_log_range_edge_is_its_outer_tenth_on_the_log_scale(
    rate: float, side: str | None
) -> None:
    assert LOG_RANGE.side(rate) == side


def test_a_choice_edge_is_its_first_or_last_value() -> None:
    choices = NuisanceRange(1e-4, 1e-3, choices=(1e-4, 3e-4, 1e-3))

    assert [choices.side(v) for v in (1e-4, 3e-4, 1e-3)] == ["low", None, "high"]


def test_the_reason_names_the_values_the_pick_and_the_best_were_compared_at() -> None:
    records = [
        *tuned(0, 0, [0.80, 0.80, 0.82], 300.0, None),
        *tuned(1, 1, [0.90, 0.91, 0.89], 70_000.0, 1e-3),
    ]

    reason = recommend(summarize(records)).reason

    assert (
        "Each configuration was compared at its own tuned values, confirmed on fresh seeds: "
        "the pick at backbone_learning_rate=0.001 (best of 3 tried)."
    ) in reason


def test_a_chosen_value_at_the_edge_is_named_with_the_way_to_widen_the_range() -> None:
    records = [
        *tuned(0, 1, [0.90, 0.91, 0.89], 70_000.0, 1.2e-4),
        *tuned(1, 6, [0.70, 0.71, 0.69], 170_000.0, 1e-3),
    ]

    recommendation = recommend(summarize(records), ranges={RATE: LOG_RANGE})

    assert recommendation.reason.endswith(
        "The chosen value lies at the edge of its search range for unfreeze=1 "
        "(backbone_learning_rate=0.00012, at the low end: widen below 0.0001): its best may "
        "lie outside the range, so widen it that way and tune again."
    )
    assert [(e.summary.label, e.side) for e in recommendation.at_edges] == [("unfreeze=1", "low")]


def test_no_value_at_an_edge_says_nothing_of_edges() -> None:
    records = tuned(0, 1, [0.90, 0.91, 0.89], 70_000.0, 1e-3)

    recommendation = recommend(summarize(records), ranges={RATE: LOG_RANGE})

    assert "edge" not in recommendation.reason
    assert recommendation.at_edges == ()


def test_the_fixed_hyperparameters_are_named_as_caveats() -> None:
    records = tuned(0, 1, [0.90, 0.91, 0.89], 70_000.0, 1e-3)
    fixed: dict[str, Any] = {"trainer.epochs": 30, "trainer.optimizer": "adam"}

    recommendation = recommend(summarize(records), fixed=fixed)

    assert recommendation.reason.endswith(
        "Held fixed for every configuration, each a caveat on this comparison: "
        "trainer.epochs=30, trainer.optimizer=adam."
    )
    assert recommendation.as_dict()["fixed"] == fixed


def test_the_json_gives_each_configurations_tuning() -> None:
    records = tuned(0, 1, [0.90, 0.91, 0.89], 70_000.0, 1e-3)

    chosen = recommend(summarize(records)).as_dict()

    assert chosen["tuning"] == {
        "chosen": {RATE: 1e-3},
        "tried": 3,
        "selection_val_accuracy": 0.9,
        "candidates": [
            {"values": {RATE: 1e-3}, "round": 0, "state": "COMPLETE", "val_accuracy": 0.9}
        ],
    }
