"""Bad sweep input fails before any trial starts, naming the key, the value and the fix.

The sweeper never imports TensorFlow, so each refusal takes seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent


def refuse(tmp_path: Path, *overrides: str) -> str:
    """Run ``capsweep -m`` with ``overrides``; assert it fails without training; return stderr."""
    outputs = tmp_path / "outputs"
    result = subprocess.run(
        [
            str(BIN / "capsweep"),
            "-m",
            f"paths.outputs={outputs}",
            f"tracking.uri=sqlite:///{outputs}/mlflow.db",
            *overrides,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode != 0
    assert not (outputs / "mlflow.db").exists(), "a run was recorded before the error"
    assert "Launching" not in result.stdout + result.stderr
    return result.stderr


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["hydra.sweeper.sampler=tpee"], "Invalid value 'tpee', expected one of [tpe, random"),
        (["hydra.sweeper.pruner=medain"], "Invalid value 'medain', expected one of [none, median"),
        (["hydra.sweeper.direction=maximise"], "'maximise': unknown direction"),
        (["hydra.sweeper.objectives=val_acc"], "'val_acc': unknown metric"),
        (["hydra.sweeper.repeat_over=seeds"], "expected one of [both, seed, split]"),
        (["head.depth=-1"], "head.depth=-1: must be >= 0"),
        (["head.depth=choice(-1,0)"], "head.depth=-1: must be >= 0"),
        (["data=image_folder"], "data.path=None: image_folder needs a directory"),
        (["trainer.seed=range(0,3)"], "repeats over both set trainer.seed themselves"),
        (["hydra.sweeper.repeats=0"], "hydra.sweeper.repeats=0: must be a whole number >= 1"),
        (
            ["+trainer.epoch=choice(1,2)"],
            "trainer.epoch='choice(1,2)': is not a key of capsweep's configuration",
        ),
        (["head.dpeth=choice(0,1)"], "is not a key of the configuration; did you mean head.depth"),
        (
            ["hydra.sweeper.sampler=grid", "trainer.learning_rate=interval(0.001,0.1)"],
            "grid sampler needs a finite set of values",
        ),
        (["sweep=head_only", "head.depth=1", "head.width=32"], "the search space is empty"),
        (
            [
                "hydra.sweeper.objectives=[val_accuracy,trainable_params]",
                "hydra.sweeper.direction=[maximize,minimize]",
                "hydra.sweeper.pruner=median",
                # With tuning the pruner judges each configuration's candidates by
                # val_accuracy alone, which it can.
                "hydra.sweeper.nuisance=null",
            ],
            "use hydra.sweeper.pruner=dominance",
        ),
        (
            ["hydra.sweeper.objectives=[val_accuracy,trainable_params]"],
            "gives 1 direction(s) for 2 objective(s)",
        ),
        (
            [
                "hydra.sweeper.objectives=overfit_gap",
                "hydra.sweeper.direction=minimize",
                "hydra.sweeper.pruner=median",
                "hydra.sweeper.nuisance=null",
            ],
            "prune the most accurate ones",
        ),
        (
            [
                "capacity.position=choice(0,4)",
                "capacity.unfreeze=choice(1,3)",
                "head.depth=0",
                "hydra.sweeper.nuisance=null",
            ],
            "capacity.position=4: with capacity.unfreeze=3 needs units 4–6",
        ),
        (
            ["hydra.sweeper.stale_after_seconds=0"],
            "hydra.sweeper.stale_after_seconds=0.0: must be a number of seconds > 0",
        ),
    ],
)
def test_bad_sweep_option_is_refused(tmp_path: Path, overrides: list[str], expected: str) -> None:
    assert expected in refuse(tmp_path, *overrides)


def test_unreachable_storage_is_refused_before_any_trial(tmp_path: Path) -> None:
    stderr = refuse(
        tmp_path, "hydra.sweeper.storage=postgresql://capsweep:secret@127.0.0.1:9/capsweep"
    )
    assert "cannot be reached" in stderr
    assert "secret" not in stderr


def test_sqlite_storage_with_several_workers_is_refused(tmp_path: Path) -> None:
    stderr = refuse(
        tmp_path,
        f"hydra.sweeper.storage=sqlite:///{tmp_path}/optuna.db",
        "hydra/launcher=joblib",
    )
    assert "SQLite cannot serve several workers" in stderr
    assert "postgresql://" in stderr


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="n_jobs=-1 is one worker on one CPU")
def test_joblibs_every_cpu_is_counted_as_workers_against_the_gpus(tmp_path: Path) -> None:
    stderr = refuse(
        tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=-1", "hydra.sweeper.gpus=[0]"
    )
    assert "hydra.launcher.n_jobs=-1: local workers would outnumber the GPUs [0]" in stderr


def test_mlflow_on_sqlite_with_parallel_trials_is_refused(tmp_path: Path) -> None:
    stderr = refuse(tmp_path, "hydra/launcher=joblib", "hydra.sweeper.n_jobs=2")
    assert "tracking.uri=" in stderr
    assert "MLflow on SQLite cannot serve several trials writing at once" in stderr
    assert "mlflow server" in stderr


def test_a_tracking_server_that_is_down_is_refused_before_any_trial(tmp_path: Path) -> None:
    stderr = refuse(tmp_path, "tracking.uri=http://127.0.0.1:9", "tracking.request_timeout=2")
    assert "tracking.uri='http://127.0.0.1:9'" in stderr
    assert not (tmp_path / "outputs" / "optuna").exists(), "the study was opened"


def test_joblibs_own_cpu_count_bounds_the_workers_it_starts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """joblib honours a CPU limit (LOKY_MAX_CPU_COUNT, affinity, cgroup quotas): one CPU
    allowed means n_jobs=-1 starts one worker, which one GPU serves."""
    from capsweep.sweep.sweep_plan import _local_workers

    monkeypatch.setenv("LOKY_MAX_CPU_COUNT", "1")

    assert _local_workers(-1) == 1
