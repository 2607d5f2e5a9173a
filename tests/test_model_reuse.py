"""A trial whose model has the architecture of an earlier trial's in the process trains that
compiled, traced model instead of its own: exactly as its own would have trained.

Tiny trials (random-weight small_resnet on 16-pixel digits, 3 epochs, a hidden layer with
dropout) prepared and trained in this process, recorded by an in-memory recorder.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from capsweep.train.compiled_models import forget_kept_models
from exact import assert_same
from test_feature_cache import trial

EPOCH_METRICS = ("loss", "accuracy", "val_loss", "val_accuracy")


def assert_same_training(reused: Any, fresh: Any) -> None:
    """The same trajectory and final accuracies, to the last bit on a CPU (see ``exact``)."""
    for name in EPOCH_METRICS:
        assert_same(reused.metrics.history[name], fresh.metrics.history[name], name)
    for name in ("val_accuracy", "train_accuracy", "test_accuracy"):
        assert_same(getattr(reused.metrics, name), getattr(fresh.metrics, name), name)


@pytest.mark.parametrize("cache", ["cache.enabled=true", "cache.enabled=false"])
def test_a_trial_on_a_kept_model_trains_exactly_as_on_its_own(
    trial_settings: Callable[..., Any], cache: str
) -> None:
    later = ("trainer.seed=5", "trainer.learning_rate=0.02", "trainer.backbone_learning_rate=3e-4")
    trial(trial_settings(cache, "trainer.seed=1"))
    on_kept, kept_record, _ = trial(trial_settings(cache, *later))
    forget_kept_models()
    on_own, own_record, _ = trial(trial_settings(cache, *later))

    assert (
        kept_record.tags["capsweep.model_reused"],
        own_record.tags["capsweep.model_reused"],
    ) == (
        "True",
        "False",
    )
    assert_same_training(on_kept, on_own)


def test_a_kept_models_optimizer_starts_from_scratch(
    trial_settings: Callable[..., Any],
) -> None:
    # The same settings twice: any momentum carried over would change the second run.
    first, _, _ = trial(trial_settings("trainer.seed=3"))
    second, record, _ = trial(trial_settings("trainer.seed=3"))

    assert record.tags["capsweep.model_reused"] == "True"
    assert_same_training(second, first)


def test_another_architecture_compiles_its_own_model(trial_settings: Callable[..., Any]) -> None:
    trial(trial_settings("head.width=8"))

    _, record, _ = trial(trial_settings("head.width=16"))

    assert record.tags["capsweep.model_reused"] == "False"


def test_the_trials_own_model_ends_trained(trial_settings: Callable[..., Any]) -> None:
    trial(trial_settings("trainer.seed=1"))
    _, _, prepared = trial(trial_settings("trainer.seed=2"))
    forget_kept_models()
    _, _, alone = trial(trial_settings("trainer.seed=2"))

    for own, expected in zip(
        prepared.transfer.model.weights, alone.transfer.model.weights, strict=True
    ):
        assert_same(own.numpy().tolist(), expected.numpy().tolist(), own.path)
