"""Weights and model files: truncated ones are never used, unsafe ones never loaded unasked."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import load_settings
from capsweep.settings import BackboneConfig, DataConfig, PretrainConfig

# A backbone that pretrains in seconds (one epoch, any accuracy accepted).
TINY_BACKBONE = BackboneConfig(
    input_size=16,
    filters=[4, 8, 8],
    blocks_per_stage=1,
    pretrain=PretrainConfig(epochs=1, min_val_accuracy=0.0),
)
TINY_BACKBONE_OVERRIDES = [
    "backbone.weights=source",
    "backbone.input_size=16",
    "backbone.filters=[4,8,8]",
    "backbone.blocks_per_stage=1",
    "backbone.pretrain.epochs=1",
    "backbone.pretrain.min_val_accuracy=0.0",
    "tracking.log_artifacts=false",
]


def truncate(path: Path) -> None:
    """Cut a file to half its length, as a full disk or an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def small_backbone() -> Any:
    from capsweep.model.backbones import small_resnet

    return small_resnet((16, 16, 3), filters=(4, 8, 8), blocks_per_stage=1)


def weights_of(model: Any) -> list[np.ndarray]:
    return [np.asarray(weight) for weight in model.get_weights()]


def same_weights(left: Any, right: Any) -> bool:
    pairs = list(zip(weights_of(left), weights_of(right), strict=True))
    return bool(pairs) and all(np.array_equal(a, b) for a, b in pairs)


def build(weights: str, **options: Any) -> Any:
    from capsweep.model.backbones import build_backbone

    return build_backbone(
        "small_resnet", 16, weights, filters=(4, 8, 8), blocks_per_stage=1, **options
    )


# --- the cached source weights ---------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An outputs folder holding the tiny backbone's cached source weights (pretrained once)."""
    from capsweep.train.pretrain import ensure_source_weights

    folder = tmp_path_factory.mktemp("pretrained_once")
    ensure_source_weights(TINY_BACKBONE, DataConfig(), str(folder))
    return folder


@pytest.fixture
def cached(pretrained_once: Path, outputs: Path) -> Path:
    """This test's own copy of the cached weights; returns the weights file."""
    import shutil

    shutil.copytree(pretrained_once / "pretrained", outputs / "pretrained")
    (path,) = (outputs / "pretrained").glob("*.weights.h5")
    return path


def test_cached_weights_record_their_size_and_digest(cached: Path) -> None:
    from capsweep.train.pretrain import sha256, sidecar_path

    path = cached

    record = json.loads(sidecar_path(path).read_text())
    assert record["weights_bytes"] == path.stat().st_size
    assert record["weights_sha256"] == sha256(path)


