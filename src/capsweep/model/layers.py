"""Layers capsweep puts inside a transfer model, registered so saved models load."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
MODES = ("caffe", "tf", "torch", "unit", "none")


@keras.saving.register_keras_serializable(package="capsweep")
class ImagePreprocessing(keras.layers.Layer):
    """An architecture's input normalization, so a saved model takes raw 0–255 RGB images.

    Modes follow ``keras.applications.imagenet_utils.preprocess_input``: ``caffe`` (BGR,
    mean-subtracted), ``tf`` (to [-1, 1]), ``torch`` (ImageNet mean/std), plus ``unit``
    (to [0, 1]) and ``none``.
    """

    def __init__(self, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"ImagePreprocessing mode must be one of {MODES}, got {mode!r}")
        self.mode = mode

    def call(self, images: Any) -> Any:
        x = ops.cast(images, self.compute_dtype)
        if self.mode == "caffe":
            return ops.flip(x, axis=-1) - ops.convert_to_tensor(_CAFFE_MEAN_BGR, x.dtype)
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, x.dtype)
            std = ops.convert_to_tensor(_TORCH_STD, x.dtype)
            return (x / 255.0 - mean) / std
        if self.mode == "unit":
            return x / 255.0
        return x

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mode": self.mode}
