"""``capsweep-report``: rank a sweep's trials and recommend the smallest model that performs well.

    capsweep-report sweep=capacity [--tolerance 0.01] [--max-overfit-gap 0.2] [--out DIR]
                    [hydra.sweeper.storage=...] [hydra.sweeper.study_name=...] [overrides]

Finds the study exactly as ``capsweep -m`` with the same overrides does, prints the
table and the trials that did not complete (failed, pruned, killed) with their reasons,
writes trials.csv, pareto.png, recommendation.json and unfinished.csv, logs them to the sweep's
MLflow parent run and tags the recommended trial's run ``capsweep.recommended=true``.
Works while the sweep is still running (finished trials only). Never imports TensorFlow.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import compose_config


def _arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="capsweep-report", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="absolute val_accuracy tolerance (default: one standard error)",
    )
    parser.add_argument(
        "--max-overfit-gap",
        type=float,
        default=None,
        help="ignore configurations whose train-val gap exceeds this",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write the files (default: <outputs>/reports/<study>)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, as for capsweep -m")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    options = _arguments(list(sys.argv[1:] if argv is None else argv))
    try:
        _report(options)
    except CapsweepConfigError as error:
        print(f"capsweep-report: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def check_pick_options(tolerance: float | None, max_overfit_gap: float | None) -> None:
    """Refuse a tolerance or gap limit the pick rule cannot use, before any study is read."""
    for key, value in (("--tolerance", tolerance), ("--max-overfit-gap", max_overfit_gap)):
        if value is not None and not math.isfinite(value):
            raise CapsweepConfigError(key, value, "must be a finite number", fix=f"e.g. {key} 0.02")
    if tolerance is not None and tolerance < 0:
        raise CapsweepConfigError(
            "--tolerance",
            tolerance,
            "must be >= 0 (how far below the best val_accuracy still counts as good)",
            fix="e.g. --tolerance 0.02, or leave it out for one standard error",
        )


def _report(options: argparse.Namespace) -> None:
    import optuna

    from capsweep.report import trials_table, unfinished_table
    from capsweep.sweep import study as studies
    from capsweep.sweep.summary import SweepSummary, build_report

    check_pick_options(options.tolerance, options.max_overfit_gap)
    cfg = compose_config(options.overrides, return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    study_name = str(sweeper.study_name)
    url = studies.storage_url(sweeper.storage, str(cfg.paths.outputs), study_name)
    if studies.is_journal_path(url) and not Path(url).is_file():
        raise CapsweepConfigError(
            "hydra.sweeper.storage",
            url,
            "holds no study yet",
            fix="run the sweep first (capsweep -m ...), or pass the same overrides it used",
        )
    storage = studies.open_storage(url)
    names = [summary.study_name for summary in optuna.get_all_study_summaries(storage)]
    if study_name not in names:
        raise CapsweepConfigError(
            "hydra.sweeper.study_name",
            study_name,
            f"is not in {studies.redact(url)}",
            choices=names or ["(no studies)"],
        )
    study = optuna.load_study(study_name=study_name, storage=storage)
    directory = options.out or Path(str(cfg.paths.outputs)) / "reports" / study_name
    pick = {"tolerance": options.tolerance, "max_overfit_gap": options.max_overfit_gap}
    parent = study.user_attrs.get(studies.PARENT_RUN_ATTR)
    if parent:
        report = SweepSummary(cfg, study, str(parent), directory).update(**pick)
    else:
        report = build_report(study, directory, **pick)
    console = Console(width=160)
    console.print(f"Study {study_name!r} in {studies.redact(url)}: {trial_counts(study)}")
    if report.recommendation is None:
        if report.unfinished:
            console.print(unfinished_table(report.unfinished))
        console.print(f"No recommendation: {report.problem}")
        raise SystemExit(1)
    console.print(trials_table(report.summaries, report.recommendation))
    if report.unfinished:
        console.print(unfinished_table(report.unfinished))
    console.print(f"Wrote {', '.join(str(p) for p in report.files.values())}")


def trial_counts(study: Any) -> str:
    """``8 trials: 7 complete, 1 fail`` — the study's trials by state (not its runs)."""
    from capsweep.sweep import study as studies

    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): count for state, count in studies.count_states(trials).items()}
    shown = ", ".join(f"{count} {state}" for state, count in counts.items() if count)
    return f"{sum(counts.values())} trials" + (f": {shown}" if shown else "")


if __name__ == "__main__":
    main()
