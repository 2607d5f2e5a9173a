"""One validation pass over the settings, before TensorFlow or MLflow is imported.

Each bad value is refused naming its key; keys the schema does not have are refused too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import load_settings, settings_from
from capsweep.settings import check_settings
from capsweep.settings.keys import schema_keys, unknown_keys


@pytest.fixture
def refusal(
    compose: Callable[..., DictConfig], tmp_path: Path
) -> Callable[..., CapsweepConfigError]:
    """The error that loading the composed overrides raises."""

    def refuse(*overrides: str) -> CapsweepConfigError:
        cfg = compose(f"paths.outputs={tmp_path}", *overrides)
        with pytest.raises(CapsweepConfigError) as raised:
            load_settings(cfg)
        return raised.value

    return refuse


@pytest.mark.parametrize(
    ("override", "key", "expected"),
    [
        ("head.depth=-1", "head.depth", "must be >= 0"),
        ("head.width=0", "head.width", "must be >= 1"),
        ("head.dropout=1.0", "head.dropout", "must be in [0, 1)"),
        ("trainer.epochs=0", "trainer.epochs", "must be >= 1"),
        ("trainer.batch_size=0", "trainer.batch_size", "must be >= 1"),
        ("trainer.learning_rate=0", "trainer.learning_rate", "must be positive"),
        ("trainer.backbone_learning_rate=-1", "trainer.backbone_learning_rate", "positive"),
        ("trainer.early_stopping_patience=-2", "trainer.early_stopping_patience", ">= 0"),
        ("trainer.verbose=3", "trainer.verbose", "is not a Keras verbosity"),
        ("data.val_fraction=1.5", "data.val_fraction", "must be between 0 and 1"),
        ("data.train_per_class=0", "data.train_per_class", "must be >= 1"),
        ("data.target_classes=[4,5]", "data.target_classes", "shares classes [4]"),
        ("data.num_classes=1", "data.num_classes", "must be >= 2"),
        ("capacity.unfreeze=-1", "capacity.unfreeze", "must be >= 0"),
        ("backbone.input_size=4", "backbone.input_size", "at least 8 pixels"),
        ("backbone.blocks_per_stage=0", "backbone.blocks_per_stage", "must be >= 1"),
        ("backbone.weights=imagenet", "backbone.weights", "small_resnet has no ImageNet"),
        ("backbone.pretrain.epochs=0", "backbone.pretrain.epochs", "must be >= 1"),
        ("tracking.experiment=''", "tracking.experiment", "must not be empty"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(
    refusal: Callable[..., CapsweepConfigError], override: str, key: str, expected: str
) -> None:
    error = refusal(override)

    assert error.key == key
    assert expected in str(error)
    assert str(error).startswith(f"{key}=")


def test_source_weights_need_the_digits_data(
    refusal: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    error = refusal("data=image_folder", f"data.path={tmp_path}", "backbone.weights=source")

    assert (error.key, error.value) == ("backbone.weights", "source")
    assert "needs data=digits" in str(error)


def test_a_missing_weights_file_is_refused_without_building(
    refusal: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.weights.h5"

    error = refusal(f"backbone.weights={missing}")

    assert (error.key, error.value) == ("backbone.weights", str(missing))
    assert "no such weights file" in str(error)


@pytest.mark.parametrize(
    ("override", "key", "suggestion"),
    [
        ("+trainer.epoch=5", "trainer.epoch", "did you mean trainer.epochs"),
        ("+backbone._target_=os.system", "backbone._target_", "is not a key"),
        ("+head.widht=3", "head.widht", "did you mean head.width"),
    ],
)
def test_a_key_added_that_the_schema_lacks_is_refused(
    refusal: Callable[..., CapsweepConfigError], override: str, key: str, suggestion: str
) -> None:
    error = refusal(override)

    assert error.key == key
    assert "is not a key of capsweep's configuration" in str(error)
    assert suggestion in str(error)


def test_every_shipped_default_passes_the_check(
    compose: Callable[..., DictConfig], tmp_path: Path
) -> None:
    settings = settings_from(compose(f"paths.outputs={tmp_path}"))

    check_settings(settings)  # raises on any refused value


def test_schema_keys_hold_sections_and_values_but_not_free_form_contents() -> None:
    keys = schema_keys()

    assert {"trainer", "trainer.epochs", "backbone.pretrain.epochs", "trial.pruner_options"} <= keys
    assert unknown_keys({"trial": {"pruner_options": {"anything": 1}}}) == []
    assert unknown_keys({"trainer": {"epoch": 5}, "extra": 1}) == ["trainer.epoch", "extra"]


def test_the_cli_refuses_a_bad_value_before_importing_tensorflow_or_mlflow(
    tmp_path: Path,
) -> None:
    # What makes a typo cost half a second instead of a TensorFlow import.
    code = (
        "import sys\n"
        "from capsweep.cli.app import main\n"
        f"sys.argv = ['capsweep', 'head.depth=-1', 'paths.outputs={tmp_path}']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exit:\n"
        "    heavy = [m for m in ('tensorflow', 'keras', 'mlflow') if m in sys.modules]\n"
        "    print(exit.code, ','.join(heavy) or 'none')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )

    assert result.stdout.splitlines()[-1].split() == ["2", "none"], result.stderr[-2000:]
    assert "capsweep: error: head.depth=-1: must be >= 0" in result.stderr
    assert not (tmp_path / "mlflow.db").exists()


def test_a_trial_context_survives_its_own_overrides(
    compose: Callable[..., DictConfig], tmp_path: Path
) -> None:
    from capsweep.settings import TrialContext

    context = TrialContext(
        number=3,
        repeat=2,
        storage="postgresql://user:p'w@host/db",
        study_name="it's a study",
        pruner="threshold",
        pruner_options={"lower": 1.1, "n_warmup_steps": 1},
        multi_objective=True,
        parent_run_id="abc123",
        gpus=[0, 2],
    )

    settings = settings_from(compose(f"paths.outputs={tmp_path}", *context.as_overrides()))

    assert settings.trial == context
