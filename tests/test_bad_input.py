"""Bad input fails early and clearly: a CapsweepConfigError naming the key, the value received
and the fix, raised before any MLflow run exists."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.paths import CONF_DIR

SHIPPED_BACKBONES = sorted(path.stem for path in (CONF_DIR / "backbone").glob("*.yaml"))


@pytest.fixture
def refused(
    tiny_config: Callable[..., DictConfig],
    tracking_uri: str,
    runs_in: Callable[[str], list[Any]],
) -> Callable[..., CapsweepConfigError]:
    """Run the tiny trial with overrides; return the error it raised before recording."""

    def run(*overrides: str) -> CapsweepConfigError:
        from capsweep.cli.run import run_trial
        from capsweep.hydra_settings import load_settings

        with pytest.raises(CapsweepConfigError) as raised:
            run_trial(load_settings(tiny_config(*overrides)))
        assert runs_in(tracking_uri) == []
        return raised.value

    return run


def image_folder(root: Path, classes: dict[str, int]) -> Path:
    """Write ``count`` 4x4 PNGs into ``root/<class>/`` for each class."""
    from PIL import Image

    for index, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True)
        for number in range(count):
            color = (60 * index, 10 * number, 0)
            Image.new("RGB", (4, 4), color).save(root / name / f"{number}.png")
    return root


@pytest.mark.parametrize(
    ("override", "choices"),
    [
        ("backbone.name=nope", SHIPPED_BACKBONES),
        ("data.name=mnist", ["digits", "image_folder"]),
        ("trainer.optimizer=adamm", ["adam", "adamw", "sgd", "rmsprop"]),
        ("head.pooling=mean", ["avg", "max"]),
        ("cache.dtype=int8", ["float32", "float16"]),
    ],
)
def test_hydra_refuses_a_name_outside_its_set_while_composing(
    tiny_config: Callable[..., DictConfig], override: str, choices: list[str]
) -> None:
    from hydra.errors import HydraException

    with pytest.raises(HydraException) as raised:
        tiny_config(override)

    message = f"{raised.value} {raised.value.__cause__}"  # Hydra says why in the cause
    key, _, value = override.partition("=")
    assert f"Invalid value '{value}'" in message
    assert f"full_key: {key}" in message
    assert [name for name in choices if name not in message] == []


def test_settings_built_in_python_with_an_unknown_backbone_are_refused_naming_the_choices(
    tiny_config: Callable[..., DictConfig],
) -> None:
    from capsweep.hydra_settings import settings_from
    from capsweep.settings import check_settings

    settings = settings_from(tiny_config())
    settings.backbone.name = "nope"  # type: ignore[assignment]

    with pytest.raises(CapsweepConfigError) as raised:
        check_settings(settings)

    assert (raised.value.key, raised.value.value) == ("backbone.name", "nope")
    assert str(raised.value).startswith("backbone.name='nope': unknown backbone; choose one of: ")
    assert str(raised.value).endswith("; select one with backbone=<name>")
    assert [name for name in SHIPPED_BACKBONES if name not in str(raised.value)] == []


def test_unfreezing_more_units_than_the_backbone_has_names_the_maximum(
    refused: Callable[..., CapsweepConfigError],
) -> None:
    error = refused("capacity.unfreeze=7")  # small_resnet has 6 residual blocks

    assert (error.key, error.value) == ("capacity.unfreeze", 7)
    assert "has only 6 units of kind block" in str(error)
    assert "use capacity.unfreeze between 0 and 6" in str(error)


def test_negative_unfreeze_is_refused(refused: Callable[..., CapsweepConfigError]) -> None:
    error = refused("capacity.unfreeze=-1")

    assert (error.key, error.value) == ("capacity.unfreeze", -1)
    assert "must be >= 0" in str(error)
    assert "e.g. capacity.unfreeze=1" in str(error)


def test_non_integer_head_depth_is_refused_by_the_settings_check(
    tiny_config: Callable[..., DictConfig],
) -> None:
    # The schema refuses head.depth=1.5 at compose time; code that receives settings
    # directly (tests, other callers of the model) relies on check_settings.
    from capsweep.hydra_settings import settings_from
    from capsweep.settings import check_settings

    settings = settings_from(tiny_config())
    settings.head.depth = 1.5  # type: ignore[assignment]

    with pytest.raises(CapsweepConfigError) as raised:
        check_settings(settings)

    assert (raised.value.key, raised.value.value) == ("head.depth", 1.5)
    assert "must be a whole number" in str(raised.value)
    assert "e.g. head.depth=1" in str(raised.value)


def test_image_folder_without_a_path_asks_for_one(
    refused: Callable[..., CapsweepConfigError],
) -> None:
    error = refused("data=image_folder")

    assert (error.key, error.value) == ("data.path", None)
    assert "set data.path=/path/to/images" in str(error)


def test_missing_image_folder_is_refused(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    missing = tmp_path / "no_such_folder"

    error = refused("data=image_folder", f"data.path={missing}")

    assert (error.key, error.value) == ("data.path", str(missing))
    assert "is not a directory" in str(error)


def test_empty_image_folder_is_refused(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    (tmp_path / "images" / "cats").mkdir(parents=True)

    error = refused("data=image_folder", f"data.path={tmp_path / 'images'}")

    assert error.key == "data.path"
    assert "holds no class sub-folders with images" in str(error)
    assert "one sub-folder per class" in str(error)


def test_image_folder_with_one_class_is_refused(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    root = image_folder(tmp_path / "images", {"cats": 4})

    error = refused("data=image_folder", f"data.path={root}")

    assert error.key == "data.path"
    assert "has only one class with images (cats)" in str(error)
    assert "at least two class sub-folders" in str(error)


def test_image_folder_holding_an_unreadable_image_names_the_file(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    root = image_folder(tmp_path / "images", {"cats": 4, "dogs": 4})
    broken = root / "dogs" / "x.png"
    broken.write_text("not an image")

    error = refused("data=image_folder", f"data.path={root}")

    assert (error.key, error.value) == ("data.path", str(broken))
    assert "is not a readable image" in str(error)
    assert "remove or replace the file" in str(error)


def test_missing_weights_file_is_refused(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    missing = tmp_path / "nope.weights.h5"

    error = refused(f"backbone.weights={missing}")

    assert (error.key, error.value) == ("backbone.weights", str(missing))
    assert "no such weights file" in str(error)


@pytest.mark.filterwarnings("ignore:Skipping nested container:UserWarning")
def test_weights_of_another_architecture_are_refused(
    refused: Callable[..., CapsweepConfigError], tmp_path: Path
) -> None:
    from capsweep.model.backbones import small_resnet

    weights = tmp_path / "narrow.weights.h5"
    small_resnet((16, 16, 3), filters=(4, 8, 8)).save_weights(str(weights))

    # The trial builds small_resnet with the default filters (16, 32, 64).
    error = refused(f"backbone.weights={weights}")

    assert (error.key, error.value) == ("backbone.weights", str(weights))
    assert "does not fit backbone small_resnet at input size 16" in str(error)
    assert "use weights saved from the same architecture" in str(error)


def test_too_small_an_input_for_resnet50_names_the_minimum(
    refused: Callable[..., CapsweepConfigError],
) -> None:
    error = refused("backbone=resnet50", "backbone.weights=null", "backbone.input_size=16")

    assert (error.key, error.value) == ("backbone.input_size", 16)
    assert "resnet50 needs square images of at least 32 pixels" in str(error)
    assert "set backbone.input_size=32 or larger" in str(error)


def test_cli_reports_a_bad_value_in_one_line_and_exits_2_without_a_run(
    tmp_path: Path, runs_in: Callable[[str], list[Any]]
) -> None:
    outputs = tmp_path / "outputs"
    uri = f"sqlite:///{outputs}/mlflow.db"
    command = Path(sys.executable).parent / "capsweep"

    result = subprocess.run(
        [str(command), "head.depth=-1", f"paths.outputs={outputs}", f"tracking.uri={uri}"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        check=False,
    )

    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("capsweep:")]
    assert len(errors) == 1
    assert errors[0] == "capsweep: error: head.depth=-1: must be >= 0; e.g. head.depth=1"
    assert "Traceback" not in result.stderr
    assert runs_in(uri) == []
