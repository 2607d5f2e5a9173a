"""Random backbone weights whose BatchNorm statistics fit the training images.

ImageNet weights cannot be downloaded on the machines this was written on. With Keras'
random init every BatchNorm layer keeps mean 0 / variance 1, and a deep random network in
inference mode shrinks its input to nothing (MobileNetV2 at 64 px: mean |feature| ~1e-12
at its output), so every trial sits at chance. One pass in training mode with momentum 0
sets each layer's moving statistics to those of the training images: random but
informative features. Speed does not depend on the weights' values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .data import load_split_folder
from .processes import run_logged, worker_command

# Images the statistics are taken from (one batch, in training mode).
CALIBRATION_IMAGES = 512


def calibrated_weights_worker(spec: dict[str, Any]) -> None:
    """Save ``spec["backbone"]``'s calibrated weights to ``spec["out"]`` (in a worker)."""
    import keras

    from capsweep.model.backbones import build_backbone, preprocessing_mode
    from capsweep.model.layers import ImagePreprocessing

    data = load_split_folder(spec)
    keras.utils.set_random_seed(0)
    backbone = build_backbone(spec["backbone"], spec["size"], None)
    for layer in backbone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = 0.0
    images = data.train.images[:CALIBRATION_IMAGES].astype("float32")
    backbone(ImagePreprocessing(preprocessing_mode(spec["backbone"]))(images), training=True)
    backbone.save_weights(spec["out"])


def make_calibrated_weights(
    *,
    backbone: str,
    size: int,
    data_dir: Path,
    val_fraction: float,
    test_fraction: float,
    work: Path,
) -> Path:
    """Write the calibrated weights file into ``work`` (in a fresh process); its path."""
    out = work / f"{backbone}-{size}-calibrated.weights.h5"
    spec = {
        "data_dir": str(data_dir),
        "backbone": backbone,
        "size": size,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "out": str(out),
    }
    returncode, _, _ = run_logged(
        worker_command("calibrate", spec), work / "calibration.log", "calibrate"
    )
    if returncode != 0:
        raise SystemExit(f"calibrating {backbone}'s weights failed: see {work / 'calibration.log'}")
    return out
