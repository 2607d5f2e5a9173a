"""Hydra finds capsweep's sweeper, and finding it stays cheap."""

from __future__ import annotations

import subprocess
import sys

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper


def test_sweeper_plugin_is_discovered() -> None:
    names = [plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)]
    assert "CapsweepSweeper" in names


def test_discovery_imports_neither_tensorflow_nor_optuna_nor_mlflow() -> None:
    # Hydra imports every plugin at start-up, also on hosts that only launch trials.
    code = (
        "import sys\n"
        "from hydra.core.plugins import Plugins\n"
        "from hydra.plugins.sweeper import Sweeper\n"
        "Plugins.instance().discover(Sweeper)\n"
        "heavy = [m for m in ('tensorflow', 'keras', 'optuna', 'mlflow') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == ""


def test_sweeper_config_is_registered_under_hydra_sweeper() -> None:
    from hydra.core.config_store import ConfigStore

    import hydra_plugins.capsweep_sweeper.options  # noqa: F401

    assert "capsweep.yaml" in ConfigStore.instance().list("hydra/sweeper")
