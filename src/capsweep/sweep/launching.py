"""Launch a batch of jobs so that one job that ends without a result loses no other's.

Hydra's submitit launcher waits for its jobs one after the other and raises the first
job's error: a Slurm job cancelled before it could write a result (scancel of a queued
job, a node failure, a SIGKILL) would end the whole sweep and lose the results of the
others. Here each job's end is collected on its own: a job with no result becomes a failed
:class:`JobReturn`, holding :class:`JobTerminated` when Slurm cancelled or preempted it
(the sweeper queues its configuration again) or submitit's error otherwise (a plain
failure: a timeout or out-of-memory kill would only happen again).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra.plugins.launcher import Launcher
from omegaconf import OmegaConf

from capsweep.signals import JobTerminated

log = logging.getLogger(__name__)

# Slurm states of a job stopped from outside, not by what it trained.
INTERRUPTED_STATES = ("CANCELLED", "PREEMPTED", "NODE_FAIL", "BOOT_FAIL", "REQUEUED")


def launch(
    launcher: Launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> Sequence[JobReturn]:
    """``launcher.launch``; with a submitit launcher, each job's end collected on its own."""
    try:
        from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
            BaseSubmititLauncher,
        )
    except ImportError:  # the cluster extra is not installed
        return launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
    if not isinstance(launcher, BaseSubmititLauncher):
        return launcher.launch(job_overrides, initial_job_idx=initial_job_idx)
    return _launch_submitit(launcher, job_overrides, initial_job_idx)


def _launch_submitit(
    launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
) -> list[JobReturn]:
    """hydra-submitit-launcher 1.2's ``BaseSubmititLauncher.launch``, except its last line:
    every job's result is read on its own (:func:`_result_of`)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    assert launcher.config is not None
    params = launcher.params
    specific_init_keys = {"max_num_timeout"}
    init_params = {"folder": params["submitit_folder"]}
    init_params.update(
        {f"{launcher._EXECUTOR}_{x}": y for x, y in params.items() if x in specific_init_keys}
    )
    init_keys = specific_init_keys | {"submitit_folder"}
    executor = submitit.AutoExecutor(cluster=launcher._EXECUTOR, **init_params)
    baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(
        **{
            x if x in baseparams else f"{launcher._EXECUTOR}_{x}": y
            for x, y in params.items()
            if x not in init_keys
        }
    )
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if "mode" in launcher.config.hydra.sweep:
        sweep_dir.chmod(int(str(launcher.config.hydra.sweep.mode), 8))
    job_params: list[Any] = []
    for offset, overrides in enumerate(job_overrides):
        index = initial_job_idx + offset
        log.info("\t#%d : %s", index, " ".join(filter_overrides(overrides)))
        job_params.append(
            (
                list(overrides),
                "hydra.sweep.dir",
                index,
                f"job_id_for_{index}",
                Singleton.get_state(),
            )
        )
    jobs = executor.map_array(launcher, *zip(*job_params, strict=True))
    return [_result_of(job, overrides) for job, overrides in zip(jobs, job_overrides, strict=True)]


def _result_of(job: Any, overrides: Sequence[str]) -> JobReturn:
    """The job's :class:`JobReturn`; a failed one when the job ended without a result."""
    from submitit.core.utils import FailedJobError, UncompletedJobError

    try:
        result: JobReturn = job.results()[0]
        return result
    except (UncompletedJobError, FailedJobError) as error:
        state = str(job.state)
        log.warning("Slurm job %s ended %s without a result", job.job_id, state)
        failed = JobReturn(overrides=list(overrides), status=JobStatus.FAILED)
        if state.startswith(INTERRUPTED_STATES):
            failed.return_value = JobTerminated(
                f"Slurm job {job.job_id} ended {state} without a result: cancelled or preempted"
            )
        else:
            failed.return_value = error
        return failed
