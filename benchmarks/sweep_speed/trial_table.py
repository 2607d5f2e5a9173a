"""Per sweep: where its time went, part by part, and trial by trial."""

from __future__ import annotations

from typing import Any

from .time_split import grouped, metric

TABLE_HEADER = (
    "   #  unf dep role    rate    cache       run   gap  data build inputs feat  comp trace"
    " train   val  fitoth  eval  log   val_acc"
)


def time_split_report(title: str, run: dict[str, Any], parts: dict[str, float]) -> None:
    """Each part of a sweep's wall, in seconds and as a share, then the five groups."""
    wall = run["wall"]
    print(f"\nWhere the time went: {title} (wall {wall:.1f} s)")
    for part, seconds in parts.items():
        print(f"  {part:<48} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")
    print("  grouped:")
    for part, seconds in grouped(parts, wall).items():
        print(f"    {part:<46} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")


def trial_row(trial: dict[str, Any], gap: float) -> str:
    """One trial's times (s) and val_accuracy as a row of :data:`TABLE_HEADER`."""

    def get(name: str) -> float:
        return metric(trial, name)

    run_seconds = trial["end"] - trial["start"]
    fit_other = get("fit_wall_seconds") - (
        get("fit_seconds") + get("trace_seconds") + get("validation_seconds")
    )
    logging_seconds = run_seconds - (
        get("inputs_seconds")
        + get("compile_seconds")
        + get("fit_wall_seconds")
        + get("evaluate_seconds")
    )
    hit = "/hit" if trial["hit"] == "true" else "/miss" if trial["hit"] else ""
    rate = f"{float(trial['rate']):.2g}" if trial.get("rate") else "-"
    return (
        f"  {trial['number']:>2}  {trial['unfreeze']:>3} {trial['depth']:>3}"
        f" {trial.get('tuning') or '-':<7} {rate:<7} {trial['cache'] + hit:<9}"
        f" {run_seconds:5.1f} {gap:5.1f} {get('data_seconds'):5.2f}"
        f" {get('build_seconds'):5.2f} {get('inputs_seconds'):5.2f}"
        f" {get('feature_seconds'):5.1f} {get('compile_seconds'):5.2f}"
        f" {get('trace_seconds'):5.2f} {get('fit_seconds'):5.1f}"
        f" {get('validation_seconds'):5.2f} {fit_other:6.2f} {get('evaluate_seconds'):5.2f}"
        f" {logging_seconds:5.2f}  {get('val_accuracy'):.3f}"
    )


def trial_table(title: str, run: dict[str, Any], trials: list[dict[str, Any]]) -> None:
    """Every trial of a sweep, in the order they ran."""
    print(f"\nPer trial: {title} (seconds)")
    print(TABLE_HEADER)
    previous_end = run["started"]
    for trial in trials:
        print(trial_row(trial, trial["start"] - previous_end))
        previous_end = trial["end"]
    print("  (gap: since the previous trial's run ended, or since the process started;")
    print("   it includes that trial's data loading and model build; role: search = a")
    print("   candidate rate's run, confirm = a run of the chosen rate on a fresh seed)")
