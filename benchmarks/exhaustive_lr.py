"""The exhaustive answer the default sweep's learning-rate tuning must agree with.

1. The grid: every configuration of the default grid (unfreeze 0/1/2/6 x head depth 0/1)
   at every value of a dense learning-rate grid (5 values over 2 decades), each 5 times
   over seed and split, on seeds no default sweep uses: the backbone's rate for the
   configurations that unfreeze something, the head's for those that do not (where the
   backbone's rate has no effect). Each configuration's best rate is the one whose mean
   is highest.
2. The confirmation: each configuration at its best rate, 10 times more on fresh seeds.
   The best of five noisy means is biased upward (the winner's curse), so the grid's own
   mean at the best rate is not the configuration's score; this mean of fresh runs is.

Then it prints each configuration's confirmed score ± SE and the configurations within
tolerance of the best by capsweep's own pick rule; with ``--compare STUDY``, the default
sweep's score of each configuration against the exhaustive one (within their combined
standard error, sqrt(SE_sweep² + SE_exh²), and within twice it), and whether the sweep's
pick is in the exhaustive within-tolerance set.

    uv run python benchmarks/exhaustive_lr.py                       # ~25 minutes on 2 cores
    uv run python benchmarks/exhaustive_lr.py --skip-grid           # the confirmation only
    uv run python benchmarks/exhaustive_lr.py --report-only         # the tables again
    uv run python benchmarks/exhaustive_lr.py --report-only --compare capacity \\
        --compare-outputs outputs                                   # against a default sweep
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna

from capsweep.select import ConfigSummary, recommend, standard_error, summarize
from capsweep.sweep import study as studies
from capsweep.sweep.trial_records import records_from_study

BIN = Path(sys.executable).parent
BACKBONE_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
HEAD_RATES = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
REPEATS = 5
CONFIRMATIONS = 10
BASE_SEED = 1000  # the default sweep's candidates and confirmations use seeds 0 to 3
CONFIRMATION_SEED = 3000
SWEEPS = {
    "exhaustive-backbone": {
        "capacity.unfreeze": "choice(1, 2, 6)",
        "head.depth": "choice(0, 1)",
        "trainer.backbone_learning_rate": f"choice({', '.join(map(str, BACKBONE_RATES))})",
    },
    "exhaustive-head": {
        "capacity.unfreeze": "choice(0)",
        "head.depth": "choice(0, 1)",
        "trainer.learning_rate": f"choice({', '.join(map(str, HEAD_RATES))})",
    },
}
RATE_KEYS = ("trainer.backbone_learning_rate", "trainer.learning_rate")


def sweep_file(folder: Path, name: str, params: dict[str, str], protocol: str) -> None:
    (folder / "sweep").mkdir(parents=True, exist_ok=True)
    lines = "\n".join(f"      {key}: {value}" for key, value in params.items())
    (folder / "sweep" / f"{name}.yaml").write_text(
        f"# @package _global_\ntrainer:\n  protocol: {protocol}\n"
        f"hydra:\n  sweeper:\n    study_name: {name}\n    sampler: grid\n"
        f"    repeats: {REPEATS}\n    params:\n{lines}\n"
    )


def run_sweeps(outputs: Path, protocol: str, extra: Sequence[str]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for name, params in SWEEPS.items():
            sweep_file(Path(folder), f"{name}-{protocol}", params, protocol)
            subprocess.run(
                [
                    str(BIN / "capsweep"),
                    "-m",
                    f"hydra.searchpath=[file://{folder}]",
                    f"sweep={name}-{protocol}",
                    f"paths.outputs={outputs}",
                    f"trainer.seed={BASE_SEED}",
                    f"data.split_seed={BASE_SEED}",
                    *extra,
                ],
                check=True,
            )


def confirm_best(
    outputs: Path, protocol: str, tables: dict[str, Any], extra: Sequence[str]
) -> None:
    """Train each configuration at its best rate ``CONFIRMATIONS`` times on fresh seeds."""
    defaults = {"trainer.backbone_learning_rate": 0.001, "trainer.learning_rate": 0.01}
    points = [
        {**table["params"], **defaults, table["rate"]: table["best_rate"]}
        for table in tables.values()
    ]
    name = f"exhaustive-confirm-{protocol}"
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "sweep").mkdir()
        listed = "".join(
            "      - {" + ", ".join(f"{k}: {v}" for k, v in point.items()) + "}\n"
            for point in points
        )
        (Path(folder) / "sweep" / f"{name}.yaml").write_text(
            f"# @package _global_\ntrainer:\n  protocol: {protocol}\n"
            f"hydra:\n  sweeper:\n    study_name: {name}\n"
            f"    repeats: {CONFIRMATIONS}\n    points:\n{listed}"
        )
        subprocess.run(
            [
                str(BIN / "capsweep"),
                "-m",
                f"hydra.searchpath=[file://{folder}]",
                f"sweep={name}",
                f"paths.outputs={outputs}",
                f"trainer.seed={CONFIRMATION_SEED}",
                f"data.split_seed={CONFIRMATION_SEED}",
                *extra,
            ],
            check=True,
        )


def confirmed(outputs: Path, protocol: str) -> list[ConfigSummary]:
    """Each configuration's confirmed score, its rate left out of its params."""
    summaries = summarize(records_from_study(load(outputs, f"exhaustive-confirm-{protocol}")))
    return [
        _renamed(s, {k: v for k, v in s.params.items() if k not in RATE_KEYS}) for s in summaries
    ]


