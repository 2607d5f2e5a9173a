"""The real path: ``capsweep -m`` in its own process, and what its MLflow runs recorded.

The grid is a sweep file of its own (written into the working folder and found through
``hydra.searchpath``), so nothing of the shipped default sweep (its nuisance tuning, its
repeats) leaks into it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .options import Setup
from .processes import BIN, run_logged

STUDY = "speed"


def _choice(values: list[int]) -> str:
    return f"choice({', '.join(str(value) for value in values)})"


def write_sweep_file(folder: Path, setup: Setup) -> str:
    """Write the capacity grid, one run per configuration at the default rates, into
    ``folder/sweep/``; return its name for ``sweep=``."""
    name = "speed-grid"
    lines = [
        "# @package _global_",
        "hydra:",
        "  sweeper:",
        f"    study_name: {STUDY}",
        "    sampler: grid",
        "    repeats: 1",
        "    params:",
        f"      capacity.unfreeze: {_choice(setup.unfreeze)}",
        f"      head.depth: {_choice(setup.depths)}",
        "    nuisance: null  # one run per configuration at the default rates",
    ]
    (folder / "sweep").mkdir(parents=True, exist_ok=True)
    (folder / "sweep" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return name


def workload_overrides(setup: Setup, data_dir: Path, sweeps: Path) -> list[str]:
    """The grid on the image folder, as ``capsweep -m`` overrides."""
    return [
        f"hydra.searchpath=[file://{sweeps}]",
        f"sweep={write_sweep_file(sweeps, setup)}",
        "data=image_folder",
        f"data.path={data_dir}",
        f"data.val_fraction={setup.val_fraction}",
        f"data.test_fraction={setup.test_fraction}",
        f"backbone={setup.backbone}",
        f"backbone.weights={setup.weights_file or 'null'}",
        f"backbone.input_size={setup.size}",
        f"capacity.unit={setup.unit}",
        f"trainer.epochs={setup.epochs}",
        "trainer.early_stopping_patience=null",
        f"trainer.batch_size={setup.batch_size}",
    ]


def run_capsweep(outputs: Path, overrides: list[str], label: str) -> dict[str, Any]:
    """``capsweep -m`` in its own process, with ``paths.outputs=outputs``; its wall time."""
    outputs.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "capsweep"), "-m", *overrides, f"paths.outputs={outputs}"]
    print(f"[{label}] {' '.join(command[1:])}", flush=True)
    returncode, started, ended = run_logged(command, outputs / "console.log", label)
    return {
        "label": label,
        "outputs": str(outputs),
        "started": started,
        "ended": ended,
        "wall": ended - started,
        "returncode": returncode,
    }


def mlflow_trials(outputs: Path) -> list[dict[str, Any]]:
    """Every trial run of a sweep in ``outputs/mlflow.db``: times (s) and metrics, by start."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("capsweep")
    if experiment is None:
        return []
    trials = []
    for run in client.search_runs([experiment.experiment_id], max_results=5000):
        tags = run.data.tags
        if "capsweep.trial_number" not in tags or run.info.end_time is None:
            continue
        trials.append(
            {
                "number": int(tags["capsweep.trial_number"]),
                "repeat": int(tags.get("capsweep.repeat", 0)),
                "unfreeze": tags.get("capsweep.unfreeze"),
                "depth": tags.get("capsweep.head_depth"),
                "cache": tags.get("capsweep.cache", "?"),
                "hit": tags.get("capsweep.cache_hit", ""),
                "start": run.info.start_time / 1000.0,
                "end": run.info.end_time / 1000.0,
                "metrics": dict(run.data.metrics),
            }
        )
    return sorted(trials, key=lambda trial: trial["start"])
