"""The names a setting may take, known without importing TensorFlow.

The model and data builders read the same tables, so a name accepted here is one they
can build, and the choices an error lists are the ones that exist.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    """How one backbone family is built and fed."""

    # The keras.applications constructor, or None for capsweep's own small_resnet.
    application: str | None
    # A mode of capsweep.model.layers.ImagePreprocessing.
    preprocessing: str
    min_input_size: int

    @property
    def has_imagenet_weights(self) -> bool:
        return self.application is not None


BACKBONES: dict[str, BackboneSpec] = {
    "small_resnet": BackboneSpec(None, "unit", 8),
    "resnet50": BackboneSpec("ResNet50", "caffe", 32),
    "resnet101": BackboneSpec("ResNet101", "caffe", 32),
    "mobilenetv2": BackboneSpec("MobileNetV2", "tf", 32),
    # EfficientNet rescales and normalizes inside the application itself.
    "efficientnetb0": BackboneSpec("EfficientNetB0", "none", 32),
    "efficientnetb1": BackboneSpec("EfficientNetB1", "none", 32),
}
DATASETS = ("digits", "image_folder")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
POOLINGS = ("avg", "max")
# Keras activation names a head's hidden layers may use.
ACTIVATIONS = (
    "relu",
    "gelu",
    "elu",
    "selu",
    "silu",
    "swish",
    "mish",
    "leaky_relu",
    "relu6",
    "softplus",
    "tanh",
    "sigmoid",
    "linear",
)
# data.augment: the random augmentations a trial may train with.
AUGMENTATIONS = ("flip", "translate", "rotation")
# cache.dtype: how cached features are stored.
CACHE_DTYPES = ("float32", "float16")
# backbone.weights values that are not file paths.
SOURCE_WEIGHTS = "source"
IMAGENET_WEIGHTS = "imagenet"
# trainer.mixed_precision: Keras dtype policies a trial's model may compute in (null = float32).
MIXED_PRECISIONS = ("mixed_float16", "mixed_bfloat16")
# trainer.jit_compile: XLA on, off, or Keras' choice (on with a GPU, off on CPU-only machines).
JIT_COMPILE = (True, False, "auto")
