"""``capsweep``: the Hydra application that trains one capacity setting per job.

``capsweep`` trains the composed configuration once; ``capsweep -m`` runs a sweep, whose
jobs come back here with ``trial.number`` set.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import load_settings, register_configs
from capsweep.paths import CONF_DIR

log = logging.getLogger("capsweep")


def train(cfg: DictConfig) -> dict[str, Any]:
    """Run one trial of ``cfg``; return its final metrics, or a sweep job's result.

    Every setting is checked before TensorFlow or MLflow is imported, and a single run's
    tracking server before TensorFlow loads.
    """
    settings = load_settings(cfg)
    if settings.trial.number is None:  # a single run: refuse a dead server before TensorFlow
        from capsweep import tracking

        tracking.prepare_tracking(
            settings.tracking.uri,
            request_timeout=settings.tracking.request_timeout,
            max_retries=settings.tracking.max_retries,
        )
    if settings.trial.gpus:  # a sweep's local worker sees one GPU of its own, claimed
        from capsweep.sweep.devices import claim_gpu  # before TensorFlow loads

        claim_gpu(settings.trial.gpus)
    from capsweep.train.device import start_tensorflow

    growth = settings.trainer.gpu_memory_growth
    memory_growth = settings.trial.number is not None if growth is None else growth
    if settings.trial.number is not None:
        from capsweep.signals import job_signals

        # In a Slurm job, submitit ignores SIGTERM: take it back, so that scancel or
        # preemption ends the trial's run KILLED and hands the sweeper a result.
        with job_signals():
            # Before anything imports TensorFlow: its noise is dropped.
            start_tensorflow(memory_growth=memory_growth)
            from capsweep.cli.sweep_job import run_sweep_job

            return run_sweep_job(settings)
    start_tensorflow(memory_growth=memory_growth)  # once, without TensorFlow's noise
    from capsweep.cli.run import run_trial  # TensorFlow loads here, not for --help or typos

    outcome = run_trial(settings)
    return outcome.metrics.scalars() if outcome.metrics else {}


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _hydra_task(cfg: DictConfig) -> Any:
    try:
        return train(cfg)
    except CapsweepConfigError as error:
        if HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        log.error("%s", error)
        print(f"capsweep: error: {error}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Console entry point."""
    from capsweep.signals import install_signal_handlers

    register_configs()
    install_signal_handlers()
    _hydra_task()


if __name__ == "__main__":
    main()
