"""Hydra's side of the settings: register the schema, and turn a composed config into settings."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from capsweep.errors import CapsweepConfigError
from capsweep.paths import CONF_DIR, SWEEPS_DIR
from capsweep.settings import CapsweepConfig, check_settings
from capsweep.settings.keys import unknown_key_error, unknown_keys


def _unique_suffix() -> str:
    return f"{os.getpid()}-{secrets.token_hex(2)}"


def register_configs() -> None:
    """Register the schema with Hydra's ConfigStore (``conf/config.yaml`` extends it).

    Also registers ``${capsweep_unique:}``, a per-process suffix that keeps the output
    folders of runs started in the same second apart.
    """
    store = ConfigStore.instance()
    store.store(name="capsweep_schema", node=CapsweepConfig)
    for path in sorted(SWEEPS_DIR.glob("*.yaml")):
        # Search spaces live in sweeps/ at the top of the project; `sweep=<name>` picks one.
        store.store(group="sweep", name=path.stem, node=OmegaConf.load(path), package="_global_")
    if not OmegaConf.has_resolver("capsweep_unique"):
        OmegaConf.register_new_resolver("capsweep_unique", _unique_suffix, use_cache=True)


def compose_config(overrides: Sequence[str], *, return_hydra_config: bool = False) -> DictConfig:
    """Compose ``conf/config.yaml`` with ``overrides``, as the ``capsweep`` command does.

    For the commands that compose through Hydra's API (``capsweep-plan``,
    ``capsweep-report``), where Hydra does not print its own refusal.

    Raises:
        CapsweepConfigError: Hydra refused an override (a wrong type, a name outside an
            Enum, an unknown group option), with Hydra's reason in one line.
    """
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(
                config_name="config",
                overrides=list(overrides),
                return_hydra_config=return_hydra_config,
            )
    except (HydraException, OmegaConfBaseException) as error:
        raise composition_error(error, overrides) from None


def composition_error(error: BaseException, overrides: Sequence[str]) -> CapsweepConfigError:
    """Hydra's refusal of an override as one line naming the key, the value and the reason."""
    reason = error.__cause__ or error
    lines = [line.strip() for line in str(reason).splitlines() if line.strip()]
    full_key = next((line.split(":", 1)[1].strip() for line in lines if "full_key:" in line), "")
    written = {item.partition("=")[0].lstrip("+~"): item.partition("=")[2] for item in overrides}
    if full_key:
        return CapsweepConfigError(full_key, written.get(full_key, "?"), lines[0])
    summary = re.sub(r"\s+", " ", " ".join(lines))
    return CapsweepConfigError("overrides", list(overrides), summary)


def settings_from(cfg: DictConfig) -> CapsweepConfig:
    """Hydra's composed config as typed settings.

    Raises:
        CapsweepConfigError: the config holds a key the schema does not have (added with
            ``+key=value``), which would otherwise be dropped without a word.
    """
    tree = OmegaConf.to_container(cfg, resolve=False)
    if isinstance(tree, dict):
        composed = {str(key): value for key, value in tree.items() if key != "hydra"}
        for key in unknown_keys(composed):
            raise unknown_key_error(key, OmegaConf.select(cfg, key, throw_on_missing=False))
    settings = OmegaConf.to_object(cfg)
    if not isinstance(settings, CapsweepConfig):
        raise TypeError(f"expected a config built on capsweep_schema, got {type(settings)}")
    return settings


def load_settings(cfg: DictConfig) -> CapsweepConfig:
    """Typed settings, every value checked: the one validation pass before TensorFlow loads."""
    settings = settings_from(cfg)
    check_settings(settings)
    return settings
