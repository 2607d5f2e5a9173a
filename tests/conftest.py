"""Shared fixtures: configurations composed from the real ``conf/``, shrunk for a CPU.

Every file a test makes (MLflow database, artifacts, cached weights, Hydra run folders)
goes under pytest's temporary directories, never into the source tree. TensorFlow is
imported lazily, inside the fixtures that need it, so tests of the pure modules stay fast.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import pytest
from omegaconf import DictConfig

from capsweep.hydra_settings import register_configs
from capsweep.paths import CONF_DIR


def compose_config(*overrides: str) -> DictConfig:
    """Compose ``conf/config.yaml`` with Hydra overrides, as the ``capsweep`` command does."""
    register_configs()
    with hydra.initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra.compose(config_name="config", overrides=list(overrides))


def sqlite_uri(outputs: Path) -> str:
    return f"sqlite:///{outputs}/mlflow.db"


def tiny_trial_overrides(outputs: Path) -> list[str]:
    """A trial of the embedded default, small enough for seconds on a CPU.

    Random weights (no pretraining), 16-pixel digits, 5 training images per class, 2 epochs.
    """
    return [
        "backbone=small_resnet",
        "backbone.weights=null",
        "backbone.input_size=16",
        "data=digits",
        "data.train_per_class=5",
        "data.val_size=50",
        "trainer.epochs=2",
        "trainer.verbose=0",
        f"paths.outputs={outputs}",
        f"tracking.uri={sqlite_uri(outputs)}",
    ]


def recorded_runs(uri: str) -> list[Any]:
    """Every MLflow run in the SQLite store at ``uri``; none when the store was never made."""
    database = Path(uri.removeprefix("sqlite:///"))
    if not database.exists():
        return []
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_ids = [experiment.experiment_id for experiment in client.search_experiments()]
    return list(client.search_runs(experiment_ids)) if experiment_ids else []


@pytest.fixture(scope="session")
def compose() -> Callable[..., DictConfig]:
    """:func:`compose_config`, for tests."""
    return compose_config


@pytest.fixture(scope="session")
def runs_in() -> Callable[[str], list[Any]]:
    """:func:`recorded_runs`, for tests."""
    return recorded_runs


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    """A fresh ``paths.outputs`` folder."""
    folder = tmp_path / "outputs"
    folder.mkdir()
    return folder


@pytest.fixture
def tracking_uri(outputs: Path) -> str:
    return sqlite_uri(outputs)


@pytest.fixture
def tiny_config(outputs: Path) -> Callable[..., DictConfig]:
    """Compose the tiny trial configuration, plus any further overrides."""

    def make(*overrides: str) -> DictConfig:
        return compose_config(*tiny_trial_overrides(outputs), *overrides)

    return make


@pytest.fixture
def trial_settings(tiny_config: Callable[..., DictConfig]) -> Callable[..., Any]:
    """Checked settings of a tiny trial to run in this process (3 epochs, unfreeze=1, a
    hidden layer of 8, no artifacts), plus overrides; the feature cache's memory and the
    kept compiled models and probes are forgotten, so each test starts from what is on disk
    (nothing)."""
    from capsweep.hydra_settings import load_settings
    from capsweep.train.compiled_models import forget_kept_models
    from capsweep.train.feature_cache import forget_in_memory
    from capsweep.train.linear_probe import forget_kept_probes

    forget_in_memory()
    forget_kept_models()
    forget_kept_probes()

    def make(*overrides: str) -> Any:
        return load_settings(
            tiny_config(
                "trainer.epochs=3",
                "capacity.unfreeze=1",
                "head.depth=1",
                "head.width=8",
                "tracking.log_artifacts=false",
                *overrides,
            )
        )

    return make


@pytest.fixture
def weights_file(tmp_path: Path) -> Path:
    """Weights of the tiny trial's backbone (small_resnet, 16 px), as a user's file."""
    import keras

    from capsweep.model.backbones import build_backbone

    keras.utils.set_random_seed(7)
    path = tmp_path / "backbone.weights.h5"
    build_backbone("small_resnet", 16, None).save_weights(path)
    return path


@pytest.fixture(scope="session")
def source_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedded default's source-pretrained weights, in a temporary ``paths.outputs``.

    Pretrains the default small_resnet on digits 0-4 once per session (~2.5 min on 2 cores);
    only the slow tests use it. The outputs folder is ``source_weights.parents[1]``.
    """
    from capsweep.settings import BackboneConfig, DataConfig
    from capsweep.train.pretrain import ensure_source_weights

    outputs = tmp_path_factory.mktemp("pretrained_outputs")
    return ensure_source_weights(BackboneConfig(), DataConfig(), str(outputs))


@pytest.fixture(scope="module")
def random_backbone() -> Callable[[str], Any]:
    """Build each backbone (random weights, 32 px) at most once per test module."""
    from capsweep.model.backbones import build_backbone

    built: dict[str, Any] = {}

    def get(name: str) -> Any:
        if name not in built:
            built[name] = build_backbone(name, 32, None)
        return built[name]

    return get
