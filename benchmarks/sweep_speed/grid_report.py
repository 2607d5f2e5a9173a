"""The grid workload's accuracies: each path's best, and every configuration side by side."""

from __future__ import annotations

from typing import Any

from .tuner_path import tuner_executions

PATHS = ("cache_off", "cache_on", "tuner")


def best_val(trials: list[dict[str, Any]]) -> tuple[float, str]:
    """The best final val_accuracy of a sweep's trials, and its configuration."""
    if not trials:
        return float("nan"), "-"
    best = max(trials, key=lambda trial: trial["metrics"].get("val_accuracy", float("-inf")))
    return best["metrics"]["val_accuracy"], f"unfreeze={best['unfreeze']}, depth={best['depth']}"


def accuracy_report(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """Each path's best val_accuracy and, with the tuner, every configuration's."""
    print("\nBest val_accuracy (final epoch, inference mode)")
    for name, item in analysed.items():
        value, where = best_val(item["trials"])
        print(f"  capsweep {name.replace('_', '-'):<10} {value:.3f}  ({where})")
    executions = tuner_executions(tuner) if tuner else []
    if not executions:
        return
    best = max(executions, key=lambda e: e["final_val_accuracy"])
    best_epoch = max(e["best_epoch_val_accuracy"] for e in executions)
    print(
        f"  KerasTuner         {best['final_val_accuracy']:.3f}  (unfreeze={best['unfreeze']}, "
        f"depth={best['depth']}; its own objective, best epoch: {best_epoch:.3f})"
    )
    by_config: dict[tuple[str, str], dict[str, float]] = {}
    for name, item in analysed.items():
        for trial in item["trials"]:
            key = (str(trial["unfreeze"]), str(trial["depth"]))
            by_config.setdefault(key, {})[name] = trial["metrics"].get("val_accuracy", float("nan"))
    for execution in executions:
        key = (str(execution["unfreeze"]), str(execution["depth"]))
        by_config.setdefault(key, {})["tuner"] = execution["final_val_accuracy"]
    print("  per configuration (final epoch):   cache-off  cache-on  tuner")
    for key in sorted(by_config):
        row = by_config[key]
        values = " ".join(f"{row.get(name, float('nan')):9.3f}" for name in PATHS)
        print(f"    unfreeze={key[0]}, depth={key[1]:<18}{values}")
    print(
        "  (the tuner trains with cache-off's seed, initial weights and batches: a difference\n"
        "   between the two is TensorFlow's non-determinism, not another batch order)"
    )


def grid_targets(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """The grid workload's own target: the same best val_accuracy as the tuner."""
    on = analysed.get("cache_on")
    executions = tuner_executions(tuner) if tuner else []
    if not on or not executions or tuner is None:
        return
    value = best_val(on["trials"])[0]
    tuner_best = max(e["final_val_accuracy"] for e in executions)
    same = abs(value - tuner_best) <= 0.01
    print(
        f"  same best val_accuracy (±1 point):     {value:.3f} vs {tuner_best:.3f}  "
        f"{'MET' if same else 'MISSED'}"
    )