def load(outputs: Path, name: str) -> optuna.Study:
    storage = studies.open_storage(str(outputs / "optuna" / f"{name}.journal"))
    return optuna.load_study(study_name=name, storage=storage)


def by_configuration(summaries: Sequence[ConfigSummary]) -> dict[str, list[ConfigSummary]]:
    """Each configuration's summaries, one per rate, keyed by its label without the rate."""
    grouped: dict[str, list[ConfigSummary]] = {}
    for summary in summaries:
        params = {k: v for k, v in summary.params.items() if k not in RATE_KEYS}
        grouped.setdefault(_label(params), []).append(summary)
    return grouped


def best_over_rate(outputs: Path, protocol: str) -> tuple[list[ConfigSummary], dict[str, Any]]:
    """Each configuration at its best rate (params without the rate), and the rate tables."""
    best: list[ConfigSummary] = []
    tables: dict[str, Any] = {}
    for name in SWEEPS:
        summaries = summarize(records_from_study(load(outputs, f"{name}-{protocol}")))
        for label, group in by_configuration(summaries).items():
            top = max(group, key=lambda s: (s.val_accuracy, -s.trainable_params))
            rate_key = next(k for k in RATE_KEYS if k in top.params)
            tables[label] = {
                "params": {k: v for k, v in top.params.items() if k not in RATE_KEYS},
                "rate": rate_key,
                "by_rate": {s.params[rate_key]: (s.val_accuracy, standard_error(s)) for s in group},
                "best_rate": top.params[rate_key],
            }
            params = {k: v for k, v in top.params.items() if k not in RATE_KEYS}
            best.append(_renamed(top, params))
    return best, tables


def _renamed(summary: ConfigSummary, params: dict[str, Any]) -> ConfigSummary:
    from dataclasses import replace

    from capsweep.select import config_key

    return replace(summary, key=config_key(params), params=params)


def _label(params: dict[str, Any]) -> str:
    return ", ".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in sorted(params.items()))


