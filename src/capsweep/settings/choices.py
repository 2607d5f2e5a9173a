"""The closed sets of names a setting may take, as Enums the schema types its fields with.

Hydra refuses a value outside a set when it composes the configuration ("Invalid value
'x', expected one of [...]", naming the key); :func:`capsweep.settings.validate.check_settings`
refuses it for code that builds settings directly. The model and data builders read the
same tables, so a name accepted here is one they can build. Each is a ``StrEnum``: a
member is its name as a string (``Optimizer.adam == "adam"``), in messages and logs alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    """What ``capacity.unfreeze`` counts."""

    block = "block"  # the architecture's blocks, found from the layer graph
    weighted_layer = "weighted_layer"  # only layers that hold weights
    layer = "layer"  # raw Keras layers, weightless Add/Activation included


class BackboneName(StrEnum):
    """The backbones capsweep builds (``backbone.name``; one config file each in conf/backbone)."""

    small_resnet = "small_resnet"
    resnet50 = "resnet50"
    resnet101 = "resnet101"
    mobilenetv2 = "mobilenetv2"
    efficientnetb0 = "efficientnetb0"
    efficientnetb1 = "efficientnetb1"


class DatasetName(StrEnum):
    """The data sets capsweep loads (``data.name``; selected with ``data=<name>``)."""

    digits = "digits"
    image_folder = "image_folder"


class Optimizer(StrEnum):
    """``trainer.optimizer``: Keras optimizers by their Keras names."""

    adam = "adam"
    adamw = "adamw"
    sgd = "sgd"  # with momentum 0.9
    rmsprop = "rmsprop"


class Pooling(StrEnum):
    """``head.pooling``: how the head turns the backbone's feature map into a vector."""

    avg = "avg"
    max = "max"


class Activation(StrEnum):
    """``head.activation``: Keras activation names a head's hidden layers may use."""

    relu = "relu"
    gelu = "gelu"
    elu = "elu"
    selu = "selu"
    silu = "silu"
    swish = "swish"
    mish = "mish"
    leaky_relu = "leaky_relu"
    relu6 = "relu6"
    softplus = "softplus"
    tanh = "tanh"
    sigmoid = "sigmoid"
    linear = "linear"


class Augmentation(StrEnum):
    """``data.augment``: the random augmentations a trial may train with."""

    flip = "flip"  # horizontal
    # up to 10 % of the side each way (the member hides str.translate; nothing calls it)
    translate = "translate"  # type: ignore[assignment]
    rotation = "rotation"  # up to ±10 % of a turn


class Corruption(StrEnum):
    """``data.corruption``: an input-level shift applied to the digits target task's images.

    Fixed per image (noise drawn from the image's own seed), so the corrupted task is one
    data set, as CIFAR-10-C is: every trial and repeat sees the same corrupted images.
    """

    none = "none"
    invert = "invert"  # dark strokes on a light ground
    noise = "noise"  # Gaussian noise, standard deviation 64 of 255
    blur = "blur"  # Gaussian blur, radius 2 pixels at 32 px (scaled with the size)
    contrast = "contrast"  # the range squeezed to 30 % around mid-grey


class CacheDtype(StrEnum):
    """``cache.dtype``: how cached features are stored."""

    float32 = "float32"
    float16 = "float16"  # half the size


class MixedPrecision(StrEnum):
    """``trainer.mixed_precision``: Keras dtype policies a trial's model may compute in."""

    mixed_float16 = "mixed_float16"  # GPU only, with loss scaling
    mixed_bfloat16 = "mixed_bfloat16"


class TrainingProtocol(StrEnum):
    """``trainer.protocol``: how a trial trains the units it unfreezes and its head."""

    joint = "joint"  # head and unfrozen units together from the start, each at its own rate
    # a linear probe first (the head on the frozen backbone, at the head's rate), then the
    # head and the unfrozen units together at the backbone's rate (Kumar et al., 2022)
    lp_ft = "lp_ft"


class RepeatOver(StrEnum):
    """``hydra.sweeper.repeat_over``: what the repeats of a configuration vary."""

    both = "both"  # the training seed and the draw of the training/validation images
    seed = "seed"
    # data.split_seed, the test split staying (the member hides str.split; nothing calls it)
    split = "split"  # type: ignore[assignment]


@dataclass(frozen=True)
class BackboneSpec:
    """How one backbone family is built and fed."""

    # The keras.applications constructor, or None for capsweep's own small_resnet.
    application: str | None
    # A mode of capsweep.model.layers.ImagePreprocessing.
    preprocessing: str
    min_input_size: int
    # Its blocks (capacity.unit=block), as capsweep finds them in the layer graph; None
    # where they depend on the settings (small_resnet). tests/test_backbone_blocks.py
    # builds each backbone and checks the count.
    blocks: int | None = None

    @property
    def has_imagenet_weights(self) -> bool:
        return self.application is not None


BACKBONES: dict[BackboneName, BackboneSpec] = {
    BackboneName.small_resnet: BackboneSpec(None, "unit", 8),
    # Residual blocks 3+4+6+3 and 3+4+23+3.
    BackboneName.resnet50: BackboneSpec("ResNet50", "caffe", 32, blocks=16),
    BackboneName.resnet101: BackboneSpec("ResNet101", "caffe", 32, blocks=33),
    # The inverted residuals with a skip; those without one join the block before them.
    BackboneName.mobilenetv2: BackboneSpec("MobileNetV2", "tf", 32, blocks=10),
    # Every MBConv block (each has a squeeze-excite branch). EfficientNet rescales and
    # normalizes inside the application itself.
    BackboneName.efficientnetb0: BackboneSpec("EfficientNetB0", "none", 32, blocks=16),
    BackboneName.efficientnetb1: BackboneSpec("EfficientNetB1", "none", 32, blocks=23),
}
# backbone.weights values that are not file paths.
SOURCE_WEIGHTS = "source"
IMAGENET_WEIGHTS = "imagenet"
# trainer.jit_compile: XLA on, off, or Keras' choice (on with a GPU, off on CPU-only machines).
JIT_COMPILE = (True, False, "auto")
