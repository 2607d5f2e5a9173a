"""Optimizers and the training step: split learning rates and frozen BatchNorm."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capsweep.errors import CapsweepConfigError
from capsweep.settings import CapacityConfig, HeadConfig, TrainerConfig, Unit

HEAD_RATE = 0.1
BACKBONE_RATE = 0.01


def tiny_transfer(capacity: CapacityConfig) -> Any:
    """small_resnet at 8 px with 3 classes and a bare classifier (no dropout)."""
    import keras

    from capsweep.model.backbones import small_resnet
    from capsweep.model.transfer import build_transfer_model

    keras.utils.set_random_seed(0)
    backbone = small_resnet((8, 8, 3), filters=(4, 8, 8))
    return build_transfer_model(backbone, "unit", 3, capacity, HeadConfig(depth=0, dropout=0.0))


def batch() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (12, 8, 8, 3)).astype("uint8"), rng.integers(0, 3, 12)


def one_step_updates(transfer: Any, optimizer: Any, initial: list[np.ndarray]) -> dict[str, Any]:
    """From ``initial`` weights, take one full-batch step; return each variable's change."""
    variables = transfer.model.trainable_variables
    for variable, value in zip(variables, initial, strict=True):
        variable.assign(value)
    transfer.model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    images, labels = batch()
    transfer.model.fit(images, labels, batch_size=len(labels), epochs=1, shuffle=False, verbose=0)
    return {
        variable.path: variable.numpy() - value
        for variable, value in zip(variables, initial, strict=True)
    }


def test_split_learning_rate_scales_backbone_and_head_steps_by_their_own_rates() -> None:
    import keras

    from capsweep.model.optimizers import SplitLearningRate

    transfer = tiny_transfer(CapacityConfig(unfreeze=1))
    initial = [variable.numpy().copy() for variable in transfer.model.trainable_variables]
    backbone_paths = [variable.path for variable in transfer.backbone.trainable_variables]
    # Plain SGD at rate 1 moves each variable by exactly minus its gradient.
    gradient_steps = one_step_updates(transfer, keras.optimizers.SGD(1.0), initial)

    split = SplitLearningRate(
        keras.optimizers.SGD(HEAD_RATE), keras.optimizers.SGD(BACKBONE_RATE), backbone_paths
    )
    updates = one_step_updates(transfer, split, initial)

    assert set(backbone_paths) < set(updates)  # both kinds of variable are present
    for path, update in updates.items():
        rate = BACKBONE_RATE if path in backbone_paths else HEAD_RATE
        assert np.abs(gradient_steps[path]).max() > 0, path
        np.testing.assert_allclose(update, rate * gradient_steps[path], rtol=1e-3, atol=1e-8)


def test_split_learning_rate_reads_and_sets_the_head_rate() -> None:
    import keras

    from capsweep.model.optimizers import SplitLearningRate

    head = keras.optimizers.SGD(HEAD_RATE)
    backbone = keras.optimizers.SGD(BACKBONE_RATE)
    split = SplitLearningRate(head, backbone, [])

    split.learning_rate = 0.5

    assert float(split.learning_rate) == pytest.approx(0.5)
    assert float(head.learning_rate) == pytest.approx(0.5)
    assert float(backbone.learning_rate) == pytest.approx(BACKBONE_RATE)


def test_a_model_compiled_with_split_learning_rates_saves_and_loads_them(tmp_path: Path) -> None:
    import keras

    from capsweep.model.optimizers import SplitLearningRate
    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer(CapacityConfig(unfreeze=1))
    compile_model(transfer, TrainerConfig(learning_rate=2e-3, backbone_learning_rate=2e-4))
    images, labels = batch()
    transfer.model.fit(images, labels, batch_size=4, epochs=1, verbose=0)  # 3 steps
    transfer.model.save(tmp_path / "model.keras")

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. "Skipping variable loading for optimizer"
        loaded = keras.saving.load_model(tmp_path / "model.keras").optimizer

    assert isinstance(loaded, SplitLearningRate)
    assert float(loaded.head_optimizer.learning_rate) == pytest.approx(2e-3)
    assert float(loaded.backbone_optimizer.learning_rate) == pytest.approx(2e-4)
    assert loaded.backbone_variable_paths == transfer.model.optimizer.backbone_variable_paths
    assert int(loaded.backbone_optimizer.iterations) == 3


def test_compile_gives_unfrozen_backbone_layers_the_backbone_learning_rate() -> None:
    from capsweep.model.optimizers import SplitLearningRate
    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer(CapacityConfig(unfreeze=2))
    compile_model(transfer, TrainerConfig(learning_rate=2e-3, backbone_learning_rate=2e-4))

    optimizer = transfer.model.optimizer
    assert isinstance(optimizer, SplitLearningRate)
    assert float(optimizer.head_optimizer.learning_rate) == pytest.approx(2e-3)
    assert float(optimizer.backbone_optimizer.learning_rate) == pytest.approx(2e-4)
    assert optimizer.backbone_variable_paths == {
        variable.path for variable in transfer.backbone.trainable_variables
    }


def test_compile_uses_one_plain_optimizer_when_the_backbone_is_frozen() -> None:
    from capsweep.model.optimizers import SplitLearningRate
    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer(CapacityConfig(unfreeze=0))
    compile_model(transfer, TrainerConfig(optimizer="adam", learning_rate=2e-3))

    assert not isinstance(transfer.model.optimizer, SplitLearningRate)
    assert float(transfer.model.optimizer.learning_rate) == pytest.approx(2e-3)


@pytest.mark.parametrize(
    ("name", "class_name"),
    [("adam", "Adam"), ("adamw", "AdamW"), ("sgd", "SGD"), ("rmsprop", "RMSprop")],
)
def test_make_optimizer_builds_each_named_optimizer_at_its_rate(name: str, class_name: str) -> None:
    from capsweep.model.optimizers import make_optimizer

    optimizer = make_optimizer(name, 0.03)

    assert type(optimizer).__name__ == class_name
    assert float(optimizer.learning_rate) == pytest.approx(0.03)


def test_make_optimizer_refuses_an_unknown_name_listing_the_choices() -> None:
    from capsweep.model.optimizers import make_optimizer

    with pytest.raises(CapsweepConfigError, match=r"trainer\.optimizer='adamm'.*adam, adamw"):
        make_optimizer("adamm", 0.01)


@pytest.mark.parametrize("train_bn", [False, True])
def test_batch_norm_statistics_move_during_training_only_with_train_bn(train_bn: bool) -> None:
    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer(CapacityConfig(unfreeze=6, unit=Unit.block, train_bn=train_bn))
    moving_mean = transfer.backbone.get_layer("stage3_block2_2_bn").moving_mean
    before = moving_mean.numpy().copy()
    compile_model(transfer, TrainerConfig(optimizer="sgd", learning_rate=1e-3))

    images, labels = batch()
    transfer.model.fit(images, labels, batch_size=len(labels), epochs=1, verbose=0)

    assert (not np.allclose(moving_mean.numpy(), before)) is train_bn
