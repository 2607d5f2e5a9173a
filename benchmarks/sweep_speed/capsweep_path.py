"""The real path: ``capsweep -m`` in its own process, and what its MLflow runs recorded.

Each workload's search space is a sweep file of its own (written into the working folder
and found through ``hydra.searchpath``), so nothing of the shipped default sweep (its
nuisance tuning, its repeats) leaks into a workload that does not ask for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .options import Setup
from .processes import BIN, run_logged

STUDY = "speed"
RATE = "trainer.backbone_learning_rate"


def _choice(values: list[int] | list[float]) -> str:
    return f"choice({', '.join(str(value) for value in values)})"


def write_sweep_file(folder: Path, setup: Setup) -> str:
    """Write the workload's sweep into ``folder/sweep/``; return its name for ``sweep=``.

    grid: the capacity grid, one run per configuration, at the default rates. careful: the
    same grid, each configuration's backbone rate tuned over ``setup.rates`` (every rate
    tried once, the best confirmed ``setup.repeats`` times on fresh seeds; nothing tuned
    where nothing of the backbone trains). Repeats vary the seed only: KerasTuner's
    executions cannot redraw the validation images.
    """
    name = f"speed-{setup.workload}"
    lines = [
        "# @package _global_",
        "hydra:",
        "  sweeper:",
        f"    study_name: {STUDY}",
        "    sampler: grid",
        f"    repeats: {setup.repeats}",
        "    params:",
        f"      capacity.unfreeze: {_choice(setup.unfreeze)}",
        f"      head.depth: {_choice(setup.depths)}",
    ]
    if setup.workload == "careful":
        lines += [
            "    repeat_over: seed",
            "    nuisance:",
            f"      {RATE}: {_choice(setup.rates)}",
            f"    nuisance_trials: {len(setup.rates)}",
            "    nuisance_sampler: grid",
        ]
    else:
        lines.append("    nuisance: null  # one run per configuration at the default rates")
    (folder / "sweep").mkdir(parents=True, exist_ok=True)
    (folder / "sweep" / f"{name}.yaml").write_text("\n".join(lines) + "\n")
    return name


def workload_overrides(setup: Setup, data_dir: Path, sweeps: Path) -> list[str]:
    """The workload on the image folder, as ``capsweep -m`` overrides."""
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
    """Every trial run of a sweep in ``outputs/mlflow.db``, by start: times (s), metrics,
    and for a tuned sweep whether it was a candidate (search) or a confirmation (confirm)."""
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
                "rate": run.data.params.get(RATE),
                "tuning": tags.get("capsweep.tuning", ""),
                "cache": tags.get("capsweep.cache", "?"),
                "hit": tags.get("capsweep.cache_hit", ""),
                "start": run.info.start_time / 1000.0,
                "end": run.info.end_time / 1000.0,
                "metrics": dict(run.data.metrics),
            }
        )
    return sorted(trials, key=lambda trial: trial["start"])


def sweep_recommendation(outputs: Path) -> dict[str, Any] | None:
    """The recommendation.json the sweep wrote into its report folder (the latest sweep's)."""
    found = sorted(outputs.glob("multirun/*/*/report/recommendation.json"))
    if not found:
        return None
    recommendation: dict[str, Any] = json.loads(found[-1].read_text())
    return recommendation
