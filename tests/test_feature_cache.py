"""Training on cached features: the same trajectory as on images, recorded as a hit or a miss.

Tiny trials (random-weight small_resnet on 16-pixel digits, 3 epochs) trained through
:func:`capsweep.train.trial.train_trial`, recorded by an in-memory recorder.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest


class MemoryRecorder:
    """A :class:`capsweep.train.trial.Recorder` that keeps what it is told."""

    run_id = "memory"

    def __init__(self) -> None:
        self.tags: dict[str, Any] = {}
        self.metrics: dict[str, float] = {}

    def log_params(self, params: Mapping[str, str]) -> None:
        pass

    def log_metric_steps(self, steps: Sequence[tuple[int, Mapping[str, float]]]) -> None:
        for step, metrics in steps:
            self.log_metrics(metrics, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        self.metrics.update(metrics)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update(tags)

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        pass


def trial(trial_settings: Any) -> tuple[Any, MemoryRecorder, Any]:
    """Prepare and train one trial; return its outcome, what it recorded and the model."""
    from capsweep.train.trial import prepare_trial, train_trial, trial_session

    recorder = MemoryRecorder()
    with trial_session():
        prepared = prepare_trial(trial_settings)
        outcome = train_trial(prepared, trial_settings, recorder)
    return outcome, recorder, prepared


def test_training_on_cached_features_follows_the_trajectory_of_training_on_images(
    trial_settings: Callable[..., Any],
) -> None:
    on_images, uncached, _ = trial(trial_settings("cache.enabled=false"))
    on_features, cached, _ = trial(trial_settings())

    assert (uncached.tags["capsweep.cache_reason"], cached.tags["capsweep.cache"]) == (
        "cache.enabled=false",
        "on",
    )
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            on_features.metrics.history[name], on_images.metrics.history[name], rtol=1e-4
        )
    assert on_features.metrics.val_accuracy == pytest.approx(on_images.metrics.val_accuracy)


def test_accuracy_measured_on_features_is_the_whole_models_accuracy_on_images(
    trial_settings: Callable[..., Any],
) -> None:
    outcome, _, prepared = trial(trial_settings())
    model = prepared.transfer.model  # the original model: it takes raw images
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])

    for name in ("train", "val", "test"):
        split = getattr(prepared.data, name)
        _, accuracy = model.evaluate(split.images, split.labels, verbose=0)
        assert getattr(outcome.metrics, f"{name}_accuracy") == pytest.approx(accuracy), name


def test_a_miss_is_charged_the_feature_pass_and_the_next_trial_hits(
    trial_settings: Callable[..., Any],
) -> None:
    from capsweep.train.feature_cache import forget_in_memory

    _, first, _ = trial(trial_settings())
    forget_in_memory()  # the second trial reads the entry from disk, as another process would
    _, second, _ = trial(trial_settings("head.depth=0"))

    assert (first.tags["capsweep.cache_hit"], second.tags["capsweep.cache_hit"]) == (
        "false",
        "true",
    )
    assert first.metrics["feature_seconds"] > 0
    assert second.metrics["feature_seconds"] == 0


@pytest.mark.slow
def test_a_redrawn_train_validation_split_reuses_the_cached_features(
    trial_settings: Callable[..., Any],
) -> None:
    trial(trial_settings())
    _, redrawn, _ = trial(trial_settings("data.split_seed=7"))

    assert redrawn.tags["capsweep.cache_hit"] == "true"


@pytest.mark.slow
def test_a_miss_also_caches_the_features_of_the_unfreeze_counts_in_cache_cuts(
    trial_settings: Callable[..., Any],
) -> None:
    trial(trial_settings("cache.cuts=[0,1,2]"))
    _, other_count, _ = trial(trial_settings("capacity.unfreeze=2", "head.depth=0"))

    assert other_count.tags["capsweep.cache_hit"] == "true"


def test_augmentation_trains_on_images_and_says_why(trial_settings: Callable[..., Any]) -> None:
    _, recorded, _ = trial(trial_settings("data.augment=[flip]"))

    assert recorded.tags["capsweep.cache"] == "off"
    assert "data.augment" in recorded.tags["capsweep.cache_reason"]
    assert "capsweep.cache_hit" not in recorded.tags


@pytest.mark.slow
def test_float16_storage_halves_the_entry_and_stays_close(
    trial_settings: Callable[..., Any],
) -> None:
    from capsweep.train.feature_cache import open_store

    float32, _, _ = trial(trial_settings())
    half = trial_settings("cache.dtype=float16")
    float16, _, _ = trial(half)

    entries = open_store(half.cache, half.paths.outputs).entries()
    sizes = {entry.dtype: entry.bytes for entry in entries}
    assert sizes["float16"] < 0.6 * sizes["float32"]
    np.testing.assert_allclose(
        float16.metrics.history["val_loss"], float32.metrics.history["val_loss"], rtol=1e-2
    )


def test_a_miss_writes_one_entry_for_the_trials_cut_under_the_outputs_folder(
    trial_settings: Callable[..., Any], outputs: Path
) -> None:
    from capsweep.train.feature_cache import open_store

    settings = trial_settings()
    _, recorded, _ = trial(settings)

    entries = open_store(settings.cache, settings.paths.outputs).entries()
    assert [entry.key["cut"] for entry in entries] == [recorded.tags["capsweep.cache_cut"]]
    written = sorted(path.name for path in (outputs / "cache" / "features").iterdir())
    assert written == sorted([entries[0].file, f"{entries[0].digest}.json"])


# Where a trial's time went: what capsweep.train.fit and capsweep.train.trial measure.
TIMINGS = {
    "data_seconds",  # loading the data set
    "build_seconds",  # building the model
    "inputs_seconds",  # cache lookups, the feature pass on a miss, the trainable suffix
    "feature_seconds",  # the feature pass alone (a miss)
    "compile_seconds",
    "trace_seconds",  # the first training step
    "fit_seconds",  # the other training steps
    "validation_seconds",  # per-epoch validation
    "fit_wall_seconds",  # all of model.fit
    "evaluate_seconds",  # the final evaluation of every split
}


def test_a_trial_that_misses_records_every_timing_and_each_took_time(
    trial_settings: Callable[..., Any],
) -> None:
    _, recorded, _ = trial(trial_settings())

    assert recorded.tags["capsweep.cache_hit"] == "false"
    assert {name for name in recorded.metrics if name.endswith("_seconds")} == TIMINGS
    took_no_time = sorted(name for name in TIMINGS if not recorded.metrics[name] > 0)
    assert took_no_time == []


def test_each_timing_is_charged_within_the_step_that_contains_it(
    trial_settings: Callable[..., Any],
) -> None:
    _, recorded, _ = trial(trial_settings())
    seconds = recorded.metrics

    # Tracing, training steps and validation all happen inside model.fit, apart.
    within_fit = seconds["trace_seconds"] + seconds["fit_seconds"] + seconds["validation_seconds"]
    assert within_fit <= seconds["fit_wall_seconds"]
    # The feature pass is part of preparing the inputs.
    assert seconds["feature_seconds"] <= seconds["inputs_seconds"]
