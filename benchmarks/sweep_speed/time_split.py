"""Where a sweep's wall time went, from the timings each trial records in MLflow."""

from __future__ import annotations

import itertools
from typing import Any

# Per-trial timings, as capsweep records them (seconds; absent = 0).
TIMINGS = (
    "data_seconds",  # loading the split arrays (before the MLflow run opens)
    "build_seconds",  # building backbone + transfer model (before the run opens)
    "inputs_seconds",  # cache lookup, feature pass on a miss, suffix model
    "feature_seconds",  # the feature pass alone
    "compile_seconds",
    "trace_seconds",  # the first training step (tf.function tracing)
    "fit_seconds",  # training steps only
    "validation_seconds",  # per-epoch validation
    "fit_wall_seconds",  # model.fit as a whole
    "evaluate_seconds",  # final evaluation of train/val/test
)
STARTUP = "process start-up, sweep set-up"
BETWEEN = "between trials (Hydra job, Optuna, MLflow run)"
LOGGING = "in-run logging (MLflow, artifacts)"


def metric(trial: dict[str, Any], name: str) -> float:
    """A trial's recorded metric ``name`` (0 when it was not recorded)."""
    return float(trial["metrics"].get(name, 0.0))


def totals(trials: list[dict[str, Any]]) -> dict[str, float]:
    """Each timing summed over ``trials``."""
    return {name: sum(metric(trial, name) for trial in trials) for name in TIMINGS}


def breakdown(run: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, float]:
    """Where a sweep's wall time went, in seconds; the parts add up to the wall.

    A trial's MLflow run opens after its data are loaded and its model built (those two are
    timed by the trial itself) and closes after its results and artifacts are logged.
    """
    total = totals(trials)
    in_runs = sum(trial["end"] - trial["start"] for trial in trials)
    gaps = sum(later["start"] - earlier["end"] for earlier, later in itertools.pairwise(trials))
    first_start = trials[0]["start"] if trials else run["ended"]
    last_end = trials[-1]["end"] if trials else run["ended"]
    fit_other = total["fit_wall_seconds"] - (
        total["fit_seconds"] + total["trace_seconds"] + total["validation_seconds"]
    )
    in_run_timed = (
        total["inputs_seconds"]
        + total["compile_seconds"]
        + total["fit_wall_seconds"]
        + total["evaluate_seconds"]
    )
    # The data and the model are prepared before a trial's run opens: take them out of
    # the start-up (the first trial) and the gaps (the others) they happened in.
    before_runs = total["data_seconds"] + total["build_seconds"]
    first = (
        (metric(trials[0], "data_seconds") + metric(trials[0], "build_seconds")) if trials else 0
    )
    return {
        STARTUP: first_start - run["started"] - first,
        BETWEEN: gaps - (before_runs - first),
        "after the last trial (summary, exit)": run["ended"] - last_end,
        "data loading": total["data_seconds"],
        "model build": total["build_seconds"],
        "cache lookup + suffix": total["inputs_seconds"] - total["feature_seconds"],
        "feature pass": total["feature_seconds"],
        "compile": total["compile_seconds"],
        "trace (first step)": total["trace_seconds"],
        "training steps": total["fit_seconds"],
        "validation (per epoch)": total["validation_seconds"],
        "fit() other (callbacks, epoch ends)": fit_other,
        "final evaluation": total["evaluate_seconds"],
        LOGGING: in_runs - in_run_timed,
    }


def grouped(parts: dict[str, float], wall: float) -> dict[str, float]:
    """Five groups: build+trace, feature pass, training, evaluation, and the rest."""
    build = (
        parts["data loading"]
        + parts["model build"]
        + parts["cache lookup + suffix"]
        + parts["compile"]
        + parts["trace (first step)"]
    )
    groups = {
        "build + trace": build,
        "feature pass": parts["feature pass"],
        "training steps": parts["training steps"],
        "evaluation (per-epoch val + final)": parts["validation (per epoch)"]
        + parts["final evaluation"],
    }
    groups["logging/sweeper/other"] = wall - sum(groups.values())
    return groups


def lower_bound(trials: list[dict[str, Any]]) -> tuple[float, float]:
    """The work no sweep of these trials can skip: (feature passes, training steps), s."""
    total = totals(trials)
    return total["feature_seconds"], total["fit_seconds"]
