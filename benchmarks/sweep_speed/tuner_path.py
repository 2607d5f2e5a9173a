"""The peer: KerasTuner's GridSearch over the same workload, in a process of its own.

The parent side: what the worker (:mod:`.tuner_worker`) is asked to do, and what it
answers. Its wall time includes the process's start-up, as ``capsweep -m``'s does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .options import Setup
from .processes import run_logged, worker_command


def run_tuner_process(setup: Setup, data_dir: Path, work: Path) -> dict[str, Any]:
    """Run KerasTuner's GridSearch on the workload in a fresh process; its results.

    Returns:
        The worker's answer (``executions``: one entry per model trained, with its
        configuration, rate, execution and val_accuracy; ``search_seconds``; ...) with
        ``wall``, ``started``, ``ended`` and ``returncode``.
    """
    out = work / "tuner.json"
    spec = {
        **setup.as_dict(),
        "weights_file": setup.weights_file,
        "data_dir": str(data_dir),
        "directory": str(work / "tuner"),
        # Decoded once and memory-mapped, as capsweep's trials read the folder.
        "images_cache": str(work / "tuner" / "images"),
        "out": str(out),
    }
    print(
        f"[tuner] KerasTuner GridSearch ({setup.workload}, executions_per_trial="
        f"{setup.repeats}) in its own process",
        flush=True,
    )
    returncode, started, ended = run_logged(
        worker_command("tuner", spec), work / "tuner.log", "tuner"
    )
    timing = {"wall": ended - started, "started": started, "ended": ended}
    if returncode != 0:
        return {**timing, "returncode": returncode}
    result: dict[str, Any] = json.loads(out.read_text())
    return {**result, **timing, "returncode": 0}


def tuner_executions(tuner: dict[str, Any]) -> list[dict[str, Any]]:
    """Every model the tuner trained (a results.json of the one-file script had ``trials``,
    one execution each at the default rate)."""
    if "executions" in tuner:
        return list(tuner["executions"])
    return [{**trial, "rate": None, "execution": 0} for trial in tuner.get("trials", [])]
