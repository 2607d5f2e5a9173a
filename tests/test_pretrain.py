"""The embedded default's source pretraining: cached safely, and good enough to transfer."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.settings import BackboneConfig, DataConfig

TINY_FILTERS = (2, 2, 2)


class Killed(BaseException):
    """Stands for the process being killed mid-write."""


@pytest.fixture
def fake_pretraining(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the 30-epoch pretraining by a tiny untrained backbone at accuracy 1.0.

    Returns the list of models it handed out, one per pretraining.
    """
    from capsweep.model.backbones import small_resnet
    from capsweep.train import pretrain

    made: list[Any] = []

    def instant(backbone: BackboneConfig, data: DataConfig) -> tuple[Any, float]:
        made.append(small_resnet((8, 8, 3), filters=TINY_FILTERS))
        return made[-1], 1.0

    monkeypatch.setattr(pretrain, "_pretrain", instant)
    return made


def test_pretraining_killed_while_saving_leaves_no_weights_file_a_later_run_would_trust(
    tmp_path: Path, fake_pretraining: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    import keras

    from capsweep.train.pretrain import ensure_source_weights, source_weights_path

    def killed_while_saving(model: Any, filepath: str, *args: Any, **kwargs: Any) -> None:
        Path(filepath).write_bytes(b"the first bytes of a weights file")
        raise Killed

    monkeypatch.setattr(keras.Model, "save_weights", killed_while_saving)

    with pytest.raises(Killed):
        ensure_source_weights(BackboneConfig(), DataConfig(), str(tmp_path))

    written = sorted(path.name for path in (tmp_path / "pretrained").iterdir())
    # The partial file is removed when the process can still act; if not (SIGKILL), it
    # stays under a temporary name that no run looks for.
    assert all(name.startswith(".") and ".tmp" in name for name in written)
    assert not source_weights_path(BackboneConfig(), DataConfig(), str(tmp_path)).exists()


def test_a_leftover_temporary_file_is_ignored_and_pretraining_runs_again(
    tmp_path: Path, fake_pretraining: list[Any]
) -> None:
    from capsweep.model.backbones import build_backbone
    from capsweep.train.pretrain import ensure_source_weights, source_accuracy, source_weights_path

    final = source_weights_path(BackboneConfig(), DataConfig(), str(tmp_path))
    final.parent.mkdir(parents=True)
    leftover = final.with_name(f".{final.stem}.12345.tmp.weights.h5")
    leftover.write_bytes(b"the first bytes of a weights file")

    path = ensure_source_weights(BackboneConfig(), DataConfig(), str(tmp_path))

    assert path == final
    assert len(fake_pretraining) == 1
    assert source_accuracy(path) == 1.0
    build_backbone("small_resnet", 8, str(path), filters=TINY_FILTERS)  # loads cleanly


def test_cached_weights_are_used_without_pretraining_again(
    tmp_path: Path, fake_pretraining: list[Any]
) -> None:
    from capsweep.train.pretrain import ensure_source_weights

    first = ensure_source_weights(BackboneConfig(), DataConfig(), str(tmp_path))
    second = ensure_source_weights(BackboneConfig(), DataConfig(), str(tmp_path))

    assert first == second
    assert len(fake_pretraining) == 1


def test_pretraining_below_the_minimum_accuracy_writes_no_weights_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from capsweep.model.backbones import small_resnet
    from capsweep.train import pretrain

    monkeypatch.setattr(
        pretrain,
        "_pretrain",
        lambda backbone, data: (small_resnet((8, 8, 3), filters=TINY_FILTERS), 0.5),
    )

    with pytest.raises(RuntimeError, match=r"raise backbone\.pretrain\.epochs"):
        pretrain.ensure_source_weights(BackboneConfig(), DataConfig(), str(tmp_path))

    assert list((tmp_path / "pretrained").iterdir()) == []


@pytest.mark.parametrize(
    "change",
    [
        {"filters": [8, 16, 32]},
        {"input_size": 24},
        {"blocks_per_stage": 1},
        {"pretrain": dataclasses.replace(BackboneConfig().pretrain, epochs=5)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_weights_are_cached_under_a_name_that_changes_with_the_recipe(
    tmp_path: Path, change: dict[str, Any]
) -> None:
    from capsweep.train.pretrain import source_weights_path

    default = source_weights_path(BackboneConfig(), DataConfig(), str(tmp_path))
    changed = source_weights_path(
        dataclasses.replace(BackboneConfig(), **change), DataConfig(), str(tmp_path)
    )

    assert changed != default
    assert default == source_weights_path(BackboneConfig(), DataConfig(), str(tmp_path))


def test_source_pretraining_needs_the_digits_data(tmp_path: Path) -> None:
    from capsweep.train.pretrain import ensure_source_weights

    with pytest.raises(CapsweepConfigError, match="needs data=digits, not data=image_folder"):
        ensure_source_weights(
            BackboneConfig(), DataConfig(name="image_folder", path="x"), str(tmp_path)
        )


# the real pretraining (slow: ~2.5 min on 2 cores, once per session)


@pytest.mark.slow
def test_default_backbone_reaches_95_percent_source_accuracy_in_inference_mode(
    source_weights: Path,
) -> None:
    from capsweep.train.pretrain import source_accuracy

    assert source_accuracy(source_weights) >= 0.95


@pytest.mark.slow
def test_head_only_transfer_from_the_default_backbone_beats_chance_clearly(
    source_weights: Path,
    compose: Callable[..., DictConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings
    from capsweep.train import pretrain

    def no_second_pretraining(*args: Any) -> Any:
        raise AssertionError("the cached source weights were not reused")

    monkeypatch.setattr(pretrain, "_pretrain", no_second_pretraining)
    outputs = source_weights.parents[1]
    cfg = compose(
        "capacity.unfreeze=0",
        "head.depth=0",
        "trainer.verbose=0",
        f"paths.outputs={outputs}",
        f"tracking.uri=sqlite:///{outputs}/mlflow.db",
    )

    outcome = run_trial(load_settings(cfg))

    # 5 target classes: chance is 0.2. Seen here: 0.43-0.46 (FINDINGS.md).
    assert outcome.metrics.val_accuracy >= 0.35
