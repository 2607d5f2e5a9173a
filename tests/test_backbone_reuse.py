"""A trial reuses the backbone the previous trial of its process built: it trains as a new one.

Tiny trials (small_resnet on 16-pixel digits, weights from a file, 3 epochs) prepared and
trained in this process, recorded by an in-memory recorder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

from capsweep.settings import BackboneConfig
from capsweep.train import backbone_reuse
from capsweep.train.backbone_reuse import NODE_LISTS, forget_kept_backbone, reuse_key
from test_feature_cache import trial as feature_cache_trial


@pytest.fixture
def settings(trial_settings: Callable[..., Any], weights_file: Path) -> Iterator[Any]:
    """Tiny trials whose backbone weights come from a file; none kept before or after."""
    forget_kept_backbone()
    yield lambda *overrides: trial_settings(f"backbone.weights={weights_file}", *overrides)
    forget_kept_backbone()


def trial(settings: Any) -> tuple[Any, Any]:
    """Prepare and train one trial in this process: what it prepared, how it ended."""
    outcome, _, prepared = feature_cache_trial(settings)
    return prepared, outcome


def test_the_next_trial_reuses_the_backbone_with_the_weights_it_was_loaded_with(
    settings: Callable[..., Any], weights_file: Path
) -> None:
    from capsweep.model.backbones import build_backbone

    first, _ = trial(settings("capacity.unfreeze=2"))  # training changes the unfrozen weights
    second, _ = trial(settings("capacity.unfreeze=1"))

    assert (first.backbone_reused, second.backbone_reused) == (False, True)
    assert second.transfer.backbone is first.transfer.backbone
    loaded = build_backbone("small_resnet", 16, str(weights_file)).get_weights()
    # The second trial trained too: compare what it left frozen, and what the first changed.
    frozen = {v.path for v in second.transfer.backbone.non_trainable_variables}
    for variable, expected in zip(second.transfer.backbone.weights, loaded, strict=True):
        if variable.path in frozen:
            np.testing.assert_array_equal(variable.numpy(), expected, err_msg=variable.path)


def test_a_reused_backbone_trains_as_a_newly_built_one(settings: Callable[..., Any]) -> None:
    # On images, not cached features: the frozen blocks run in every trial.
    trial(settings("capacity.unfreeze=2", "cache.enabled=false"))
    reused, on_reused = trial(settings("capacity.unfreeze=1", "cache.enabled=false"))
    forget_kept_backbone()
    built, on_built = trial(settings("capacity.unfreeze=1", "cache.enabled=false"))

    assert (reused.backbone_reused, built.backbone_reused) == (True, False)
    for name in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(
            on_reused.metrics.history[name], on_built.metrics.history[name], rtol=1e-6
        )


def test_reuse_forgets_the_calls_the_previous_trials_made_of_its_layers(
    settings: Callable[..., Any],
) -> None:
    for unfreeze in (0, 1, 2):
        trial(settings(f"capacity.unfreeze={unfreeze}"))
    kept = backbone_reuse._kept
    assert kept is not None
    backbone_reuse._restore(kept)  # as the next trial would be handed it
    fresh = keras.models.clone_model(kept.backbone)  # one built anew, never called
    pairs = zip([kept.backbone, *kept.backbone.layers], [fresh, *fresh.layers], strict=True)
    for operation, new in pairs:
        # An AttributeError here: Keras renamed its node lists; see capsweep.train.backbone_reuse.
        counts = [len(getattr(operation, name)) for name in NODE_LISTS]
        assert counts == [len(getattr(new, name)) for name in NODE_LISTS], operation.name


@pytest.mark.parametrize(
    ("change", "policy"),
    [
        ({"name": "mobilenetv2"}, "float32"),
        ({"input_size": 32}, "float32"),
        ({"filters": [8, 8, 8]}, "float32"),
        ({"blocks_per_stage": 1}, "float32"),
        ({"allow_unsafe_h5": True}, "float32"),
        ({}, "mixed_bfloat16"),
    ],
)
def test_other_backbone_settings_or_dtype_policy_are_another_backbone(
    weights_file: Path, change: dict[str, Any], policy: str
) -> None:
    weights = str(weights_file)
    base = BackboneConfig(input_size=16, weights=weights)
    other = BackboneConfig(**{**vars(base), **change})
    key = reuse_key(base, weights, train_bn=False, dtype_policy="float32")
    assert reuse_key(other, weights, train_bn=False, dtype_policy=policy) != key


def test_a_trial_with_another_weights_file_builds_its_own_backbone(
    settings: Callable[..., Any], weights_file: Path
) -> None:
    copy = weights_file.with_name("copy.weights.h5")
    shutil.copy(weights_file, copy)
    first, _ = trial(settings())
    other, _ = trial(settings(f"backbone.weights={copy}"))

    assert other.transfer.backbone is not first.transfer.backbone
    assert not other.backbone_reused


def test_random_weights_and_training_batchnorm_are_never_reused(weights_file: Path) -> None:
    backbone = BackboneConfig(weights=str(weights_file))
    policy = "float32"
    assert reuse_key(backbone, None, train_bn=False, dtype_policy=policy) is None
    assert reuse_key(backbone, str(weights_file), train_bn=True, dtype_policy=policy) is None
    assert reuse_key(backbone, str(weights_file), train_bn=False, dtype_policy=policy)


def test_a_weights_file_written_again_is_loaded_again(weights_file: Path) -> None:
    backbone = BackboneConfig(weights=str(weights_file))

    def key() -> Any:
        return reuse_key(backbone, str(weights_file), train_bn=False, dtype_policy="float32")

    before = key()
    stat = weights_file.stat()
    import os

    os.utime(weights_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert key() != before


def test_the_kept_backbones_fingerprint_is_that_of_the_weights_it_was_loaded_with(
    settings: Callable[..., Any],
) -> None:
    from capsweep.train.backbone_reuse import loaded_weights_fingerprint
    from capsweep.train.feature_keys import weights_fingerprint

    first, _ = trial(settings("capacity.unfreeze=2"))  # trains: changes the kept weights
    expected = weights_fingerprint(np.asarray(w) for w in backbone_reuse._kept.weights)
    second, _ = trial(settings("capacity.unfreeze=1"))

    assert loaded_weights_fingerprint(second.transfer.backbone) == expected
    assert loaded_weights_fingerprint(keras.models.clone_model(first.transfer.backbone)) is None
