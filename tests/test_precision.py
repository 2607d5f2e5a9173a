"""Mixed precision and XLA: a trial builds in its own dtype policy and gives it back."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.settings import CapacityConfig, HeadConfig, TrainerConfig
from capsweep.settings.validate import check_trainer

BFLOAT16 = "mixed_bfloat16"


def policies(model: Any) -> dict[str, str]:
    """Each weighted layer's dtype policy, by name, the backbone's layers included."""
    found: dict[str, str] = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found.update(policies(layer))
        elif layer.weights:
            found[layer.name] = layer.dtype_policy.name
    return found


def prepared(settings_config: DictConfig) -> Any:
    from capsweep.hydra_settings import load_settings
    from capsweep.train.trial import prepare_trial

    return prepare_trial(load_settings(settings_config))


def tiny_transfer() -> Any:
    """small_resnet at 8 px with 3 classes: one unfrozen block and a hidden head layer."""
    import keras

    from capsweep.model.backbones import small_resnet
    from capsweep.model.transfer import build_transfer_model

    keras.utils.set_random_seed(0)
    backbone = small_resnet((8, 8, 3), filters=(4, 8, 8))
    head = HeadConfig(depth=1, width=4, dropout=0.0)
    return build_transfer_model(backbone, "unit", 3, CapacityConfig(unfreeze=1), head)


def test_dtype_policy_applies_inside_the_block_and_restores_the_previous_one() -> None:
    import keras

    from capsweep.train.precision import dtype_policy

    with dtype_policy(BFLOAT16):
        inside = keras.layers.Dense(2)
    after = keras.layers.Dense(2)

    assert inside.dtype_policy.name == BFLOAT16
    assert after.dtype_policy.name == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_dtype_policy_is_restored_when_the_build_raises() -> None:
    import keras

    from capsweep.train.precision import dtype_policy

    with pytest.raises(RuntimeError), dtype_policy(BFLOAT16):
        raise RuntimeError("build failed")

    assert keras.config.dtype_policy().name == "float32"


def test_a_bfloat16_trial_builds_its_layers_in_bfloat16_and_the_classifier_in_float32(
    tiny_config: Callable[..., DictConfig],
) -> None:
    import keras

    model = prepared(tiny_config(f"trainer.mixed_precision={BFLOAT16}")).transfer.model
    built = policies(model)

    assert built.pop("classifier") == "float32"
    assert set(built.values()) == {BFLOAT16}
    assert model.output.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"


def test_a_trial_after_a_bfloat16_trial_builds_in_float32(
    tiny_config: Callable[..., DictConfig],
) -> None:
    prepared(tiny_config(f"trainer.mixed_precision={BFLOAT16}"))

    later = prepared(tiny_config()).transfer.model

    assert set(policies(later).values()) == {"float32"}


def test_a_bfloat16_trial_trains_to_a_finite_loss(
    tiny_config: Callable[..., DictConfig],
) -> None:
    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings

    outcome = run_trial(load_settings(tiny_config(f"trainer.mixed_precision={BFLOAT16}")))

    assert outcome.state == "COMPLETE"
    assert outcome.metrics is not None
    assert all(math.isfinite(loss) for loss in outcome.metrics.history["loss"])
    assert 0.0 <= outcome.metrics.val_accuracy <= 1.0


def test_mixed_float16_compiles_with_loss_scaling_and_bfloat16_without() -> None:
    import keras

    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer()
    compile_model(transfer, TrainerConfig(mixed_precision="mixed_float16"))
    float16_optimizer = transfer.model.optimizer
    compile_model(transfer, TrainerConfig(mixed_precision=BFLOAT16))

    assert isinstance(float16_optimizer, keras.optimizers.LossScaleOptimizer)
    assert not isinstance(transfer.model.optimizer, keras.optimizers.LossScaleOptimizer)


def test_a_mixed_float16_model_takes_a_loss_scaled_training_step() -> None:
    # Trials refuse mixed_float16 without a GPU (require_device_for); Keras runs it on a
    # CPU slowly, which is enough to show one step of the loss-scaled path works.
    import keras
    import numpy as np

    from capsweep.train.compiled_models import compile_model
    from capsweep.train.precision import dtype_policy

    with dtype_policy("mixed_float16"):
        transfer = tiny_transfer()
    compile_model(transfer, TrainerConfig(mixed_precision="mixed_float16", jit_compile=False))
    images = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("float32")
    before = [np.array(v) for v in transfer.model.trainable_variables]

    loss, _ = transfer.model.train_on_batch(images, np.array([0, 1, 2, 0]))

    optimizer = transfer.model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    assert math.isfinite(float(np.asarray(loss)))
    assert float(np.asarray(optimizer.dynamic_scale)) > 0
    assert transfer.model.layers[-1].compute_dtype == "float32"  # the classifier
    moved = [
        not np.array_equal(a, np.array(v))
        for a, v in zip(before, transfer.model.trainable_variables, strict=True)
    ]
    assert any(moved)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_jit_compile_reaches_the_compiled_model(jit_compile: bool) -> None:
    from capsweep.train.compiled_models import compile_model

    transfer = tiny_transfer()
    compile_model(transfer, TrainerConfig(jit_compile=jit_compile))

    assert transfer.model.jit_compile is jit_compile


def test_mixed_float16_is_refused_where_no_gpu_is_visible() -> None:
    import keras

    from capsweep.train.precision import require_device_for

    if keras.distribution.list_devices("gpu"):
        pytest.skip("a GPU is visible: mixed_float16 is allowed")
    with pytest.raises(CapsweepConfigError, match=r"trainer\.mixed_precision=.*needs a GPU"):
        require_device_for("mixed_float16")
    require_device_for(BFLOAT16)
    require_device_for(None)


def test_a_mixed_float16_trial_without_a_gpu_fails_before_recording(
    tiny_config: Callable[..., DictConfig],
    tracking_uri: str,
    runs_in: Callable[[str], list[Any]],
) -> None:
    import keras

    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings

    if keras.distribution.list_devices("gpu"):
        pytest.skip("a GPU is visible: mixed_float16 is allowed")
    with pytest.raises(CapsweepConfigError, match="mixed_bfloat16"):
        run_trial(load_settings(tiny_config("trainer.mixed_precision=mixed_float16")))
    assert runs_in(tracking_uri) == []


def test_the_command_line_gives_jit_compile_as_a_bool_or_auto(
    compose: Callable[..., DictConfig],
) -> None:
    from capsweep.hydra_settings import load_settings

    assert load_settings(compose()).trainer.jit_compile == "auto"
    assert load_settings(compose("trainer.jit_compile=true")).trainer.jit_compile is True
    assert load_settings(compose("trainer.jit_compile=false")).trainer.jit_compile is False


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("mixed_precision", "float16", "mixed_bfloat16"),
        ("mixed_precision", "bfloat16", "mixed_bfloat16"),
        ("mixed_precision", "float32", "null trains in float32"),
        ("jit_compile", "yes", "true, false or auto"),
        ("jit_compile", 1, "true, false or auto"),
        ("jit_compile", None, "true, false or auto"),
    ],
)
def test_check_trainer_refuses_a_value_naming_the_key(key: str, value: Any, says: str) -> None:
    with pytest.raises(CapsweepConfigError, match=rf"trainer\.{key}=") as raised:
        check_trainer(TrainerConfig(**{key: value}))
    assert says in str(raised.value)


def test_check_trainer_refuses_xla_with_deterministic_ops() -> None:
    with pytest.raises(CapsweepConfigError, match=r"trainer\.deterministic"):
        check_trainer(TrainerConfig(jit_compile=True, deterministic=True))


@pytest.mark.parametrize("mixed_precision", [None, "mixed_bfloat16", "mixed_float16"])
@pytest.mark.parametrize("jit_compile", [True, False, "auto"])
def test_check_trainer_accepts_every_policy_and_xla_setting(
    mixed_precision: str | None, jit_compile: Any
) -> None:
    check_trainer(TrainerConfig(mixed_precision=mixed_precision, jit_compile=jit_compile))
