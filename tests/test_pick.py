"""The pick rule: summaries, the Pareto front, the standard error and the recommendation.

Expected numbers are worked out by hand from the inputs, in the test.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest

from capsweep.select import (
    TrialRecord,
    params_label,
    pareto_front,
    recommend,
    standard_error,
    summarize,
)


def config(unfreeze: int, depth: int) -> dict[str, Any]:
    return {"capacity.unfreeze": unfreeze, "head.depth": depth}


def trial(
    number: int,
    params: dict[str, Any],
    val_accuracy: float | None,
    trainable_params: float | None,
    *,
    state: str = "COMPLETE",
    repeat: int = 0,
    **metrics: float,
) -> TrialRecord:
    recorded = {"overfit_gap": 0.02, "n_val": 400.0, **metrics}
    if val_accuracy is not None:
        recorded["val_accuracy"] = val_accuracy
    if trainable_params is not None:
        recorded["trainable_params"] = trainable_params
    return TrialRecord(number, state, params, repeat, recorded, run_id=f"run{number}")


def repeats(
    first: int,
    params: dict[str, Any],
    accuracies: list[float],
    trainable_params: float,
    **metrics: float,
) -> list[TrialRecord]:
    """One trial per repeat, numbered from ``first``."""
    records = []
    for repeat, accuracy in enumerate(accuracies):
        record = trial(first + repeat, params, accuracy, trainable_params)
        recorded = {**record.metrics, **metrics}
        records.append(
            TrialRecord(record.number, record.state, params, repeat, recorded, record.run_id)
        )
    return records


# One repeat each, n_val=400. The best (0.90) has a binomial standard error of
# sqrt(0.90 * 0.10 / 400) = 0.3 / 20 = 0.015, so the threshold is 0.885.
BEST = config(6, 1)
SMALL = config(1, 0)
TINY = config(0, 0)
BINOMIAL = [
    trial(0, BEST, 0.90, 1_200_000),
    trial(1, SMALL, 0.89, 100_000),  # within 0.015 of the best, 12 times smaller
    trial(2, TINY, 0.88, 10_000),  # 0.02 below the best: outside
]


# summarize


def test_summarize_groups_repeats_and_computes_mean_and_sample_std() -> None:
    records = [
        *repeats(0, BEST, [0.80, 0.82, 0.84], 1000, fit_seconds=9.0),
        trial(3, TINY, 0.7, 10),
    ]

    summary = next(s for s in summarize(records) if s.params == BEST)

    assert summary.trial_numbers == (0, 1, 2)
    assert summary.run_ids == ("run0", "run1", "run2")
    assert summary.n == 3
    assert summary.val_accuracy == pytest.approx(0.82)
    # deviations -0.02, 0, +0.02: sqrt((0.0004 + 0 + 0.0004) / (3 - 1)) = 0.02
    assert summary.val_accuracy_std == pytest.approx(0.02)
    assert summary.fit_seconds == pytest.approx(9.0)


def test_summarize_gives_no_std_for_a_single_repeat() -> None:
    (summary,) = summarize([trial(0, TINY, 0.7, 10)])

    assert summary.n == 1
    assert summary.val_accuracy_std is None


def test_summarize_averages_the_other_metrics_over_repeats() -> None:
    records = [
        trial(0, BEST, 0.8, 1000, overfit_gap=0.10, test_accuracy=0.70, train_accuracy=0.9),
        trial(1, BEST, 0.8, 1000, overfit_gap=0.20, test_accuracy=0.80, train_accuracy=1.0),
    ]

    (summary,) = summarize(records)

    assert summary.trainable_params == 1000
    assert summary.overfit_gap == pytest.approx(0.15)
    assert summary.test_accuracy == pytest.approx(0.75)
    assert summary.train_accuracy == pytest.approx(0.95)
    assert summary.n_val == 400


def test_summarize_identifies_a_configuration_by_its_params_whatever_their_order() -> None:
    records = [
        trial(0, {"capacity.unfreeze": 1, "head.depth": 0}, 0.8, 10),
        trial(1, {"head.depth": 0, "capacity.unfreeze": 1}, 0.9, 10, repeat=1),
    ]

    (summary,) = summarize(records)

    assert summary.trial_numbers == (0, 1)


def test_summarize_ranks_by_val_accuracy_then_fewer_trainable_params() -> None:
    records = [
        trial(0, config(0, 0), 0.80, 10),
        trial(1, config(1, 0), 0.90, 500),
        trial(2, config(2, 0), 0.90, 100),
    ]

    assert [s.trial_numbers for s in summarize(records)] == [(2,), (1,), (0,)]


@pytest.mark.parametrize("state", ["PRUNED", "FAIL", "RUNNING", "WAITING"])
def test_summarize_ignores_trials_that_did_not_complete(state: str) -> None:
    records = [trial(0, TINY, 0.7, 10), trial(1, SMALL, 0.99, 1, state=state)]

    assert [s.params for s in summarize(records)] == [TINY]


@pytest.mark.parametrize("state", ["PRUNED", "FAIL", "RUNNING"])
def test_summarize_accepts_unfinished_trials_without_metrics(state: str) -> None:
    records = [trial(0, TINY, 0.7, 10), trial(1, SMALL, None, None, state=state)]

    assert len(summarize(records)) == 1


@pytest.mark.parametrize("missing", ["val_accuracy", "trainable_params"])
def test_summarize_leaves_out_a_completed_trial_without_a_required_metric_and_warns(
    missing: str, caplog: pytest.LogCaptureFixture
) -> None:
    complete = trial(7, TINY, 0.7, 10).metrics
    record = TrialRecord(
        7, "COMPLETE", TINY, 0, {k: v for k, v in complete.items() if k != missing}
    )

    with caplog.at_level(logging.WARNING, logger="capsweep.pick"):
        summaries = summarize([record, trial(8, TINY, 0.8, 10, repeat=1)])

    (summary,) = summaries
    assert summary.trial_numbers == (8,)
    assert f"Trial 7 (repeat 0, MLflow run None) is COMPLETE but its {missing} is None" in (
        caplog.text
    )


def test_summarize_groups_the_repeats_of_one_optuna_trial() -> None:
    # One trial trains every seed: the records share the trial number and differ by repeat.
    records = [
        TrialRecord(5, "COMPLETE", SMALL, repeat, {"val_accuracy": v, "trainable_params": 10})
        for repeat, v in [(2, 0.84), (0, 0.80), (1, 0.82)]
    ]

    (summary,) = summarize(records)

    assert summary.trial_numbers == (5, 5, 5)
    assert summary.repeats == (0, 1, 2)
    assert summary.val_accuracy_std == pytest.approx(0.02)


# pareto_front


def test_pareto_front_keeps_only_configurations_nothing_beats_on_both_axes() -> None:
    table = [  # (val_accuracy, trainable_params)
        trial(0, config(0, 0), 0.70, 10),  # smallest: on the front
        trial(1, config(1, 0), 0.85, 100),  # on the front
        trial(2, config(2, 0), 0.80, 500),  # worse and bigger than #1
        trial(3, config(3, 0), 0.90, 1000),  # most accurate: on the front
        trial(4, config(4, 0), 0.90, 2000),  # as accurate as #3, bigger
        trial(5, config(5, 0), 0.85, 150),  # as accurate as #1, bigger
    ]

    front = pareto_front(summarize(table))

    assert [s.trial_numbers for s in front] == [(0,), (1,), (3,)]


def test_pareto_front_keeps_configurations_that_tie_on_both_axes() -> None:
    front = pareto_front(summarize([trial(0, TINY, 0.8, 10), trial(1, SMALL, 0.8, 10)]))

    assert len(front) == 2


# standard_error


@pytest.mark.parametrize(
    ("accuracies", "n_val", "expected"),
    [
        ([0.90], 400, 0.015),  # binomial: sqrt(0.9 * 0.1 / 400)
        ([0.50], 100, 0.05),  # binomial: sqrt(0.25 / 100)
        ([1.00], 50, 0.0),  # binomial: a perfect score has no spread
        ([0.80, 0.82, 0.84], 400, 0.02 / math.sqrt(3)),  # repeats: std 0.02 over sqrt(3)
        ([0.70, 0.90], 100, 0.1),  # repeats: std sqrt(0.02) = 0.1414, over sqrt(2)
    ],
)
def test_standard_error(accuracies: list[float], n_val: float, expected: float) -> None:
    (summary,) = summarize(repeats(0, TINY, accuracies, 10, n_val=n_val))

    assert standard_error(summary) == pytest.approx(expected)


def test_standard_error_needs_repeats_or_n_val() -> None:
    record = TrialRecord(0, "COMPLETE", TINY, 0, {"val_accuracy": 0.8, "trainable_params": 10})
    (summary,) = summarize([record])

    with pytest.raises(ValueError, match=r"unfreeze=0, depth=0.*n_val=None"):
        standard_error(summary)


# recommend


def test_recommend_picks_the_smallest_within_one_binomial_standard_error() -> None:
    recommendation = recommend(summarize(BINOMIAL))

    assert recommendation.chosen.params == SMALL
    assert recommendation.best.params == BEST
    assert recommendation.tolerance == pytest.approx(0.015)
    assert recommendation.threshold == pytest.approx(0.885)
    assert recommendation.tolerance_derivation == (
        "one binomial standard error of the best, n_val=400"
    )


def test_recommend_picks_the_smallest_within_one_standard_error_of_the_repeats() -> None:
    # The best's repeats: mean 0.88, std 0.02, so SE = 0.02 / sqrt(3) = 0.01155 and the
    # threshold is 0.8685. n_val=100 would give the looser binomial SE 0.0325 instead.
    records = [
        *repeats(0, BEST, [0.86, 0.88, 0.90], 1_200_000, n_val=100),
        *repeats(3, SMALL, [0.87, 0.87, 0.87], 100_000, n_val=100),  # 0.87: within
        *repeats(6, TINY, [0.86, 0.86, 0.86], 10_000, n_val=100),  # 0.86: outside
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.chosen.params == SMALL
    assert recommendation.tolerance == pytest.approx(0.02 / math.sqrt(3))
    assert recommendation.threshold == pytest.approx(0.88 - 0.02 / math.sqrt(3))
    assert recommendation.tolerance_derivation == "one standard error of the best, from 3 repeats"


def test_recommend_uses_an_absolute_tolerance_when_given() -> None:
    # 0.90 - 0.02 = 0.88: TINY (0.88) sits exactly on the threshold and counts as within.
    recommendation = recommend(summarize(BINOMIAL), tolerance=0.02)

    assert recommendation.chosen.params == TINY
    assert recommendation.tolerance == 0.02
    assert recommendation.threshold == pytest.approx(0.88)
    assert recommendation.tolerance_derivation == "absolute tolerance"


def test_recommend_with_zero_tolerance_picks_the_best() -> None:
    assert recommend(summarize(BINOMIAL), tolerance=0.0).chosen.params == BEST


def test_recommend_never_picks_a_configuration_over_max_overfit_gap() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, overfit_gap=0.02),
        trial(1, config(3, 1), 0.895, 500_000, overfit_gap=0.03),
        trial(2, SMALL, 0.89, 100_000, overfit_gap=0.20),  # smallest within, but overfits
    ]

    assert recommend(summarize(records)).chosen.params == SMALL
    assert recommend(summarize(records), max_overfit_gap=0.1).chosen.params == config(3, 1)


def test_recommend_measures_the_tolerance_from_the_best_candidate_under_max_overfit_gap() -> None:
    records = [
        trial(0, BEST, 0.95, 1_200_000, overfit_gap=0.30),  # filtered out
        trial(1, SMALL, 0.90, 100_000, overfit_gap=0.01),
    ]

    recommendation = recommend(summarize(records), max_overfit_gap=0.05)

    assert recommendation.best.params == SMALL
    assert recommendation.threshold == pytest.approx(0.885)  # 0.90 - 0.015


def test_recommend_keeps_the_best_when_it_is_also_the_smallest() -> None:
    records = [trial(0, TINY, 0.90, 10_000), trial(1, BEST, 0.895, 1_200_000)]

    recommendation = recommend(summarize(records))

    assert recommendation.chosen.params == TINY
    assert recommendation.chosen == recommendation.best
    assert recommendation.reason == (
        "unfreeze=0, depth=0 is the best (val_accuracy 0.900) and itself the smallest that "
        "performs well: no configuration within one standard error (0.015) of it has fewer "
        "trainable parameters."
    )  # SE: sqrt(0.9 * 0.1 / 400) = 0.015


def test_recommend_breaks_a_tie_in_trainable_params_by_higher_val_accuracy() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000),
        trial(1, SMALL, 0.888, 100_000),
        trial(2, TINY, 0.889, 100_000),
    ]

    assert recommend(summarize(records)).chosen.params == TINY


def test_recommend_ignores_trials_that_did_not_complete() -> None:
    records = [
        *BINOMIAL,
        trial(3, config(0, 1), 0.99, 10, state="PRUNED"),
        trial(4, config(0, 2), 0.99, 10, state="FAIL"),
        trial(5, config(0, 3), 0.99, 10, state="RUNNING"),
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.chosen.params == SMALL
    assert recommendation.best.params == BEST


def test_recommend_explains_the_ratio_of_trainable_params_and_the_tolerance() -> None:
    reason = recommend(summarize(BINOMIAL)).reason

    # 1,200,000 / 100,000 = 12; the tolerance is 0.015
    assert reason == (
        "unfreeze=1, depth=0 has 12\u00d7 fewer trainable parameters than the best "
        "(unfreeze=6, depth=1: val_accuracy 0.900) and its val_accuracy 0.890 is within one "
        "standard error (0.015) of it."
    )


def test_recommend_names_an_absolute_tolerance_in_the_reason() -> None:
    reason = recommend(summarize(BINOMIAL), tolerance=0.02).reason

    # 1,200,000 / 10,000 = 120
    assert "120\u00d7 fewer trainable parameters" in reason
    assert "within the absolute tolerance (0.020)" in reason


def test_recommend_without_completed_trials_says_so() -> None:
    records = [
        trial(0, TINY, None, None, state="PRUNED"),
        trial(1, SMALL, None, None, state="FAIL"),
    ]

    with pytest.raises(ValueError, match="no completed trial"):
        recommend(summarize(records))


def test_recommend_when_nothing_passes_max_overfit_gap_names_the_smallest_gap_and_the_fix() -> None:
    records = [
        trial(0, BEST, 0.9, 1000, overfit_gap=0.08),
        trial(1, SMALL, 0.8, 10, overfit_gap=0.05),
    ]

    with pytest.raises(ValueError) as raised:
        recommend(summarize(records), max_overfit_gap=0.01)

    message = str(raised.value)
    assert "max_overfit_gap=0.01" in message
    assert "smallest overfit_gap seen is 0.050 (unfreeze=1, depth=0)" in message
    assert "raise max_overfit_gap to 0.050 or more" in message


@pytest.mark.parametrize("tolerance", [-0.01, math.nan, math.inf])
def test_recommend_rejects_a_tolerance_that_is_not_a_non_negative_number(
    tolerance: float,
) -> None:
    with pytest.raises(ValueError, match="tolerance="):
        recommend(summarize(BINOMIAL), tolerance=tolerance)


# Recommendation.as_dict


def test_as_dict_round_trips_through_json_with_every_chosen_trial() -> None:
    records = [
        *repeats(0, BEST, [0.86, 0.88, 0.90], 1_200_000),
        *repeats(3, SMALL, [0.87, 0.88, 0.86], 100_000),
    ]
    exported = recommend(summarize(records)).as_dict()

    loaded = json.loads(json.dumps(exported, allow_nan=False))

    assert loaded == exported
    assert loaded["trial_numbers"] == [3, 4, 5]
    assert loaded["representative_trial"] == 4  # the repeat with val_accuracy 0.88
    assert loaded["representative_run_id"] == "run4"
    assert [t["repeat"] for t in loaded["trials"]] == [0, 1, 2]
    assert loaded["params"] == SMALL
    assert loaded["metrics"]["n"] == 3
    assert loaded["metrics"]["val_accuracy"] == pytest.approx(0.87)
    assert loaded["metrics"]["val_accuracy_std"] == pytest.approx(0.01)
    assert loaded["best"]["params"] == BEST
    assert loaded["best"]["representative_trial"] == 2
    assert loaded["tolerance"] == pytest.approx(0.02 / math.sqrt(3))
    assert loaded["reason"].startswith("unfreeze=1, depth=0 has 12\u00d7 fewer")


def test_as_dict_names_each_trial_once_when_one_trial_trains_every_repeat() -> None:
    records = [
        TrialRecord(5, "COMPLETE", SMALL, repeat, {"val_accuracy": v, "trainable_params": 10})
        for repeat, v in [(0, 0.80), (1, 0.84), (2, 0.82)]
    ]

    exported = recommend(summarize(records), tolerance=0.01).as_dict()

    assert exported["trial_numbers"] == [5]
    assert exported["representative_trial"] == 5
    assert exported["representative_repeat"] == 1  # val_accuracy 0.84
    assert len(exported["trials"]) == 3


# params_label


@pytest.mark.parametrize(
    ("params", "label"),
    [
        ({"head.depth": 0, "capacity.unfreeze": 1}, "unfreeze=1, depth=0"),
        (
            {"backbone.name": "resnet50", "data.name": "flowers"},
            "backbone.name=resnet50, data.name=flowers",
        ),
        ({"trainer.learning_rate": 0.001}, "learning_rate=0.001"),
        ({}, "(no swept parameters)"),
    ],
)
def test_params_label(params: dict[str, Any], label: str) -> None:
    assert params_label(params) == label
