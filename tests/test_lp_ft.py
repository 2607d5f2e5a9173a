"""trainer.protocol=lp_ft: a linear probe of the head on the frozen backbone, then head and
units together at the backbone's rate; the probe shared by every trial that would train it.

Tiny trials (random-weight small_resnet on 16-pixel digits, 3 epochs) trained in this
process, recorded by an in-memory recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from capsweep.train.linear_probe import forget_kept_probes
from exact import assert_same
from test_feature_cache import trial

LP_FT = "trainer.protocol=lp_ft"


def test_the_probe_trains_the_head_as_a_head_only_trial_would(
    trial_settings: Callable[..., Any],
) -> None:
    head_only, _, _ = trial(trial_settings("capacity.unfreeze=0"))

    _, record, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=1"))

    assert_same(record.metrics["probe_val_accuracy"], head_only.metrics.val_accuracy)
    assert record.metrics["probe_epochs"] == head_only.metrics.epochs_run


def test_unfreeze_counts_with_the_same_head_share_one_probe(
    trial_settings: Callable[..., Any],
) -> None:
    _, first, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=1"))
    shared, second, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=2"))
    forget_kept_probes()
    alone, third, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=2"))

    assert [r.tags["capsweep.probe_reused"] for r in (first, second, third)] == [
        "False",
        "True",
        "False",
    ]
    assert_same(second.metrics["probe_val_accuracy"], third.metrics["probe_val_accuracy"])
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert_same(shared.metrics.history[name], alone.metrics.history[name], name)


def test_the_second_stage_starts_from_the_probe_not_from_a_new_head(
    trial_settings: Callable[..., Any],
) -> None:
    joint, _, _ = trial(
        trial_settings("capacity.unfreeze=1", "trainer.learning_rate=0.001")
    )  # the second stage's rate, for the head too, but from a new head

    lp_ft, _, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=1"))

    assert lp_ft.metrics.history["loss"][0] != joint.metrics.history["loss"][0]


def test_with_nothing_unfrozen_lp_ft_is_the_probe_alone(
    trial_settings: Callable[..., Any],
) -> None:
    joint, _, _ = trial(trial_settings("capacity.unfreeze=0"))

    lp_ft, record, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=0"))

    assert "probe_val_accuracy" not in record.metrics
    for name, values in joint.metrics.history.items():
        assert_same(lp_ft.metrics.history[name], values, name)


def test_a_probe_on_images_matches_the_probe_on_cached_features(
    trial_settings: Callable[..., Any],
) -> None:
    _, on_features, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=1"))

    _, on_images, _ = trial(trial_settings(LP_FT, "capacity.unfreeze=1", "cache.enabled=false"))

    assert on_images.metrics["probe_val_accuracy"] == pytest.approx(
        on_features.metrics["probe_val_accuracy"]
    )


def test_a_second_trial_probing_on_images_trains_as_the_first_did(
    trial_settings: Callable[..., Any],
) -> None:
    """The probe's model is compiled again for the second stage: nothing of the first
    stage's compiled state may stand in for the next trial's probe."""
    settings = trial_settings(LP_FT, "capacity.unfreeze=1", "cache.enabled=false")
    first, first_record, _ = trial(settings)

    second, second_record, _ = trial(settings)

    assert_same(
        second_record.metrics["probe_val_accuracy"], first_record.metrics["probe_val_accuracy"]
    )
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert_same(second.metrics.history[name], first.metrics.history[name], name)
