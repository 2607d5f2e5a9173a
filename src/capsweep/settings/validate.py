"""One validation pass over the typed settings, before TensorFlow or MLflow is imported.

Every check here reads settings and, at most, the file system: a bad value is refused in
the time Hydra takes to compose, naming the key, the value and the fix. What needs the
built model (how many units a backbone has to unfreeze) is checked right after building,
still before anything is recorded (:func:`capsweep.model.capacity.unfreeze_last`).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from capsweep.errors import CapsweepConfigError, require_count
from capsweep.settings.choices import (
    BACKBONES,
    IMAGENET_WEIGHTS,
    JIT_COMPILE,
    SOURCE_WEIGHTS,
    Activation,
    Augmentation,
    BackboneName,
    BackboneSpec,
    CacheDtype,
    Corruption,
    DatasetName,
    MixedPrecision,
    Optimizer,
    Pooling,
    TrainingProtocol,
    Unit,
)
from capsweep.settings.schema import (
    BackboneConfig,
    CacheConfig,
    CapacityConfig,
    CapsweepConfig,
    DataConfig,
    HeadConfig,
    TrackingConfig,
    TrainerConfig,
)
from capsweep.settings.unit_range import check_position, unit_range
from capsweep.settings.weights_file import check_weights_file

Member = TypeVar("Member", bound=Enum)


def member(
    key: str, value: Any, kind: type[Member], problem: str, *, fix: str | None = None
) -> Member:
    """``value`` as a member of the Enum ``kind``, or raise naming ``key`` and the choices.

    Hydra refuses such a value while composing; settings built in Python (tests, other
    callers of the model) are checked here.
    """
    try:
        return kind(value)
    except ValueError:
        choices = [item.value for item in kind]
        raise CapsweepConfigError(key, value, problem, choices=choices, fix=fix) from None


def check_settings(settings: CapsweepConfig) -> None:
    """Raise :class:`CapsweepConfigError` on the first value that cannot work."""
    check_data(settings.data)
    check_backbone(settings.backbone, settings.data)
    check_capacity(settings.capacity, settings.backbone)
    check_head(settings.head)
    check_trainer(settings.trainer)
    check_tracking(settings.tracking)
    check_cache(settings.cache)


def check_capacity(capacity: CapacityConfig, backbone: BackboneConfig) -> None:
    """Raise on a count or position of units the backbone cannot have.

    Where the backbone's unit count is known without building it (its blocks), a range
    past its last unit is refused here; otherwise right after the build, still before
    anything is recorded or pretrained.
    """
    require_count("capacity.unfreeze", capacity.unfreeze)
    check_position(capacity.position)
    available = known_units(backbone, capacity.unit)
    if available is not None:
        unit_range(
            available,
            capacity.unfreeze,
            capacity.position,
            backbone=str(backbone.name),
            unit=capacity.unit.name,
        )


def known_units(backbone: BackboneConfig, unit: Unit) -> int | None:
    """How many units of kind ``unit`` the backbone has, when known without building it."""
    if unit is not Unit.block:
        return None
    if backbone.name == BackboneName.small_resnet:
        return len(backbone.filters) * backbone.blocks_per_stage
    return backbone_spec(backbone.name).blocks


def check_cache(cache: CacheConfig) -> None:
    """Raise on feature-cache options that cannot work."""
    member(
        "cache.dtype",
        cache.dtype,
        CacheDtype,
        "is not a storage type of cached features",
        fix="float16 halves the size; float32 keeps the features exact",
    )
    if isinstance(cache.max_gb, bool) or not cache.max_gb > 0:
        raise CapsweepConfigError(
            "cache.max_gb",
            cache.max_gb,
            "must be a positive size in GB",
            fix="e.g. cache.max_gb=10",
        )
    for index, count in enumerate(cache.cuts or []):
        require_count(f"cache.cuts[{index}]", count)
    for index, start in enumerate(cache.starts or []):
        require_count(f"cache.starts[{index}]", start)
    if cache.dir is not None and not str(cache.dir).strip():
        raise CapsweepConfigError(
            "cache.dir",
            cache.dir,
            "must not be empty",
            fix="leave it null for <paths.outputs>/cache",
        )


# MLflow refuses more retries than this (its _MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT).
MAX_HTTP_RETRIES = 10


def check_tracking(tracking: TrackingConfig) -> None:
    """Raise on tracking options MLflow cannot use."""
    for key, value in (
        ("tracking.uri", tracking.uri),
        ("tracking.experiment", tracking.experiment),
    ):
        if not str(value or "").strip():
            raise CapsweepConfigError(key, value, "must not be empty")
    require_count("tracking.request_timeout", tracking.request_timeout, minimum=1)
    retries = require_count("tracking.max_retries", tracking.max_retries)
    if retries > MAX_HTTP_RETRIES:
        raise CapsweepConfigError(
            "tracking.max_retries",
            retries,
            f"MLflow allows at most {MAX_HTTP_RETRIES} retries",
            fix="e.g. tracking.max_retries=3",
        )


def backbone_spec(name: str) -> BackboneSpec:
    """Look up a backbone by name, or raise naming the choices."""
    known = member(
        "backbone.name",
        name,
        BackboneName,
        "unknown backbone",
        fix="select one with backbone=<name>",
    )
    return BACKBONES[known]


def check_input_size(name: str, input_size: Any) -> int:
    """Return ``input_size`` if backbone ``name`` can take square images of that side."""
    minimum = backbone_spec(name).min_input_size
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < minimum:
        raise CapsweepConfigError(
            "backbone.input_size",
            input_size,
            f"{name} needs square images of at least {minimum} pixels",
            fix=f"set backbone.input_size={max(minimum, 32)} or larger",
        )
    return input_size


def check_backbone(backbone: BackboneConfig, data: DataConfig) -> None:
    """Raise on backbone options that cannot build or load."""
    check_input_size(backbone.name, backbone.input_size)
    for index, filters in enumerate(backbone.filters):
        require_count(f"backbone.filters[{index}]", filters, minimum=1)
    require_count("backbone.blocks_per_stage", backbone.blocks_per_stage, minimum=1)
    if backbone.weights == SOURCE_WEIGHTS:
        if data.name != DatasetName.digits:
            raise CapsweepConfigError(
                "backbone.weights",
                backbone.weights,
                f"pretraining on a source task needs data=digits, not data={data.name}",
                fix="set backbone.weights=imagenet, a weights file, or null",
            )
        pretrain = backbone.pretrain
        require_count("backbone.pretrain.epochs", pretrain.epochs, minimum=1)
        require_count("backbone.pretrain.batch_size", pretrain.batch_size, minimum=1)
        _require_positive("backbone.pretrain.learning_rate", pretrain.learning_rate)
        _require_fraction("backbone.pretrain.min_val_accuracy", pretrain.min_val_accuracy)
    else:
        check_weights(backbone.name, backbone.weights, allow_unsafe_h5=backbone.allow_unsafe_h5)


def check_weights(name: str, weights: str | None, *, allow_unsafe_h5: bool = False) -> None:
    """Raise unless ``weights`` is ``None``, ImageNet's for a backbone that has them, or a file.

    A legacy ``.h5`` file that holds a whole model is refused unless ``allow_unsafe_h5``
    (see :func:`check_weights_file`).
    """
    if weights is None:
        return
    if weights == IMAGENET_WEIGHTS:
        if not backbone_spec(name).has_imagenet_weights:
            raise CapsweepConfigError(
                "backbone.weights",
                weights,
                f"{name} has no ImageNet weights",
                fix="use backbone.weights=source, a weights file, or null",
            )
    elif not Path(weights).expanduser().is_file():
        raise CapsweepConfigError(
            "backbone.weights",
            weights,
            "no such weights file",
            fix="give the path of a Keras weights file, imagenet, or null for random weights",
        )
    else:
        check_weights_file(weights, allow_unsafe_h5=allow_unsafe_h5)


def check_data(data: DataConfig) -> None:
    """Raise on data options that are wrong before anything is loaded."""
    member(
        "data.name", data.name, DatasetName, "unknown data set", fix="select one with data=<name>"
    )
    for key, fraction in (
        ("data.val_fraction", data.val_fraction),
        ("data.test_fraction", data.test_fraction),
    ):
        if not 0.0 < fraction < 1.0:
            raise CapsweepConfigError(key, fraction, "must be between 0 and 1", fix="e.g. 0.2")
    if data.val_fraction + data.test_fraction >= 1.0:
        raise CapsweepConfigError(
            "data.val_fraction",
            data.val_fraction,
            f"with data.test_fraction={data.test_fraction} leaves no training images",
            fix="make data.val_fraction + data.test_fraction less than 1",
        )
    if data.num_classes is not None:
        require_count("data.num_classes", data.num_classes, minimum=2)
    for augmentation in data.augment:
        member(
            "data.augment",
            augmentation,
            Augmentation,
            "is not an augmentation",
            fix="e.g. data.augment=[flip,translate]",
        )
    if data.name == DatasetName.image_folder and not data.path:
        raise CapsweepConfigError(
            "data.path",
            data.path,
            "image_folder needs a directory",
            fix="set data.path=/path/to/images (one sub-folder per class)",
        )
    if data.name == DatasetName.digits:
        _check_digits(data)


def _check_digits(data: DataConfig) -> None:
    for key, classes in (
        ("data.source_classes", data.source_classes),
        ("data.target_classes", data.target_classes),
    ):
        if len(set(classes)) < 2 or any(c not in range(10) for c in classes):
            raise CapsweepConfigError(
                key, list(classes), "needs two or more distinct digits from 0 to 9"
            )
    member("data.corruption", data.corruption, Corruption, "is not a corruption of the digits")
    overlap = set(data.source_classes) & set(data.target_classes)
    if overlap and data.corruption == Corruption.none:
        raise CapsweepConfigError(
            "data.target_classes",
            list(data.target_classes),
            f"shares classes {sorted(overlap)} with data.source_classes, with nothing to "
            "transfer: the same classes need a shift (data.corruption)",
            fix="transfer to digits the backbone was not pretrained on, or set "
            "data.corruption=invert|noise|blur|contrast",
        )
    require_count("data.train_per_class", data.train_per_class, minimum=1)
    require_count("data.val_size", data.val_size, minimum=1)


def check_head(head: HeadConfig) -> None:
    """Raise if the head options cannot build a head."""
    require_count("head.depth", head.depth)
    require_count("head.width", head.width, minimum=1)
    if not 0.0 <= float(head.dropout) < 1.0:
        raise CapsweepConfigError("head.dropout", head.dropout, "must be in [0, 1)", fix="e.g. 0.2")
    member("head.pooling", head.pooling, Pooling, "unknown pooling")
    member("head.activation", head.activation, Activation, "unknown activation")


def check_optimizer(name: str, learning_rate: float) -> None:
    """Raise unless ``name`` is a known optimizer and ``learning_rate`` is positive."""
    member("trainer.optimizer", name, Optimizer, "unknown optimizer")
    _require_positive("trainer.learning_rate", learning_rate)


def check_trainer(trainer: TrainerConfig) -> None:
    """Raise on training options that cannot train."""
    require_count("trainer.epochs", trainer.epochs, minimum=1)
    require_count("trainer.batch_size", trainer.batch_size, minimum=1)
    check_optimizer(trainer.optimizer, trainer.learning_rate)
    member("trainer.protocol", trainer.protocol, TrainingProtocol, "is not a training protocol")
    _require_positive("trainer.backbone_learning_rate", trainer.backbone_learning_rate)
    if trainer.early_stopping_patience is not None:
        require_count("trainer.early_stopping_patience", trainer.early_stopping_patience)
    if trainer.verbose not in (None, 0, 1, 2):
        raise CapsweepConfigError(
            "trainer.verbose", trainer.verbose, "is not a Keras verbosity", choices=(0, 1, 2, None)
        )
    check_precision(trainer)


def check_precision(trainer: TrainerConfig) -> None:
    """Raise on a dtype policy or XLA setting Keras cannot use.

    Whether a GPU is there for ``mixed_float16`` is checked where the trial runs
    (:func:`capsweep.train.precision.require_device_for`): a sweep's driver may run on a
    machine without one.
    """
    if trainer.mixed_precision is not None:
        member(
            "trainer.mixed_precision",
            trainer.mixed_precision,
            MixedPrecision,
            "is not a mixed-precision policy",
            fix="null trains in float32",
        )
    # A bool or the string "auto" (1 == True in Python: compare types, not values).
    if not (isinstance(trainer.jit_compile, bool) or trainer.jit_compile == "auto"):
        raise CapsweepConfigError(
            "trainer.jit_compile",
            trainer.jit_compile,
            "must be true, false or auto",
            choices=JIT_COMPILE,
            fix="auto lets Keras choose (XLA with a GPU, none on a CPU-only machine)",
        )
    if trainer.jit_compile is True and trainer.deterministic:
        raise CapsweepConfigError(
            "trainer.jit_compile",
            True,
            "Keras turns XLA off while TensorFlow's deterministic ops are on "
            "(trainer.deterministic=true)",
            fix="set trainer.jit_compile=auto or trainer.deterministic=false",
        )


def _require_positive(key: str, value: float) -> None:
    if not value > 0:
        raise CapsweepConfigError(key, value, "must be positive", fix=f"e.g. {key}=1e-3")


def _require_fraction(key: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise CapsweepConfigError(key, value, "must be between 0 and 1", fix=f"e.g. {key}=0.9")
