"""The trial side of a sweep: one Hydra job trains one repeat of one Optuna trial.

It may run in the sweeper's process, a local worker process or a Slurm job on another
host: everything it needs arrives in ``settings.trial`` and the shared study storage.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

import optuna

from capsweep.cli.run import run_trial
from capsweep.model.capacity import CapacityReport
from capsweep.settings import CapsweepConfig, TrialContext
from capsweep.sweep.devices import VISIBLE
from capsweep.sweep.pruning import EpochReporter, make_pruner, study_pruner
from capsweep.sweep.study import RUN_ID_ATTR, open_storage, owner_tag, trial_handle
from capsweep.sweep.tuning import CONFIGURATION_ATTR, SEARCH


def quiet_console() -> None:
    """Show warnings and errors only on the console while this job runs.

    The sweeper prints one line per finished trial; the job's full log stays in its
    folder (Hydra's file handler), and Hydra configures logging afresh for every job.
    """
    for handler in logging.getLogger().handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.WARNING)


def job_tags(context: TrialContext, trial: optuna.Trial) -> dict[str, Any]:
    """The MLflow tags that place a job's run in its sweep: study, trial, repeat, params.

    A job of a tuned configuration belongs to the configuration's own study; its tags
    name the sweep's study and trial, whether it tried a candidate (``capsweep.tuning``
    search, with ``capsweep.candidate``) or confirmed one (confirm), and the
    configuration's params beside its own nuisance values.
    """
    if context.sweep_study is None:
        return {
            "capsweep.study": context.study_name,
            "capsweep.trial_number": context.number,
            "capsweep.repeat": context.repeat,
            **{f"capsweep.param.{name}": value for name, value in trial.params.items()},
        }
    configuration = trial.study.user_attrs.get(CONFIGURATION_ATTR) or {}
    params = {**(configuration.get("params") or {}), **trial.params}
    return {
        "capsweep.study": context.sweep_study,
        "capsweep.trial_number": context.configuration,
        "capsweep.repeat": context.repeat,
        "capsweep.tuning": context.role,
        **({"capsweep.candidate": context.number} if context.role == SEARCH else {}),
        **{f"capsweep.param.{name}": value for name, value in params.items()},
    }


def run_sweep_job(settings: CapsweepConfig) -> dict[str, Any]:
    """Train the trial and repeat named in ``settings.trial``; return its result for the sweeper.

    Returns:
        ``{"state": "COMPLETE" | "PRUNED", "metrics": {...}, "run_id": ...,
        "pruned_at_epoch": ..., "seconds": ...}``, seconds being the job's wall time.
    """
    if settings.trainer.verbose is None:  # epoch lines go to the job's log file only
        settings = dataclasses.replace(
            settings, trainer=dataclasses.replace(settings.trainer, verbose=0)
        )
    quiet_console()
    context = settings.trial
    if context.number is None or context.storage is None or context.study_name is None:
        raise ValueError(f"a sweep job needs trial.number, storage and study_name: {context}")
    storage = open_storage(context.storage)
    pruner = make_pruner(context.pruner, context.pruner_options or {})
    trial = trial_handle(storage, context.study_name, context.number, pruner=study_pruner(pruner))
    # Only a first repeat that a pruner judges reports its epochs: each report is a write
    # to the shared study (a lock and an fsync on a journal file).
    reporter = EpochReporter(
        trial,
        multi_objective=context.multi_objective,
        report=context.repeat == 0 and pruner is not None,
    )

    # A tuning job's trial (in its configuration's study) holds this one run; a repeat of a
    # sweep's trial is one of the trial's runs.
    slot = 0 if context.sweep_study is not None else context.repeat

    def created(run_id: str) -> None:
        # Recorded before anything else: a worker killed from here on leaves a run that
        # the study's recovery can end.
        trial.set_user_attr(RUN_ID_ATTR.format(repeat=slot), run_id)

    def started(run_id: str, report: CapacityReport) -> None:
        # Which process trained it, where, and on which GPU (CUDA_VISIBLE_DEVICES).
        trial.set_user_attr(
            f"capsweep.worker.{slot}",
            {**owner_tag(), "cuda_visible_devices": os.environ.get(VISIBLE)},
        )
        reporter.started(report.trainable_params)

    started_at = time.perf_counter()
    outcome = run_trial(
        settings,
        parent_run_id=context.parent_run_id,
        listeners=[reporter],
        extra_tags=job_tags(context, trial),
        run_name=context.job_name,
        on_run_created=created,
        on_started=started,
    )
    return {
        "state": outcome.state,
        "run_id": outcome.run_id,
        "metrics": outcome.metrics.scalars() if outcome.metrics else {},
        "pruned_at_epoch": outcome.pruned_at_epoch,
        "seconds": time.perf_counter() - started_at,
    }
