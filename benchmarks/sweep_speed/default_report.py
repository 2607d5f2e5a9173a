"""The default ``capsweep -m`` (small_resnet on the embedded digits, sweeps/capacity.yaml):
cold, warm, and warm with the cache off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .capsweep_path import mlflow_trials
from .time_split import BETWEEN, LOGGING, STARTUP, breakdown, grouped, lower_bound

# The default sweep tunes each configuration's learning rate (50 jobs): at most 3
# minutes with the pretrained weights cached, 4 on a fresh clone (pretraining included).
TARGETS = {"default_cold": 240.0, "default_warm": 180.0, "default_warm_off": 180.0}
TITLES = {
    "default_cold": "cold, cache on (pretraining included)",
    "default_warm": "pretrained weights cached, cache on",
    "default_warm_off": "pretrained weights cached, cache off",
}


def default_line(name: str, run: dict[str, Any], trials: list[dict[str, Any]]) -> str:
    """A default sweep's wall against its target, its models and its training work."""
    feature, train = lower_bound(trials)
    verdict = "MET" if run["wall"] <= TARGETS[name] else "MISSED"
    if name == "default_warm_off":
        verdict = "(comparison)"
    return (
        f"  {TITLES[name]:<40} {run['wall']:6.1f} s  (target ≤ {TARGETS[name]:.0f} s: "
        f"{verdict}); {len(trials)} models trained, training steps {train:.1f} s, "
        f"feature passes {feature:.1f} s, exit {run['returncode']}"
    )


def default_report(defaults: dict[str, dict[str, Any]]) -> None:
    """Each default sweep's wall, and where the warm ones' time went."""
    if not defaults:
        return
    print("\nDefault `capsweep -m` (small_resnet on digits, sweeps/capacity.yaml)")
    trials = {name: mlflow_trials(Path(run["outputs"])) for name, run in defaults.items()}
    for name, run in defaults.items():
        print(default_line(name, run, trials[name]))
        if name == "default_cold" and "default_warm" in defaults:
            print(
                f"    cold − warm (≈ pretraining + its start-up): "
                f"{run['wall'] - defaults['default_warm']['wall']:.1f} s"
            )
    for name in ("default_warm", "default_warm_off"):
        if name not in defaults:
            continue
        run = defaults[name]
        parts = breakdown(run, trials[name])
        wall = run["wall"]
        print(f"  where the time went, {TITLES[name]}:")
        for part, seconds in grouped(parts, wall).items():
            print(f"    {part:<46} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")
        print(
            f"    of which process start-up {parts[STARTUP]:.1f} s, between trials "
            f"{parts[BETWEEN]:.1f} s, in-run logging {parts[LOGGING]:.1f} s, model build "
            f"{parts['model build']:.1f} s, trace {parts['trace (first step)']:.1f} s"
        )