def print_tables(
    best: list[ConfigSummary], tables: dict[str, Any], scores: list[ConfigSummary]
) -> set[str]:
    """Print the rate table and the confirmed scores; return the within-tolerance set."""
    print("\nval_accuracy (mean ± SE, n=5) at each rate; * marks each configuration's best")
    for label, table in sorted(tables.items()):
        cells = [
            f"{rate:g}: {mean:.3f} ± {error:.3f}" + ("*" if rate == table["best_rate"] else "")
            for rate, (mean, error) in sorted(table["by_rate"].items())
        ]
        print(f"  {label:<22} {table['rate']:<32} " + "  ".join(cells))
    recommendation = recommend(scores)
    good = {recommendation.chosen.key, recommendation.best.key} | {
        s.key for s in recommendation.also_within
    }
    grid_mean = {s.key: s.val_accuracy for s in best}
    rates = {json.dumps(t["params"], sort_keys=True): t for t in tables.values()}
    print(
        f"\nAt its best rate, confirmed on {CONFIRMATIONS} fresh seeds (mean ± SE; the grid's "
        "own mean at that rate, biased upward, beside it); within: within tolerance of the best"
    )
    for summary in sorted(scores, key=lambda s: (-s.val_accuracy, s.trainable_params)):
        mark = "within" if summary.key in good else ""
        table = rates[json.dumps(dict(summary.params), sort_keys=True)]
        print(
            f"  {summary.label:<22} {table['rate'].rsplit('.', 1)[-1]}={table['best_rate']:<8g}"
            f" {summary.val_accuracy:.3f} ± {standard_error(summary):.3f} (grid "
            f"{grid_mean[summary.key]:.3f})  {summary.trainable_params:>9,.0f} params  {mark}"
        )
    print(f"\nPick by the same rule: {recommendation.chosen.label}")
    return good


def compare(best: list[ConfigSummary], good: set[str], outputs: Path, study: str) -> None:
    """The default sweep's tuned scores against the exhaustive ones, and its pick."""
    swept = {s.key: s for s in summarize(records_from_study(load(outputs, study)))}
    outside = outside_twice = 0
    print(f"\nStudy {study!r} against the exhaustive answer")
    for exhaustive in sorted(best, key=lambda s: s.label):
        tuned = swept.get(exhaustive.key)
        if tuned is None:
            print(f"  {exhaustive.label:<22} not in the study")
            continue
        combined = math.hypot(standard_error(tuned), standard_error(exhaustive))
        difference = tuned.val_accuracy - exhaustive.val_accuracy
        inside = abs(difference) <= combined
        outside += not inside
        outside_twice += abs(difference) > 2 * combined
        chosen = tuned.tuning.chosen if tuned.tuning else {}
        print(
            f"  {exhaustive.label:<22} sweep {tuned.val_accuracy:.3f} ± "
            f"{standard_error(tuned):.3f} at {chosen or 'its base values'}; exhaustive "
            f"{exhaustive.val_accuracy:.3f}; difference {difference:+.3f} vs combined SE "
            f"{combined:.3f}: {'within' if inside else 'OUTSIDE'}"
        )
    pick = recommend(list(swept.values()))
    print(
        f"\n{outside} configuration(s) outside their combined SE, {outside_twice} outside twice "
        f"it; the sweep's pick {pick.chosen.label} is "
        + ("in" if pick.chosen.key in good else "NOT in")
        + " the exhaustive within-tolerance set"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--outputs", type=Path, default=Path("outputs/exhaustive"))
    parser.add_argument("--protocol", choices=("joint", "lp_ft"), default="joint")
    parser.add_argument("--report-only", action="store_true", help="no training, the tables")
    parser.add_argument("--skip-grid", action="store_true", help="the confirmation only")
    parser.add_argument("--compare", metavar="STUDY", help="a default sweep's study to check")
    parser.add_argument(
        "--compare-outputs", type=Path, default=Path("outputs"), help="where that study is"
    )
    parser.add_argument("overrides", nargs="*", help="more overrides for every sweep")
    options = parser.parse_args()
    if not options.report_only and not options.skip_grid:
        run_sweeps(options.outputs, options.protocol, options.overrides)
    best, tables = best_over_rate(options.outputs, options.protocol)
    if not options.report_only:
        confirm_best(options.outputs, options.protocol, tables, options.overrides)
    scores = confirmed(options.outputs, options.protocol)
    good = print_tables(best, tables, scores)
    if options.compare:
        compare(scores, good, options.compare_outputs, options.compare)


if __name__ == "__main__":
    main()
