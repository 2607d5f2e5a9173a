"""The Hydra Sweeper class; the sweep loop lives in :mod:`capsweep.sweep.loop`."""

from __future__ import annotations

import sys
from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

from hydra_plugins.capsweep_sweeper.options import CapsweepSweeperConf  # noqa: F401 (registers)


class CapsweepSweeper(Sweeper):
    """Optuna ask/tell over Hydra's launchers, with pruning and resume across processes."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.task_function: TaskFunction | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.task_function = task_function

    def sweep(self, arguments: list[str]) -> Any:
        from capsweep.errors import CapsweepConfigError
        from capsweep.sweep.sweep_plan import plan_sweep

        if self.config is None or self.hydra_context is None or self.task_function is None:
            raise RuntimeError("CapsweepSweeper.sweep() called before setup()")
        try:
            plan = plan_sweep(self.options, self.config, arguments)
            # MLflow loads with the loop, once every option has been checked.
            from capsweep.sweep.loop import SweepLoop

            return SweepLoop(plan, self.config, self.hydra_context, self.task_function).run()
        except CapsweepConfigError as error:
            # A one-line answer, not a traceback: the user has a value to fix.
            print(f"capsweep: error: {error}", file=sys.stderr)
            sys.exit(2)
