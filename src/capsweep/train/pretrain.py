"""Pretrained weights for the embedded default: train the backbone once on the source task.

The weights are cached under ``<outputs>/pretrained/`` in a file keyed by everything that
produced them, and used through the same ``backbone.weights=<path>`` loading as any
user's file. Files are written under a temporary name and renamed into place, so a killed
pretraining never leaves a file a later run would trust; the JSON beside the weights
records their size and SHA-256, checked before every use, so a file truncated or changed
on disk is pretrained again rather than loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from pathlib import Path

import keras

from capsweep.data import digits_source
from capsweep.data.digits import held_out
from capsweep.errors import CapsweepConfigError
from capsweep.model.backbones import build_configured_backbone, preprocessing_mode
from capsweep.model.layers import ImagePreprocessing
from capsweep.settings import BackboneConfig, DataConfig
from capsweep.settings.choices import DatasetName
from capsweep.train.fit import EpochLog

log = logging.getLogger(__name__)


def source_weights_path(backbone: BackboneConfig, data: DataConfig, outputs: str) -> Path:
    """Where the source-pretrained weights for this configuration live."""
    recipe = {
        "backbone": backbone.name,
        "input_size": backbone.input_size,
        "filters": list(backbone.filters),
        "blocks_per_stage": backbone.blocks_per_stage,
        "pretrain": dataclasses.asdict(backbone.pretrain),
        "source_classes": list(data.source_classes),
        "val_fraction": data.val_fraction,
        "keras": keras.__version__,
    }
    shared = held_out(data)
    if shared:  # the pretraining keeps out the target task's half of these classes
        recipe["held_out"] = sorted(shared)
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return Path(outputs) / "pretrained" / f"{backbone.name}-{data.name}-{digest}.weights.h5"


def ensure_source_weights(backbone: BackboneConfig, data: DataConfig, outputs: str) -> Path:
    """Return the path of source-pretrained weights, pretraining them first if needed."""
    if data.name != DatasetName.digits:
        raise CapsweepConfigError(
            "backbone.weights",
            "source",
            f"pretraining on a source task needs data=digits, not data={data.name}",
            fix="set backbone.weights=imagenet, a weights file, or null",
        )
    path = source_weights_path(backbone, data, outputs)
    if path.is_file():
        problem = cache_problem(path)
        if problem is None:
            return path
        log.warning("Cached weights %s cannot be trusted (%s): pretraining again", path, problem)
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info(
        "Pretraining %s on digits %s (once; cached at %s)",
        backbone.name,
        list(data.source_classes),
        path,
    )
    model, accuracy = _pretrain(backbone, data)
    summary: dict[str, object] = {
        "source_val_accuracy": accuracy,
        "source_classes": list(data.source_classes),
    }
    if accuracy < backbone.pretrain.min_val_accuracy:
        raise RuntimeError(
            f"pretraining {backbone.name} reached source val_accuracy {accuracy:.3f} in "
            f"inference mode, below backbone.pretrain.min_val_accuracy="
            f"{backbone.pretrain.min_val_accuracy}; raise backbone.pretrain.epochs"
        )
    temporary = path.with_name(f".{path.stem}.{os.getpid()}.tmp.weights.h5")
    try:
        model.save_weights(str(temporary))
        summary.update(weights_bytes=temporary.stat().st_size, weights_sha256=sha256(temporary))
        # The sidecar first: killed between the two renames, the digest names weights
        # not yet in place, and the next run pretrains again rather than trusting them.
        _write_json(sidecar_path(path), summary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    log.info("Source val_accuracy (inference mode): %.3f", accuracy)
    return path


def sidecar_path(weights_path: Path) -> Path:
    """The JSON beside cached weights: source accuracy, size and SHA-256 of the weights."""
    return weights_path.with_suffix("").with_suffix(".json")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_problem(weights_path: Path) -> str | None:
    """Why cached weights cannot be used (no record, wrong size or digest), or ``None``."""
    try:
        summary = json.loads(sidecar_path(weights_path).read_text())
        expected_bytes = int(summary["weights_bytes"])
        expected_digest = str(summary["weights_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        return f"no size and digest recorded beside them ({type(error).__name__})"
    size = weights_path.stat().st_size
    if size != expected_bytes:
        return f"{size} bytes on disk, {expected_bytes} written"
    if sha256(weights_path) != expected_digest:
        return "their SHA-256 differs from the one recorded when they were written"
    return None


def source_accuracy(weights_path: Path) -> float:
    """The inference-mode source accuracy recorded beside cached weights."""
    summary = json.loads(sidecar_path(weights_path).read_text())
    return float(summary["source_val_accuracy"])


def _write_json(path: Path, payload: dict[str, object]) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temporary.write_text(json.dumps(payload, indent=2))
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _pretrain(backbone_config: BackboneConfig, data: DataConfig) -> tuple[keras.Model, float]:
    settings = backbone_config.pretrain
    keras.utils.set_random_seed(settings.seed)
    source = digits_source(data, backbone_config.input_size, settings.seed)
    backbone = build_configured_backbone(backbone_config, None)
    inputs = keras.Input(backbone.input_shape[1:])
    x = ImagePreprocessing(preprocessing_mode(backbone_config.name))(inputs)
    x = keras.layers.GlobalAveragePooling2D()(backbone(x))
    outputs = keras.layers.Dense(source.num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        keras.optimizers.Adam(settings.learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(
        source.train.images,
        source.train.labels,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        callbacks=[EpochLog(settings.epochs)],
        verbose=0,
    )
    # evaluate() runs BatchNorm in inference mode: the mode a frozen backbone is used in.
    _, accuracy = model.evaluate(source.val.images, source.val.labels, verbose=0)
    return backbone, float(accuracy)
