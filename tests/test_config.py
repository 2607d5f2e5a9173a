"""Every shipped config composes into the typed schema; mistakes fail at compose time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.errors import HydraException
from omegaconf import DictConfig

from capsweep.hydra_settings import settings_from
from capsweep.paths import CONF_DIR
from capsweep.settings import CapsweepConfig, Unit

# Options that must be set for a group's config to describe something runnable.
REQUIRED = {("data", "image_folder"): ["data.path=/some/images"]}

GROUP_OPTIONS = sorted(
    (folder.name, path.stem)
    for folder in CONF_DIR.iterdir()
    if folder.is_dir()
    for path in folder.glob("*.yaml")
)


def test_every_config_group_is_covered() -> None:
    assert {group for group, _ in GROUP_OPTIONS} == {"backbone", "data"}


@pytest.mark.parametrize(("group", "option"), GROUP_OPTIONS, ids=lambda value: str(value))
def test_config_group_option_composes_into_the_schema(
    compose: Callable[..., DictConfig], group: str, option: str, tmp_path: Path
) -> None:
    cfg = compose(
        f"{group}={option}", f"paths.outputs={tmp_path}", *REQUIRED.get((group, option), [])
    )

    settings = settings_from(cfg)

    assert isinstance(settings, CapsweepConfig)


def test_default_config_is_the_embedded_small_resnet_on_digits(
    compose: Callable[..., DictConfig], tmp_path: Path
) -> None:
    settings = settings_from(compose(f"paths.outputs={tmp_path}"))

    assert (settings.backbone.name, settings.backbone.weights) == ("small_resnet", "source")
    assert settings.data.name == "digits"
    assert settings.capacity.unit is Unit.block
    assert settings.tracking.uri == f"sqlite:///{tmp_path}/mlflow.db"


@pytest.fixture
def compose_error(compose: Callable[..., DictConfig]) -> Callable[..., str]:
    """The text of the error that composing the overrides raises, causes included."""

    def error_of(*overrides: str) -> str:
        with pytest.raises(HydraException) as raised:
            compose(*overrides)
        error: BaseException | None = raised.value
        parts = []
        while error is not None:
            parts.append(str(error))
            error = error.__cause__
        return "\n".join(parts)

    return error_of


def test_a_misspelt_key_fails_at_compose_time_naming_it(compose_error: Callable[..., str]) -> None:
    message = compose_error("head.widht=3")

    assert "head.widht" in message


def test_a_value_of_the_wrong_type_fails_at_compose_time_naming_the_key(
    compose_error: Callable[..., str],
) -> None:
    message = compose_error("trainer.epochs=abc")

    assert "trainer.epochs" in message
    assert "'abc'" in message


def test_a_non_integer_head_depth_fails_at_compose_time_naming_the_key(
    compose_error: Callable[..., str],
) -> None:
    message = compose_error("head.depth=1.5")

    assert "head.depth" in message
    assert "1.5" in message


def test_an_unknown_unit_fails_at_compose_time_naming_the_allowed_values(
    compose_error: Callable[..., str],
) -> None:
    message = compose_error("capacity.unit=blok")

    assert "capacity.unit" in message
    assert "'blok'" in message
    assert "block, weighted_layer, layer" in message
