"""A trial stopped by SIGTERM or Ctrl-C ends its MLflow run KILLED, never RUNNING."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_training_ends_the_run_killed(tmp_path: Path, uri: str, signum: int) -> None:
    outputs = tmp_path / "outputs"
    experiment = f"signal-{signum}"
    process = subprocess.Popen(
        [
            str(BIN / "capsweep"),
            "backbone.weights=null",
            "backbone.input_size=8",
            "backbone.filters=[4,4,4]",
            "backbone.blocks_per_stage=1",
            "trainer.epochs=500",
            "trainer.early_stopping_patience=null",
            "trainer.verbose=2",
            f"paths.outputs={outputs}",
            f"tracking.uri={uri}",
            f"tracking.experiment={experiment}",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    for line in process.stdout:  # wait until training is under way
        if line.startswith("Epoch 3/") or time.monotonic() > deadline:
            break
    process.send_signal(signum)
    process.communicate(timeout=120)
    assert process.returncode != 0
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "KILLED"
