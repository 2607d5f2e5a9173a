"""The report: every figure of a run, from results.json and each sweep's MLflow database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .capsweep_path import mlflow_trials
from .careful_report import careful_report
from .default_report import default_report
from .grid_report import accuracy_report, grid_targets
from .time_split import breakdown, lower_bound
from .trial_table import time_split_report, trial_table
from .tuner_path import tuner_executions

SWEEPS = {"cache_on": "cache on", "cache_off": "cache off"}
# What tuner / capsweep should reach: this share of the bound ratio (tuner wall / bound);
# for the careful workload, this or CAREFUL_SPEEDUP, whichever is lower.
BOUND_SHARE = 0.8
CAREFUL_SPEEDUP = 10.0
# The most of the cache-on wall that may go to anything but training steps and feature
# passes (the grid workload).
OUTSIDE_SHARE = 0.25


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}×" if denominator else "n/a"


def report(work: Path, results: dict[str, Any]) -> None:
    """Print every figure from ``results`` and the MLflow databases under ``work``."""
    setup = results["setup"]
    setup.setdefault("workload", "grid")  # results.json of the one-file script
    header(setup)
    analysed: dict[str, dict[str, Any]] = {
        name: analyse(results[name]) for name in ("cache_on", "cache_off") if name in results
    }
    ran = results.get("tuner")
    walls(analysed, ran)
    tuner = ran if ran and ran["returncode"] == 0 else None  # a failed search: its wall only
    ratios(analysed, tuner)
    for name, item in analysed.items():
        time_split_report(f"capsweep -m, {SWEEPS[name]}", item["run"], item["parts"])
    for name, item in analysed.items():
        trial_table(SWEEPS[name], item["run"], item["trials"])
    if setup["workload"] == "careful":
        careful_report(analysed, tuner)
    else:
        accuracy_report(analysed, tuner)
    if "cache_on" in analysed:
        bound_report(analysed["cache_on"], tuner, careful=setup["workload"] == "careful")
    if setup["workload"] == "grid":
        grid_targets(analysed, tuner)
    default_report({name: results[name] for name in results if name.startswith("default_")})


def analyse(run: dict[str, Any]) -> dict[str, Any]:
    """A ``capsweep -m`` run with its trials (from MLflow) and its time split."""
    trials = mlflow_trials(Path(run["outputs"]))
    return {"run": run, "trials": trials, "parts": breakdown(run, trials)}


def header(setup: dict[str, Any]) -> None:
    """What was run, on what data and weights, on which machine."""
    careful = setup["workload"] == "careful"
    configurations = len(setup["unfreeze"]) * len(setup["depths"])
    workload = (
        f"each configuration's backbone rate tuned over {setup['rates']}, the best run "
        f"{setup['repeats']} times on fresh seeds"
        if careful
        else "one run per configuration at the default rates"
    )
    print("\n" + "=" * 78)
    print(
        f"sweep_speed, workload {setup['workload']}: {setup['backbone']} at {setup['size']} px, "
        f"{setup['epochs']} epochs, batch {setup['batch_size']}, grid unfreeze "
        f"{setup['unfreeze']} {setup['unit']}s × head.depth {setup['depths']} "
        f"({configurations} configurations; {workload})"
    )
    split = (
        f" → {setup['n_train']} train / {setup['n_val']} val images" if setup.get("n_train") else ""
    )
    print(
        f"data: digits as an image folder, {setup['n_images']} PNGs, "
        f"val_fraction={setup['val_fraction']}, test_fraction={setup['test_fraction']}{split}"
    )
    weights = setup.get("weights", "null")
    described = (
        "null (Keras' random init)"
        if weights == "null"
        else f"random init, BatchNorm statistics calibrated on 512 training images ({weights})"
    )
    print(f"weights: {described}; no ImageNet weights (no download here)")
    print(f"machine: {setup['machine']}")
    print("=" * 78)


def walls(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """Each path's wall time and how many models it trained."""
    print("\nTotal wall (each in its own process, start-up included)")
    for name, item in analysed.items():
        run, trials = item["run"], item["trials"]
        print(
            f"  capsweep -m, {SWEEPS[name]:<9}             {run['wall']:7.1f} s   "
            f"({len(trials)} models trained, exit {run['returncode']})"
        )
    if tuner:
        executions = tuner_executions(tuner)
        print(
            f"  KerasTuner GridSearch (no cache)   {tuner['wall']:7.1f} s   "
            f"(search {tuner.get('search_seconds', float('nan')):.1f} s, "
            f"{len(executions)} models trained, exit {tuner['returncode']})"
        )


def ratios(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """The ratios of the walls, each reading one effect."""
    on, off = analysed.get("cache_on"), analysed.get("cache_off")
    print("\nRatios")
    if on and off:
        print(
            f"  cache-off / cache-on wall   {ratio(off['run']['wall'], on['run']['wall'])}"
            "   (the cache)"
        )
    if off and tuner:
        print(
            f"  tuner / cache-off wall      {ratio(tuner['wall'], off['run']['wall'])}"
            "   (the procedure, and KerasTuner's own costs)"
        )
    if on and tuner:
        print(f"  tuner / cache-on wall       {ratio(tuner['wall'], on['run']['wall'])}   (both)")
        if "search_seconds" in tuner:
            print(
                f"  tuner search only / cache-on wall  "
                f"{ratio(tuner['search_seconds'], on['run']['wall'])}"
            )


def bound_report(on: dict[str, Any], tuner: dict[str, Any] | None, *, careful: bool) -> None:
    """The lower bound of the cache-on sweep's work, what each wall is against it, and the
    targets."""
    wall, trials = on["run"]["wall"], on["trials"]
    if not trials:
        print("\nLower bound: the cache-on sweep recorded no finished trial")
        return
    feature, train = lower_bound(trials)
    bound = feature + train
    outside = wall - bound
    print(
        f"\nLower bound: feature passes + training steps of the {len(trials)} models "
        "capsweep trained with the cache on"
    )
    print(
        f"  {feature:.1f} s + {train:.1f} s = {bound:.1f} s; cache-on wall / bound = "
        f"{ratio(wall, bound)}"
    )
    print(
        f"  outside training steps and feature passes: {outside:.1f} s = "
        f"{100 * outside / wall:.1f} % of the cache-on wall"
    )
    print("\nTargets")
    if tuner and bound:
        achievable = tuner["wall"] / bound
        reached = tuner["wall"] / wall
        target = BOUND_SHARE * achievable
        print(
            f"  bound ratio, tuner wall / bound: {achievable:.2f}× (the most tuner / cache-on "
            f"could be, were nothing but training steps and feature passes left); "
            f"{BOUND_SHARE} × it = {target:.2f}×"
        )
        if careful:
            target = min(CAREFUL_SPEEDUP, target)
            wanted = f"min({CAREFUL_SPEEDUP:.0f}×, {BOUND_SHARE} × bound ratio)"
        else:
            wanted = f"{BOUND_SHARE} × bound ratio"
        print(
            f"  tuner / cache-on ≥ {wanted}:  {reached:.2f}× vs {target:.2f}×  "
            f"{'MET' if reached >= target else 'MISSED'}"
        )
    share = outside / wall
    verdict = "(for information)" if careful else ("MET" if share <= OUTSIDE_SHARE else "MISSED")
    print(
        f"  outside training+features ≤ {100 * OUTSIDE_SHARE:.0f} %:      {100 * share:.1f} %  "
        f"{verdict}"
    )
