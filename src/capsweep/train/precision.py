"""Mixed precision for one trial: the Keras dtype policy its model is built in.

Keras' dtype policy is global to the process, and every layer takes the policy in force
when it is created. A trial sets ``trainer.mixed_precision`` only while it builds its
layers and puts the previous policy back after, so nothing built later in the process (a
pretraining, the next trial of a sweep) inherits it. The classifier computes in float32
whatever the policy (:func:`capsweep.model.heads.apply_head`), as Keras' mixed-precision
guide advises for a final softmax.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import keras

from capsweep.errors import CapsweepConfigError

FLOAT16 = "mixed_float16"


@contextlib.contextmanager
def dtype_policy(mixed_precision: str | None) -> Iterator[None]:
    """Build layers under ``mixed_precision`` (None: float32); restore the policy after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(mixed_precision or "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def require_device_for(mixed_precision: str | None) -> None:
    """Refuse ``mixed_float16`` where no GPU is visible.

    Checked where the trial runs, not when the settings are read: a sweep's driver may
    run on a machine without the GPUs its trials get.
    """
    if mixed_precision == FLOAT16 and not keras.distribution.list_devices("gpu"):
        raise CapsweepConfigError(
            "trainer.mixed_precision",
            mixed_precision,
            "needs a GPU, and none is visible here: on a CPU, TensorFlow runs float16 "
            "slowly or not at all for many ops",
            fix="use trainer.mixed_precision=mixed_bfloat16 on a CPU with bfloat16 "
            "support (AVX512_BF16, AMX), or null for float32",
        )


def with_loss_scaling(
    optimizer: keras.optimizers.Optimizer, mixed_precision: str | None
) -> keras.optimizers.Optimizer:
    """Wrap ``optimizer`` in dynamic loss scaling for float16, whose gradients underflow.

    Keras' ``compile`` does this only for a model whose own policy is ``mixed_float16``;
    wrapping here does not depend on the policy in force when the trained model (the
    whole model, or a suffix on cached features) was made. bfloat16 has float32's range
    and needs no scaling.
    """
    if mixed_precision == FLOAT16:
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
