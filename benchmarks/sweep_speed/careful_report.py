"""The careful workload: what each path trained, each configuration's tuned score, the picks.

The two paths do not train the same models. capsweep tries each rate once where the
backbone trains (nothing where ``unfreeze=0``: the rate has no effect there) and trains the
best ``repeats`` times on fresh seeds; KerasTuner trains every grid point × rate
``executions_per_trial`` times (with ``--tuner-skip-inert``, no rates where nothing of the
backbone trains). So the report counts each path's models, sets the walls against a
bound of each path's own work, and compares the picks each path makes.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from .capsweep_path import sweep_recommendation
from .time_split import metric
from .tuner_path import tuner_executions

Configuration = tuple[int, int]  # (unfreeze, head depth)


def _configuration(item: dict[str, Any]) -> Configuration:
    return int(item["unfreeze"]), int(item["depth"])


def _label(configuration: Configuration) -> str:
    return f"unfreeze={configuration[0]}, depth={configuration[1]}"


def _mean_se(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values) if values else float("nan")
    spread = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return mean, spread


def capsweep_scores(trials: list[dict[str, Any]]) -> dict[Configuration, dict[str, Any]]:
    """Per configuration: its candidate runs, its confirmations, the chosen rate and the
    mean val_accuracy of the confirmations."""
    scores: dict[Configuration, dict[str, Any]] = {}
    for trial in trials:
        entry = scores.setdefault(_configuration(trial), {"search": [], "confirm": []})
        entry["search" if trial["tuning"] == "search" else "confirm"].append(trial)
    for entry in scores.values():
        confirm = entry["confirm"]
        entry["rate"] = confirm[0]["rate"] if confirm and entry["search"] else None
        entry["score"] = _mean_se([metric(trial, "val_accuracy") for trial in confirm])
    return scores


def tuner_scores(executions: list[dict[str, Any]]) -> dict[Configuration, dict[float, list[float]]]:
    """Per configuration, per rate: the final val_accuracy of each execution."""
    scores: dict[Configuration, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for execution in executions:
        rate = float(execution["rate"])
        scores[_configuration(execution)][rate].append(float(execution["final_val_accuracy"]))
    return scores


def work_report(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """How many models each path trained, and its wall per model."""
    print("\nWhat each path trained")
    for name, item in analysed.items():
        scores = capsweep_scores(item["trials"])
        search = sum(len(entry["search"]) for entry in scores.values())
        confirm = sum(len(entry["confirm"]) for entry in scores.values())
        untuned = [_label(c) for c, entry in sorted(scores.items()) if not entry["search"]]
        models = search + confirm
        print(
            f"  capsweep, {name.replace('_', ' '):<9} {models:>3} models: {search} candidate runs "
            f"+ {confirm} confirmations; {item['run']['wall'] / max(models, 1):.1f} s a model"
        )
        if untuned:
            print(f"    no rate tried (the backbone does not train): {'; '.join(untuned)}")
    if tuner:
        executions = tuner_executions(tuner)
        inert = sum(1 for e in executions if int(e["unfreeze"]) == 0)
        print(
            f"  KerasTuner          {len(executions):>3} models: {tuner.get('grid_points', '?')} "
            f"grid points (configuration × rate) × executions; "
            f"{tuner['wall'] / max(len(executions), 1):.1f} s a model"
        )
        if inert:
            print(f"    of which {inert} where the rate has no effect (unfreeze=0)")


def tuned_table(on: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """Each configuration: capsweep's chosen rate and score beside the tuner's best rate."""
    capsweep = capsweep_scores(on["trials"])
    tuned = tuner_scores(tuner_executions(tuner)) if tuner else {}
    print("\nPer configuration: mean val_accuracy at the chosen rate (final epoch)")
    print(
        "  configuration         capsweep cache on: rate, mean ± std/√n    KerasTuner: best rate,"
        " its mean; each rate's mean"
    )
    for configuration in sorted(set(capsweep) | set(tuned)):
        entry = capsweep.get(configuration)
        left = "-"
        if entry:
            mean, spread = entry["score"]
            rate = f"{float(entry['rate']):.2g}" if entry["rate"] else "base"
            left = f"{rate:<6} {mean:.3f} ± {spread:.3f} (n={len(entry['confirm'])})"
        right = "-"
        if configuration in tuned:
            means = {
                rate: statistics.fmean(values) for rate, values in tuned[configuration].items()
            }
            best = max(means, key=lambda rate: means[rate])
            others = " / ".join(f"{means[rate]:.3f}" for rate in sorted(means))
            right = f"{best:<6.2g} {means[best]:.3f}; {others}"
        print(f"  {_label(configuration):<21} {left:<35} {right}")


def _pick(summary: dict[str, Any]) -> str:
    params = summary.get("params", {})
    chosen = (summary.get("tuning") or {}).get("chosen") or {}
    rate = chosen.get("trainer.backbone_learning_rate")
    metrics = summary.get("metrics", {})
    return (
        f"unfreeze={params.get('capacity.unfreeze')}, depth={params.get('head.depth')}"
        f" at {'rate ' + format(rate, 'g') if rate else 'the base rate'}: "
        f"{metrics.get('val_accuracy', float('nan')):.3f} ± "
        f"{metrics.get('standard_error') or float('nan'):.3f} (n={metrics.get('n')}), "
        f"{metrics.get('trainable_params', float('nan')):,.0f} trainable params"
    )


def picks(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """capsweep's recommendation and best by mean; the tuner's best by mean and its own."""
    print("\nWhat each path recommends")
    best_by_mean: tuple[str, str] | None = None
    for name, item in analysed.items():
        recommendation = sweep_recommendation(Path(item["run"]["outputs"]))
        if recommendation is None:
            print(f"  capsweep {name}: no recommendation.json in its report folder")
            continue
        print(f"  capsweep {name.replace('_', ' ')}, recommended: {_pick(recommendation)}")
        print(f"  capsweep {name.replace('_', ' ')}, best by mean: {_pick(recommendation['best'])}")
        if name == "cache_on":
            params = recommendation["best"]["params"]
            best_by_mean = (str(params["capacity.unfreeze"]), str(params["head.depth"]))
    executions = tuner_executions(tuner) if tuner else []
    if not executions or tuner is None:
        return
    means = {
        (configuration, rate): statistics.fmean(values)
        for configuration, rates in tuner_scores(executions).items()
        for rate, values in rates.items()
    }
    (configuration, rate), value = max(means.items(), key=lambda item: item[1])
    print(
        f"  KerasTuner, best by mean over its executions: {_label(configuration)} at rate "
        f"{rate:g}: {value:.3f}"
    )
    own = tuner.get("keras_tuner_best") or {}
    print(f"  KerasTuner's own pick (mean of each execution's best epoch): {own}")
    if best_by_mean:
        same = best_by_mean == (str(configuration[0]), str(configuration[1]))
        print(
            f"  the tuner's best is capsweep's best by mean: {'yes' if same else 'no'} "
            f"(capsweep: unfreeze={best_by_mean[0]}, depth={best_by_mean[1]})"
        )
    print(
        "  (capsweep's means are of confirmations on fresh seeds; the tuner's best mean is\n"
        "   the highest of its rates' means on the same seeds, biased upward)"
    )


def own_work_bound(on: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """The tuner's models at capsweep's cost: its own work's lower bound."""
    executions = tuner_executions(tuner) if tuner else []
    if not executions or tuner is None:
        return
    per_model: dict[Configuration, list[float]] = defaultdict(list)
    for trial in on["trials"]:
        per_model[_configuration(trial)].append(metric(trial, "fit_seconds"))
    features = sum(metric(trial, "feature_seconds") for trial in on["trials"])
    unknown = {_configuration(e) for e in executions} - set(per_model)
    if unknown:
        print(f"\nno capsweep runs of {sorted(unknown)}: no bound of the tuner's own work")
        return
    steps = sum(statistics.fmean(per_model[_configuration(e)]) for e in executions)
    bound = features + steps
    print(
        f"\nThe tuner's own work at capsweep's cost (cache on): its {len(executions)} models at "
        f"each configuration's training steps per model, + the feature passes"
    )
    print(
        f"  {features:.1f} s + {steps:.1f} s = {bound:.1f} s; tuner wall / that = "
        f"{tuner['wall'] / bound:.2f}× (what a cache alone could give the tuner's procedure)"
    )


def careful_report(analysed: dict[str, Any], tuner: dict[str, Any] | None) -> None:
    """Everything the careful workload adds to the report."""
    work_report(analysed, tuner)
    if "cache_on" in analysed:
        tuned_table(analysed["cache_on"], tuner)
    picks(analysed, tuner)
    if "cache_on" in analysed:
        own_work_bound(analysed["cache_on"], tuner)
