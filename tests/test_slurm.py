"""Sweeps on a real Slurm cluster through Hydra's submitit launcher.

Skipped where no cluster answers; CI starts a one-node cluster (.ci/slurm-up.sh) and fails
these tests, rather than skipping them, if it is not there. Trials run as Slurm jobs at
the same time write to MLflow together, so they record on a real ``mlflow server`` (MLflow
on SQLite refuses several writers).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from mlflow_server import MlflowServer, start_mlflow_server
from slurm_cluster import node_cpus, require_slurm, wait_for_job, wait_for_pending
from sweep_workers import (
    BIN,
    LONG_TRIALS,
    STARTS_TRAINING_WITHIN,
    TRAINING_ATTR,
    UNTUNED,
    children,
    end_worker,
    load,
    run,
    start_worker,
    sweep_command,
    tail,
    training_trials,
    wait_for_exit,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.heavy]
SLURM = [
    "hydra/launcher=submitit_slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.timeout_min=15",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=2",
]


@pytest.fixture(scope="module", autouse=True)
def _require_slurm() -> None:
    require_slurm()


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[MlflowServer]:
    server = start_mlflow_server(tmp_path / "server")
    yield server
    server.stop()


def test_sweep_trials_run_as_slurm_jobs(tmp_path: Path, mlflow_server: MlflowServer) -> None:
    outputs = tmp_path / "outputs"
    uri = mlflow_server.uri
    command = [
        str(BIN / "capsweep"), "-m", *SLURM,
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.repeats=1",
        "backbone.weights=null", "backbone.input_size=8", "backbone.filters=[4,4,4]",
        "backbone.blocks_per_stage=1", "trainer.epochs=2", "trainer.verbose=0",
        "capacity.unfreeze=range(0,2)", "head.depth=choice(0,1)",
        f"paths.outputs={outputs}", f"tracking.uri={uri}",
        *UNTUNED,  # one job per trial: each trial's worker is its Slurm job
    ]  # fmt: skip
    result = run(command, tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    trials = load(outputs, "capacity").get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    jobs = {t.user_attrs["capsweep.worker.0"]["slurm_job_id"] for t in trials}
    assert None not in jobs and len(jobs) == 2  # each trial trained in its own Slurm job
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    trial_runs = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.status for r in trial_runs) == ["FINISHED", "FINISHED"]


def test_a_cancelled_trial_job_ends_killed_and_its_configuration_is_trained_again(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    """scancel of a training trial's job, as on preemption (SIGCONT + SIGTERM, SIGKILL
    after KillWait): its run ends KILLED, the trial FAIL, its parameters are queued again
    and trained to the end, and the sweep finishes."""
    outputs, uri, study = tmp_path / "outputs", mlflow_server.uri, f"cancel-{uuid.uuid4().hex[:6]}"
    command = sweep_command(
        outputs, uri, study, *LONG_TRIALS, "trainer.epochs=100", *SLURM,
        "hydra.sweeper.n_trials=2", "capacity.unfreeze=choice(0,1)", "head.depth=0",
    )  # fmt: skip
    log = tmp_path / "sweep.log"
    sweep = start_worker(command, tmp_path, log)
    try:
        deadline = time.monotonic() + STARTS_TRAINING_WITHIN
        while not (caught := training_trials(outputs, study, sweep.pid)):
            if sweep.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no trial started training in a Slurm job:\n{tail(log)}")
            time.sleep(0.2)
        victim = caught[0]
        job = victim.user_attrs[TRAINING_ATTR]["slurm_job_id"]
        assert job, victim.user_attrs
        subprocess.run(["scancel", job], check=True, timeout=60)
        wait_for_exit(sweep, log, "the sweep")
    finally:
        end_worker(sweep)
    assert wait_for_job(job, 1, within=60)[job].startswith("CANCELLED")
    trials = {t.number: t for t in load(outputs, study).get_trials()}
    cancelled = trials[victim.number]
    assert cancelled.state == TrialState.FAIL
    assert "SIGTERM" in cancelled.user_attrs["capsweep.error.0"]
    again = [t for t in trials.values() if t.user_attrs.get(studies.REQUEUED_ATTR) == victim.number]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    assert again[0].params == cancelled.params
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == 2
    assert len(trials) == 3
    statuses = {r.data.tags["capsweep.trial_number"]: r.info.status for r in children(uri, study)}
    assert statuses == {
        str(victim.number): "KILLED",
        **{str(t.number): "FINISHED" for t in trials.values() if t.state == TrialState.COMPLETE},
    }


def test_a_trial_whose_job_is_cancelled_while_queued_is_trained_again(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    """A job cancelled before it starts writes no result: the sweep neither stops nor
    loses the other job's result; the trial FAILs and its parameters train again."""
    outputs, uri, study = tmp_path / "outputs", mlflow_server.uri, f"queued-{uuid.uuid4().hex[:6]}"
    # Two jobs each asking for all the node's CPUs: the second waits while the first trains.
    command = sweep_command(
        outputs, uri, study, *LONG_TRIALS, "trainer.epochs=100", *SLURM,
        f"hydra.launcher.cpus_per_task={node_cpus()}",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2",
        "capacity.unfreeze=choice(0,1)", "head.depth=0",
    )  # fmt: skip
    log = tmp_path / "sweep.log"
    sweep = start_worker(command, tmp_path, log)
    try:
        deadline = time.monotonic() + STARTS_TRAINING_WITHIN
        while not training_trials(outputs, study, sweep.pid):
            if sweep.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"no trial started training in a Slurm job:\n{tail(log)}")
            time.sleep(0.2)
        # submitit submits a batch as a job array, a folder per task (<array job>_<task>).
        tasks = sorted(p.name for p in outputs.glob("multirun/*/*/.submitit/*_*") if p.is_dir())
        queued = wait_for_pending(tasks, within=60)
        subprocess.run(["scancel", queued], check=True, timeout=60)
        wait_for_exit(sweep, log, "the sweep")
    finally:
        end_worker(sweep)
    trials = {t.number: t for t in load(outputs, study).get_trials()}
    (lost,) = [t for t in trials.values() if t.state == TrialState.FAIL]
    assert "CANCELLED" in lost.user_attrs["capsweep.error.0"]
    again = [t for t in trials.values() if t.user_attrs.get(studies.REQUEUED_ATTR) == lost.number]
    assert len(again) == 1 and again[0].state == TrialState.COMPLETE
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) == 2
