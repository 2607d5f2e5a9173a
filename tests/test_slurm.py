"""Sweeps on a real Slurm cluster through Hydra's submitit launcher.

Skipped where no cluster answers; CI starts a one-node cluster (.ci/slurm-up.sh) and fails
these tests, rather than skipping them, if it is not there.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from capsweep.sweep import study as studies

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
BIN = Path(sys.executable).parent


def _slurm_answers() -> bool:
    if shutil.which("sinfo") is None:
        return False
    result = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30, check=False)
    return result.returncode == 0


@pytest.fixture(scope="module", autouse=True)
def _require_slurm() -> None:
    if not _slurm_answers():
        if os.environ.get("CI"):
            pytest.fail("no Slurm cluster answers: .ci/run starts one with .ci/slurm-up.sh")
        pytest.skip("no Slurm cluster answers (start one with .ci/slurm-up.sh)")


def test_sweep_trials_run_as_slurm_jobs(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    uri = f"sqlite:///{outputs}/mlflow.db"
    command = [
        str(BIN / "capsweep"), "-m",
        "hydra/launcher=submitit_slurm", "hydra.launcher.partition=debug",
        "hydra.launcher.timeout_min=15", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=4",
        "hydra.sweeper.n_jobs=2", "hydra.sweeper.n_trials=2", "hydra.sweeper.repeats=1",
        "backbone.weights=null", "backbone.input_size=8", "backbone.filters=[4,4,4]",
        "backbone.blocks_per_stage=1", "trainer.epochs=2", "trainer.verbose=0",
        "capacity.unfreeze=range(0,2)", "head.depth=choice(0,1)",
        f"paths.outputs={outputs}", f"tracking.uri={uri}",
    ]  # fmt: skip
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    storage = studies.open_storage(str(outputs / "optuna" / "capacity.journal"))
    trials = optuna.load_study(study_name="capacity", storage=storage).get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    jobs = {t.user_attrs["capsweep.worker.0"]["slurm_job_id"] for t in trials}
    assert None not in jobs and len(jobs) == 2  # each trial trained in its own Slurm job
    client = MlflowClient(uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.info.status for r in children) == ["FINISHED", "FINISHED"]
