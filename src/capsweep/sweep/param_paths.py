"""Check that what a sweep varies or fixes names a real config key or config group."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capsweep.errors import CapsweepConfigError
from capsweep.settings.keys import schema_keys, unknown_key_error


def check_param_paths(
    config: DictConfig, params: Mapping[str, str], *, section: str = "params"
) -> None:
    """Raise when a swept or fixed parameter is neither a config key nor a config group.

    ``+key`` adds a key: it must be one the settings schema has, or every job would fail.
    ``section`` is the sweeper option the parameters came from, for messages.
    """
    groups = set(config.hydra.runtime.choices.keys())
    missing = object()
    for name, value in params.items():
        key = name.lstrip("+~")
        if key in groups or key.startswith("hydra."):
            continue
        if name.startswith("+"):
            if key not in schema_keys():
                raise unknown_key_error(key, value)
            continue
        if OmegaConf.select(config, key, default=missing) is missing:
            known = [*groups, *_leaf_keys(config)]
            close = difflib.get_close_matches(key, known, n=3)
            raise CapsweepConfigError(
                f"hydra.sweeper.{section}",
                name,
                "is not a key of the configuration",
                fix=f"did you mean {' or '.join(close)}?" if close else "see capsweep --cfg job",
            )


def _leaf_keys(config: DictConfig) -> list[str]:
    """Every dotted key of the job's configuration (Hydra's own node left out)."""
    plain = OmegaConf.to_container(config, resolve=False)
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                keys.append(f"{prefix}{key}")

    if isinstance(plain, dict):
        walk({key: value for key, value in plain.items() if key != "hydra"}, "")
    return keys