def test_truncated_cached_weights_are_pretrained_again_not_loaded(
    cached: Path, outputs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from capsweep.train.pretrain import cache_problem, ensure_source_weights

    path = cached
    whole = path.stat().st_size
    truncate(path)
    assert cache_problem(path) == f"{whole // 2} bytes on disk, {whole} written"

    with caplog.at_level(logging.INFO, logger="capsweep.train.pretrain"):
        again = ensure_source_weights(TINY_BACKBONE, DataConfig(), str(outputs))

    assert again == path
    assert cache_problem(path) is None
    assert "cannot be trusted" in caplog.text and "Pretraining" in caplog.text


@pytest.mark.slow
def test_cached_weights_changed_on_disk_are_pretrained_again(cached: Path, outputs: Path) -> None:
    from capsweep.train.pretrain import cache_problem, ensure_source_weights

    path = cached
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # same size, one byte flipped
    path.write_bytes(bytes(data))
    assert "SHA-256" in str(cache_problem(path))

    ensure_source_weights(TINY_BACKBONE, DataConfig(), str(outputs))
    assert cache_problem(path) is None


def test_cached_weights_without_a_recorded_digest_are_not_trusted(cached: Path) -> None:
    from capsweep.train.pretrain import cache_problem, sidecar_path

    path = cached
    sidecar_path(path).unlink()  # killed between writing the weights and their record
    assert "no size and digest" in str(cache_problem(path))


@pytest.mark.slow
def test_the_trial_after_its_cached_weights_were_truncated_pretrains_again_and_completes(
    tiny_config: Callable[..., Any], outputs: Path
) -> None:
    from capsweep.cli.run import run_trial
    from capsweep.train.pretrain import cache_problem

    settings = load_settings(tiny_config(*TINY_BACKBONE_OVERRIDES))
    run_trial(settings)
    (cached,) = (outputs / "pretrained").glob("*.weights.h5")
    truncate(cached)

    outcome = run_trial(settings)

    assert outcome.state == "COMPLETE"
    assert cache_problem(cached) is None


# --- a user's weights file ------------------------------------------------------------


def test_a_truncated_user_weights_file_is_refused_with_the_settings(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "backbone.weights.h5"
    small_backbone().save_weights(path)
    truncate(path)

    with pytest.raises(CapsweepConfigError) as refused:
        load_settings(tiny_config(f"backbone.weights={path}"))

    message = str(refused.value)
    assert message.startswith(f"backbone.weights='{path}': is truncated")
    assert "copy the file again" in message


def test_a_truncated_keras_file_is_refused_with_the_settings(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "backbone.keras"
    small_backbone().save(path)
    truncate(path)

    with pytest.raises(CapsweepConfigError, match=r"backbone\.weights=.*is truncated"):
        load_settings(tiny_config(f"backbone.weights={path}"))


def test_weights_truncated_after_the_settings_were_checked_are_refused_at_the_build(
    tmp_path: Path,
) -> None:
    path = tmp_path / "backbone.weights.h5"
    small_backbone().save_weights(path)
    truncate(path)
    with pytest.raises(CapsweepConfigError, match=r"backbone\.weights=.*is truncated"):
        build(str(path))


# --- full-model files -------------------------------------------------------------------


def test_a_legacy_h5_full_model_is_refused_unless_allowed(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "backbone.h5"
    small_backbone().save(path)  # legacy HDF5: config and weights, loaded without safe mode

    with pytest.raises(CapsweepConfigError) as refused:
        load_settings(tiny_config(f"backbone.weights={path}"))
    message = str(refused.value)
    assert "legacy .h5 file holding a whole model" in message
    assert "backbone.allow_unsafe_h5=true" in message

    load_settings(tiny_config(f"backbone.weights={path}", "backbone.allow_unsafe_h5=true"))


def test_an_allowed_legacy_h5_full_model_gives_its_weights(tmp_path: Path) -> None:
    saved = small_backbone()
    path = tmp_path / "backbone.h5"
    saved.save(path)

    with pytest.raises(CapsweepConfigError, match="allow_unsafe_h5"):
        build(str(path))
    assert same_weights(build(str(path), allow_unsafe_h5=True), saved)


def test_a_keras_full_model_gives_its_weights_loaded_in_safe_mode(tmp_path: Path) -> None:
    saved = small_backbone()
    path = tmp_path / "backbone.keras"
    saved.save(path)

    assert same_weights(build(str(path)), saved)


def test_a_keras_model_holding_the_backbone_as_a_layer_gives_the_backbone_weights(
    tmp_path: Path,
) -> None:
    import keras

    backbone = small_backbone()
    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(backbone(inputs)))
    path = tmp_path / "classifier.keras"
    keras.Model(inputs, outputs).save(path)

    assert same_weights(build(str(path)), backbone)


def test_a_keras_model_with_code_in_it_is_refused_by_safe_mode(tmp_path: Path) -> None:
    import keras

    inputs = keras.Input((16, 16, 3))
    outputs = keras.layers.Lambda(lambda x: x * 2.0)(small_backbone()(inputs))
    path = tmp_path / "with_code.keras"
    keras.Model(inputs, outputs).save(path)

    with pytest.raises(CapsweepConfigError) as refused:
        build(str(path))
    message = str(refused.value)
    assert "could not load this model in safe mode" in message
    assert "Lambda" in message


def test_a_file_keras_cannot_read_as_weights_is_refused_with_the_settings(
    tiny_config: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "backbone.pkl"
    path.write_bytes(b"not weights")
    with pytest.raises(CapsweepConfigError, match="is not a Keras weights file"):
        load_settings(tiny_config(f"backbone.weights={path}"))
