"""Every default value has one home, the typed schema: ``conf/`` and ``sweeps/`` hold only
what a group's option or a sweep changes, so a default is changed in one place."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from omegaconf import DictConfig, OmegaConf

from capsweep.paths import CONF_DIR, SWEEPS_DIR
from capsweep.settings import CapsweepConfig, as_plain_dict
from hydra_plugins.capsweep_sweeper.options import CapsweepSweeperConf

GROUP_OPTIONS = sorted(CONF_DIR.glob("*/*.yaml"))
SWEEP_FILES = sorted(SWEEPS_DIR.glob("*.yaml"))


def leaves(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{dotted.key: value}`` (lists are values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(leaves(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def plain(value: Any) -> Any:
    """An Enum member as its name, as YAML writes it."""
    return value.name if hasattr(value, "name") and hasattr(value, "value") else value


def test_the_default_composition_is_the_schemas_defaults(
    compose: Callable[..., DictConfig],
) -> None:
    composed = OmegaConf.to_container(compose(), resolve=False, enum_to_str=True)
    assert isinstance(composed, dict)
    composed.pop("hydra", None)

    assert composed == as_plain_dict(CapsweepConfig())


def test_config_yaml_holds_only_the_defaults_list_and_hydras_settings() -> None:
    config = yaml.safe_load((CONF_DIR / "config.yaml").read_text())

    assert set(config) == {"defaults", "hydra"}


@pytest.mark.parametrize("path", GROUP_OPTIONS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_group_option_sets_no_value_the_schema_already_has(path: Path) -> None:
    defaults = leaves(as_plain_dict(CapsweepConfig())[path.parent.name])
    option = leaves(yaml.safe_load(path.read_text()) or {})

    repeated = {
        key: value for key, value in option.items() if key != "name" and defaults[key] == value
    }

    assert repeated == {}


@pytest.mark.parametrize("path", GROUP_OPTIONS, ids=lambda path: f"{path.parent.name}/{path.name}")
def test_a_group_option_is_named_for_its_file_or_the_one_it_varies(path: Path) -> None:
    """``data=digits`` sets ``data.name: digits``; a variant of it (``digits_noise``) keeps
    the loader's name and says what it changes after an underscore."""
    option = yaml.safe_load(path.read_text())

    assert path.stem == option["name"] or path.stem.startswith(f"{option['name']}_")


@pytest.mark.parametrize("path", SWEEP_FILES, ids=lambda path: path.name)
def test_a_sweep_file_sets_no_sweeper_option_to_its_default(path: Path) -> None:
    defaults = {
        item.name: plain(getattr(CapsweepSweeperConf(), item.name))
        for item in dataclasses.fields(CapsweepSweeperConf)
    }
    sweeper = yaml.safe_load(path.read_text())["hydra"]["sweeper"]

    repeated = {key: value for key, value in sweeper.items() if defaults[key] == value}

    assert repeated == {}
