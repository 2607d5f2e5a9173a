"""The pick rule: summaries, the Pareto front, the standard error and the recommendation.

Expected numbers are worked out by hand from the inputs, in the test.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import pytest

from capsweep.errors import CapsweepConfigError
from capsweep.select import (
    TrialRecord,
    params_label,
    pareto_front,
    recommend,
    standard_error,
    summarize,
    wilson_half_width,
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
    seed: int | None = None,
    split_seed: int | None = None,
    **metrics: float,
) -> TrialRecord:
    recorded = {"overfit_gap": 0.02, "n_val": 400.0, **metrics}
    if val_accuracy is not None:
        recorded["val_accuracy"] = val_accuracy
    if trainable_params is not None:
        recorded["trainable_params"] = trainable_params
    return TrialRecord(
        number, state, params, repeat, recorded, f"run{number}", seed=seed, split_seed=split_seed
    )


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


# One repeat each, n_val=600. A single run's Wilson standard error (z=1) is
# 1 / (1 + 1/n) * sqrt(p (1 - p) / n + 1 / (4 n**2)) = sqrt(n p (1 - p) + 1/4) / (n + 1):
#   best  0.90: sqrt(600 * 0.09   + 1/4) / 601 = sqrt(54.25) / 601 = 0.012255
#   SMALL 0.89: sqrt(600 * 0.0979 + 1/4) / 601 = sqrt(58.99) / 601 = 0.012780
#   TINY  0.88: sqrt(600 * 0.1056 + 1/4) / 601 = sqrt(63.61) / 601 = 0.013271
# Each is measured against the best by one standard error of its difference from it:
#   SMALL: sqrt(0.012255² + 0.012780²) = 0.017706, threshold 0.882294: 0.89 is within;
#   TINY:  sqrt(0.012255² + 0.013271²) = 0.018064, threshold 0.881936: 0.88 is just outside.
BEST = config(6, 1)
SMALL = config(1, 0)
TINY = config(0, 0)
BINOMIAL = [
    trial(0, BEST, 0.90, 1_200_000, n_val=600),
    trial(1, SMALL, 0.89, 100_000, n_val=600),  # within its 0.017706, 12 times smaller
    trial(2, TINY, 0.88, 10_000, n_val=600),  # 0.02 below the best: outside its 0.018064
]
WILSON_090_400 = math.sqrt(400 * 0.9 * 0.1 + 0.25) / 401
WILSON_090_600 = math.sqrt(600 * 0.9 * 0.1 + 0.25) / 601
WILSON_089_600 = math.sqrt(600 * 0.89 * 0.11 + 0.25) / 601


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


def test_summarize_pools_runs_with_the_same_seed_and_split_seed_into_one_repeat() -> None:
    records = [
        trial(0, SMALL, 0.80, 10, seed=0, split_seed=0),
        trial(1, SMALL, 0.84, 10, seed=0, split_seed=0),  # the same training again
        trial(2, SMALL, 0.90, 10, seed=1, split_seed=0),
    ]

    (summary,) = summarize(records)

    assert summary.n == 2
    assert summary.n_runs == 3
    assert summary.samples == (0, 0, 1)
    assert summary.sample_val_accuracies == pytest.approx((0.82, 0.90))
    assert summary.val_accuracy == pytest.approx(0.86)  # (0.82 + 0.90) / 2, not 0.8467
    # two repeats 0.82 and 0.90: std = 0.08 / sqrt(2)
    assert summary.val_accuracy_std == pytest.approx(0.08 / math.sqrt(2))


def test_summarize_keeps_runs_apart_when_their_seed_is_unknown() -> None:
    records = [trial(0, SMALL, 0.80, 10), trial(1, SMALL, 0.84, 10)]

    (summary,) = summarize(records)

    assert summary.n == 2
    assert summary.samples == (0, 1)


def test_summarize_keeps_runs_apart_when_only_the_split_seed_differs() -> None:
    records = [
        trial(0, SMALL, 0.80, 10, seed=0, split_seed=0),
        trial(1, SMALL, 0.84, 10, seed=0, split_seed=1),
    ]

    assert summarize(records)[0].n == 2


def test_summarize_averages_other_metrics_per_independent_repeat_first() -> None:
    records = [
        trial(0, SMALL, 0.8, 10, seed=0, split_seed=0, test_accuracy=0.70),
        trial(1, SMALL, 0.8, 10, seed=0, split_seed=0, test_accuracy=0.80),
        trial(2, SMALL, 0.8, 10, seed=1, split_seed=0, test_accuracy=0.95),
    ]

    (summary,) = summarize(records)

    # repeats: (0.70 + 0.80) / 2 = 0.75 and 0.95; their mean 0.85 (not 0.8167 over runs)
    assert summary.test_accuracy == pytest.approx(0.85)


def test_summarize_lists_each_runs_seeds_and_repeat_aligned_with_its_trial() -> None:
    records = [
        trial(0, SMALL, 0.80, 10, seed=3, split_seed=7),
        trial(1, SMALL, 0.84, 10, seed=3, split_seed=7),
    ]

    (summary,) = summarize(records)

    assert [(t["number"], t["seed"], t["split_seed"], t["sample"]) for t in summary.trials()] == [
        (0, 3, 7, 0),
        (1, 3, 7, 0),
    ]


def test_summarize_counts_a_configurations_unfinished_trials_once_per_trial() -> None:
    records = [
        trial(0, SMALL, 0.80, 10),
        trial(1, SMALL, None, None, state="PRUNED"),
        trial(2, SMALL, None, None, state="FAIL", repeat=0),
        trial(2, SMALL, None, None, state="FAIL", repeat=1),  # same trial, second repeat
        trial(3, TINY, None, None, state="FAIL"),  # another configuration
    ]

    (summary,) = summarize(records)

    assert summary.other_states == {"FAIL": 1, "PRUNED": 1}


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
        # One run: the Wilson half-width at z=1, sqrt(n p (1 - p) + 1/4) / (n + 1).
        ([0.90], 400, math.sqrt(36 + 0.25) / 401),  # 0.015014 (binomial: 0.015)
        ([0.50], 100, math.sqrt(25 + 0.25) / 101),  # 0.049752 (binomial: 0.05)
        ([1.00], 50, 0.5 / 51),  # 0.009804: a perfect score is not certain (binomial: 0)
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


def test_wilson_half_width_of_a_perfect_score_is_not_zero() -> None:
    # z=1, p=1, n=200: 1 / (1 + 1/200) * sqrt(0 + 1 / (4 * 200**2)) = (200/201) / 400 = 1/402
    assert wilson_half_width(1.0, 200) == pytest.approx(1 / 402)


def test_wilson_half_width_of_a_zero_score_is_not_zero() -> None:
    assert wilson_half_width(0.0, 200) == pytest.approx(1 / 402)  # symmetric in p and 1 - p


def test_standard_error_of_a_perfect_single_run_is_the_wilson_half_width() -> None:
    (summary,) = summarize([trial(0, TINY, 1.0, 10, n_val=200)])

    assert standard_error(summary) == pytest.approx(1 / 402)  # 0.002488, not 0


def test_standard_error_of_same_seed_reruns_is_that_of_one_run() -> None:
    # Two runs with seed 0 are one repeat: no spread to measure, so the Wilson half-width
    # of 0.9 on 400 images, not std(0.9, 0.9) / sqrt(2) = 0.
    records = [
        trial(0, TINY, 0.9, 10, seed=0, split_seed=0),
        trial(1, TINY, 0.9, 10, seed=0, split_seed=0),
    ]
    (summary,) = summarize(records)

    assert standard_error(summary) == pytest.approx(WILSON_090_400)


def test_standard_error_counts_independent_repeats_only() -> None:
    records = [
        trial(0, TINY, 0.80, 10, seed=0, split_seed=0),
        trial(1, TINY, 0.80, 10, seed=0, split_seed=0),
        trial(2, TINY, 0.90, 10, seed=1, split_seed=0),
    ]
    (summary,) = summarize(records)

    # repeats 0.80 and 0.90: std 0.1 / sqrt(2) = 0.0707, over sqrt(2) = 0.05
    # (pooled as three runs it would be std(0.8, 0.8, 0.9) / sqrt(3) = 0.0333)
    assert standard_error(summary) == pytest.approx(0.05)


# recommend


def test_recommend_picks_the_smallest_within_one_wilson_standard_error_of_the_difference() -> None:
    # BINOMIAL: TINY (0.88) is just outside its own threshold 0.9 - 0.018064 = 0.881936, so
    # the pick is SMALL (0.89), within its own 0.9 - sqrt(0.012255² + 0.012780²) = 0.882294.
    recommendation = recommend(summarize(BINOMIAL))

    assert recommendation.chosen.params == SMALL
    assert recommendation.best.params == BEST
    assert recommendation.tolerance == pytest.approx(math.hypot(WILSON_090_600, WILSON_089_600))
    assert recommendation.threshold == pytest.approx(
        0.9 - math.hypot(WILSON_090_600, WILSON_089_600)
    )  # 0.882294
    assert recommendation.tolerance_derivation == (
        "one standard error of each configuration's difference from the best, "
        "sqrt(SE_best² + SE²), single runs' SE the Wilson score half-width (z=1), n_val=600"
    )


def test_recommend_picks_the_smallest_within_one_standard_error_of_the_difference() -> None:
    # SE from the repeats, std / sqrt(3); with n_val=10,000 each Wilson floor over 3 x 10,000
    # images (e.g. sqrt(30000 * 0.88 * 0.12 + 1/4) / 30001 = 0.0019) is below the spread.
    #   best  mean 0.88,  std 0.02: SE 0.02 / sqrt(3) = 0.011547
    #   SMALL mean 0.87,  std 0.02: SE 0.02 / sqrt(3) = 0.011547
    #     tolerance sqrt(0.011547² + 0.011547²) = 0.016330, threshold 0.863670: within
    #   TINY  mean 0.865, std 0.01: SE 0.01 / sqrt(3) = 0.005774
    #     tolerance sqrt(0.011547² + 0.005774²) = 0.012910, threshold 0.867090: outside
    records = [
        *repeats(0, BEST, [0.86, 0.88, 0.90], 1_200_000, n_val=10_000),
        *repeats(3, SMALL, [0.85, 0.87, 0.89], 100_000, n_val=10_000),
        *repeats(6, TINY, [0.855, 0.865, 0.875], 10_000, n_val=10_000),
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.chosen.params == SMALL
    best_error = small_error = 0.02 / math.sqrt(3)
    assert recommendation.tolerance == pytest.approx(math.hypot(best_error, small_error))
    assert recommendation.threshold == pytest.approx(0.88 - math.hypot(best_error, small_error))
    assert recommendation.tolerance_derivation == (
        "one standard error of each configuration's difference from the best, "
        "sqrt(SE_best² + SE²), from repeats (3 for the best)"
    )


def test_repeats_that_agree_by_chance_still_leave_a_wilson_tolerance() -> None:
    # Three identical repeats have no spread; 3 x 200 validation images still cannot pin
    # a mean closer than its Wilson half-width on 600 images:
    #   best  0.90: sqrt(600 * 0.09   + 1/4) / 601 = sqrt(54.25) / 601 = 0.012255
    #   SMALL 0.89: sqrt(600 * 0.0979 + 1/4) / 601 = sqrt(58.99) / 601 = 0.012780
    # so the tolerance is sqrt(0.012255² + 0.012780²) = 0.017706 (threshold 0.882294), not 0.
    records = [
        *repeats(0, BEST, [0.90, 0.90, 0.90], 1_200_000, n_val=200),
        *repeats(3, SMALL, [0.89, 0.89, 0.89], 100_000, n_val=200),  # 0.89: within
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.tolerance == pytest.approx(
        math.hypot(math.sqrt(54.25) / 601, math.sqrt(58.99) / 601)
    )
    assert recommendation.chosen.params == SMALL


def test_recommend_includes_a_noisier_smaller_configuration_the_best_only_rule_would_exclude() -> (
    None
):
    # n_val=10,000: each Wilson floor over 3 x 10,000 images (0.0017 at 0.90, 0.0018 at 0.89)
    # is below the repeats' spread, so SE = std / sqrt(3).
    #   best  mean 0.90, std 0.01: SE_best = 0.01 / sqrt(3) = 0.005774
    #   SMALL mean 0.89, std 0.03: SE      = 0.03 / sqrt(3) = 0.017321
    # Old rule, one SE of the best:   threshold 0.90 - 0.005774 = 0.894226: 0.89 is outside,
    #   and the pick would be the best itself.
    # New rule, one SE of the difference: sqrt(0.005774² + 0.017321²) = 0.01 * sqrt(10/3)
    #   = 0.018257, threshold 0.881743: 0.89 is within, and SMALL, 12 times smaller, is picked.
    records = [
        *repeats(0, BEST, [0.89, 0.90, 0.91], 1_200_000, n_val=10_000),
        *repeats(3, SMALL, [0.86, 0.89, 0.92], 100_000, n_val=10_000),
    ]

    recommendation = recommend(summarize(records))

    best_error, small_error = 0.01 / math.sqrt(3), 0.03 / math.sqrt(3)
    old_threshold = recommendation.best.val_accuracy - standard_error(recommendation.best)
    assert old_threshold == pytest.approx(0.90 - best_error)  # 0.894226
    assert recommendation.chosen.params == SMALL
    assert recommendation.chosen.val_accuracy < old_threshold  # the old rule left it out
    assert recommendation.threshold == pytest.approx(0.90 - math.hypot(best_error, small_error))


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

    # SMALL is the best and the pick: its tolerance is the difference of SMALL (0.90, Wilson
    # SE sqrt(400 * 0.09 + 1/4) / 401 = 0.015014) from itself, sqrt(2) * 0.015014 = 0.021234,
    # so the threshold is 0.878766.
    assert recommendation.best.params == SMALL
    assert recommendation.threshold == pytest.approx(
        0.9 - math.hypot(WILSON_090_400, WILSON_090_400)
    )


def test_recommend_keeps_the_best_when_it_is_also_the_smallest() -> None:
    records = [trial(0, TINY, 0.90, 10_000), trial(1, BEST, 0.895, 1_200_000)]

    recommendation = recommend(summarize(records))

    assert recommendation.chosen.params == TINY
    assert recommendation.chosen == recommendation.best
    # Each configuration had its own tolerance, so none is quoted for all of them.
    assert recommendation.reason.startswith(
        "unfreeze=0, depth=0 is the best (val_accuracy 0.900) and itself the smallest that "
        "performs well: no configuration with fewer trainable parameters is within one "
        "Wilson standard error of the difference of it. "
    )


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

    # 1,200,000 / 100,000 = 12; the tolerance is SMALL's difference from the best,
    # sqrt(0.012255² + 0.012780²) = 0.017706 (see BINOMIAL), shown as 0.018
    assert reason.startswith(
        "unfreeze=1, depth=0 has 12\u00d7 fewer trainable parameters than the best "
        "(unfreeze=6, depth=1: val_accuracy 0.900) and its val_accuracy 0.890 is within one "
        "Wilson standard error of the difference (0.018) of it. "
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


def test_recommend_keeps_a_positive_tolerance_when_the_best_single_run_is_perfect() -> None:
    # The best's SE is the Wilson half-width of p=1 on 200 images, sqrt(0 + 1/4) / 201 = 1/402
    # = 0.002488, not the binomial 0. SMALL's: sqrt(200 * 0.998 * 0.002 + 1/4) / 201
    # = sqrt(0.6492) / 201 = 0.004009. Tolerance sqrt(0.002488² + 0.004009²) = 0.004718,
    # so the threshold is 0.995282 and the 0.998 configuration, 10 times smaller, is within.
    records = [
        trial(0, BEST, 1.0, 1_000_000, n_val=200),
        trial(1, SMALL, 0.998, 100_000, n_val=200),
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.tolerance == pytest.approx(
        math.hypot(1 / 402, math.sqrt(200 * 0.998 * 0.002 + 0.25) / 201)
    )
    assert recommendation.chosen.params == SMALL
    assert recommendation.tolerance_derivation.endswith("n_val=200")


def test_recommend_exposes_the_candidates_that_passed_max_overfit_gap() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, overfit_gap=0.30),
        trial(1, SMALL, 0.89, 100_000, overfit_gap=0.01),
        trial(2, TINY, 0.80, 10_000, overfit_gap=0.02),
    ]

    recommendation = recommend(summarize(records), max_overfit_gap=0.05)

    assert {json.loads(key)["capacity.unfreeze"] for key in recommendation.candidates} == {1, 0}
    assert recommendation.as_dict()["candidates"] == [SMALL, TINY]


# single runs


SINGLE_RUN_FIX = "train repeats (hydra.sweeper.repeats) for a trustworthy pick."


def test_recommend_warns_when_the_pick_and_the_best_rest_on_single_runs() -> None:
    recommendation = recommend(summarize(BINOMIAL))

    assert recommendation.caveat == (
        "The pick and the best each rest on a single run; single runs understate seed "
        "noise (no configuration here was repeated to measure it); " + SINGLE_RUN_FIX
    )
    assert recommendation.caveat in recommendation.reason
    assert recommendation.as_dict()["caveat"] == recommendation.caveat


def test_recommend_warns_when_only_the_best_rests_on_a_single_run() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000),
        *repeats(1, SMALL, [0.89, 0.89], 100_000),
    ]

    caveat = recommend(summarize(records)).caveat

    assert caveat is not None
    assert caveat.startswith("The best rests on a single run;")


def test_recommend_warns_when_the_best_has_only_same_seed_reruns() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, seed=0, split_seed=0),
        trial(1, BEST, 0.90, 1_200_000, seed=0, split_seed=0),
    ]

    caveat = recommend(summarize(records)).caveat

    assert caveat is not None
    assert caveat.startswith("The pick (the best itself) rests on a single run;")


def test_recommend_quotes_the_largest_spread_of_repeats_seen_in_the_sweep() -> None:
    records = [
        trial(0, BEST, 0.95, 1_200_000),
        *repeats(1, SMALL, [0.80, 0.84], 100_000),  # spread 0.04
        *repeats(3, TINY, [0.70, 0.80, 0.75], 10_000),  # spread 0.80 - 0.70 = 0.10
    ]

    caveat = recommend(summarize(records)).caveat

    assert caveat is not None
    assert "(repeating a configuration moved val_accuracy by up to 0.10 here)" in caveat


def test_recommend_credits_the_spread_to_the_seed_when_repeats_varied_only_the_seed() -> None:
    records = [trial(0, BEST, 0.95, 1_200_000), *repeats(1, TINY, [0.70, 0.80], 10_000)]

    caveat = recommend(summarize(records), repeat_over="seed").caveat

    assert caveat is not None
    assert "(the seed alone moved val_accuracy by up to 0.10 here)" in caveat


def test_recommend_gives_no_caveat_when_the_pick_and_the_best_have_repeats() -> None:
    records = [
        *repeats(0, BEST, [0.86, 0.88, 0.90], 1_200_000),
        *repeats(3, SMALL, [0.87, 0.87, 0.87], 100_000),
    ]

    recommendation = recommend(summarize(records))

    assert recommendation.caveat is None
    assert "single run" not in recommendation.reason


# also within the tolerance

# Absolute tolerance 0.05 from the best 0.90: threshold 0.85. Every configuration is within;
# the smallest (0.855) is the pick, the best is named anyway, four others remain.
CROWD = [
    trial(0, BEST, 0.90, 1_200_000),
    trial(1, config(5, 0), 0.89, 500_000),
    trial(2, config(4, 0), 0.88, 400_000),
    trial(3, config(3, 0), 0.87, 300_000),
    trial(4, config(2, 0), 0.86, 200_000),
    trial(5, SMALL, 0.855, 100_000),
]


def test_recommend_lists_the_other_configurations_within_the_tolerance_best_first() -> None:
    recommendation = recommend(summarize(CROWD), tolerance=0.05)

    assert recommendation.chosen.params == SMALL
    assert [s.params for s in recommendation.also_within] == [
        config(5, 0),
        config(4, 0),
        config(3, 0),
        config(2, 0),
    ]


def test_recommend_names_three_others_within_the_tolerance_and_counts_the_rest() -> None:
    reason = recommend(summarize(CROWD), tolerance=0.05).reason

    # Wilson SE, n_val=400: sqrt(400 * p * (1 - p) + 1/4) / 401
    #   p=0.89: sqrt(39.16 + 0.25) / 401 = 0.01566; p=0.88: sqrt(42.24 + 0.25) / 401 = 0.01626;
    #   p=0.87: sqrt(45.24 + 0.25) / 401 = 0.01682
    assert (
        "Also within the tolerance of the best: unfreeze=5, depth=0 (0.890 ± 0.016); "
        "unfreeze=4, depth=0 (0.880 ± 0.016); unfreeze=3, depth=0 (0.870 ± 0.017); and 1 more; "
        "the pick is only the smallest of these, not clearly the most accurate."
    ) in reason


def test_recommend_exports_the_others_within_the_tolerance_to_json() -> None:
    exported = recommend(summarize(CROWD), tolerance=0.05).as_dict()

    loaded = json.loads(json.dumps(exported, allow_nan=False))
    assert [other["label"] for other in loaded["also_within"]] == [
        "unfreeze=5, depth=0",
        "unfreeze=4, depth=0",
        "unfreeze=3, depth=0",
        "unfreeze=2, depth=0",
    ]
    assert loaded["also_within"][0]["standard_error"] == pytest.approx(
        math.sqrt(400 * 0.89 * 0.11 + 0.25) / 401
    )


def test_recommend_says_nothing_of_others_when_only_the_pick_and_best_are_within() -> None:
    # within: the best and SMALL only; TINY (0.88) is outside its own 0.881936 (see BINOMIAL)
    recommendation = recommend(summarize(BINOMIAL))

    assert recommendation.also_within == ()
    assert "Also within" not in recommendation.reason


# the test-set check


def test_recommend_puts_the_picks_and_the_bests_test_accuracy_side_by_side() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, test_accuracy=0.88),
        trial(1, SMALL, 0.89, 100_000, test_accuracy=0.87),
    ]

    recommendation = recommend(summarize(records), tolerance=0.02)

    check = recommendation.test_accuracy_check
    assert check is not None
    assert (check.chosen, check.best) == (0.87, 0.88)
    assert check.difference == pytest.approx(-0.01)
    assert check.within is True  # -0.01 is within 0.02
    assert recommendation.reason.endswith(
        "Test accuracy: the pick 0.870, the best 0.880 (difference -0.010, tolerance 0.020), "
        "within the tolerance of the best."
    )


def test_recommend_flags_a_pick_whose_test_accuracy_falls_outside_the_tolerance() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, test_accuracy=0.88),
        trial(1, SMALL, 0.89, 100_000, test_accuracy=0.85),  # 0.03 below the best's
    ]

    recommendation = recommend(summarize(records), tolerance=0.02)

    check = recommendation.test_accuracy_check
    assert check is not None
    assert check.within is False
    assert "not within the tolerance of the best" in recommendation.reason


def test_recommend_leaves_the_test_check_open_when_test_accuracy_is_missing() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, test_accuracy=0.88),
        trial(1, SMALL, 0.89, 100_000),  # no test_accuracy
    ]

    recommendation = recommend(summarize(records), tolerance=0.02)

    check = recommendation.test_accuracy_check
    assert check is not None
    assert (check.difference, check.within) == (None, None)
    assert "Test accuracy was not recorded for the pick" in recommendation.reason


def test_recommend_exports_the_test_check_to_json() -> None:
    records = [
        trial(0, BEST, 0.90, 1_200_000, test_accuracy=0.88),
        trial(1, SMALL, 0.89, 100_000, test_accuracy=0.85),
    ]

    exported = recommend(summarize(records), tolerance=0.02).as_dict()

    check = json.loads(json.dumps(exported))["test_accuracy_check"]
    assert check["chosen"] == 0.85
    assert check["best"] == 0.88
    assert check["difference"] == pytest.approx(-0.03)
    assert check["within"] is False


def test_recommend_test_check_of_the_best_itself_is_within() -> None:
    records = [trial(0, TINY, 0.90, 10_000, test_accuracy=0.86)]

    check = recommend(summarize(records)).test_accuracy_check

    assert check is not None
    assert (check.difference, check.within) == (0.0, True)


# what the repeats varied


def test_recommend_says_what_the_repeats_varied() -> None:
    recommendation = recommend(summarize(BINOMIAL), repeat_over="both")

    assert recommendation.repeat_over == "both"
    assert "Repeats varied the seed and the training/validation split." in recommendation.reason
    assert recommendation.as_dict()["repeat_over"] == "both"


def test_recommend_says_nothing_of_repeats_when_not_told() -> None:
    recommendation = recommend(summarize(BINOMIAL))

    assert recommendation.repeat_over is None
    assert "Repeats varied" not in recommendation.reason


def test_recommend_rejects_an_unknown_repeat_over() -> None:
    with pytest.raises(CapsweepConfigError, match=r"repeat_over='seeds'.*both, seed, split"):
        recommend(summarize(BINOMIAL), repeat_over="seeds")


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
    # The best (mean 0.88, std 0.02): SE 0.02 / sqrt(3) = 0.011547 (its Wilson floor on
    # 3 x 400 images, sqrt(1200 * 0.88 * 0.12 + 1/4) / 1201 = 0.009382, is lower). SMALL
    # (mean 0.87, std 0.01): 0.01 / sqrt(3) = 0.005774 is below its Wilson floor
    # sqrt(1200 * 0.87 * 0.13 + 1/4) / 1201 = 0.009709, so its SE is 0.009709.
    # Tolerance: sqrt(0.011547² + 0.009709²) = 0.015086.
    assert loaded["tolerance"] == pytest.approx(
        math.hypot(0.02 / math.sqrt(3), math.sqrt(1200 * 0.87 * 0.13 + 0.25) / 1201)
    )
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
