"""Does the default sweep recommend the same configuration when the seeds change?

Runs the default ``capsweep -m`` once per base seed (``trainer.seed`` and
``data.split_seed`` both moved, so no two reruns share a repeat), each as its own study in
one outputs folder (the pretrained backbone is cached once and shared, as it would be for a
user), then prints each rerun's pick and how many reruns agree on the most common one.

    uv run python benchmarks/pick_stability.py                 # seeds 0 100 200 300 400
    uv run python benchmarks/pick_stability.py --seeds 0 100 --outputs /tmp/stability
    uv run python benchmarks/pick_stability.py --report-only    # the picks again, no training
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def rerun(seed: int, outputs: Path, extra: list[str], *, sweep: bool) -> dict[str, object]:
    """One default sweep with base seed ``seed`` (unless only reporting); its pick and time."""
    study = f"stability-{seed}"
    common = [f"paths.outputs={outputs}", f"hydra.sweeper.study_name={study}"]
    started = time.perf_counter()
    if sweep:
        seeds = [f"trainer.seed={seed}", f"data.split_seed={seed}"]
        subprocess.run([str(BIN / "capsweep"), "-m", *seeds, *common, *extra], check=True)
    seconds = time.perf_counter() - started
    report = outputs / "reports" / study
    subprocess.run(
        [str(BIN / "capsweep-report"), *common, "--out", str(report)],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    recommendation = json.loads((report / "recommendation.json").read_text())
    return {"seed": seed, "seconds": seconds, **recommendation}


def label(configuration: dict[str, object]) -> str:
    params = configuration["params"]
    assert isinstance(params, dict)
    return ", ".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, value in sorted(params.items()))


def score(configuration: dict[str, object]) -> str:
    """A configuration's mean val_accuracy ± its standard error, with n."""
    metrics = configuration["metrics"]
    assert isinstance(metrics, dict)
    return f"{metrics['val_accuracy']:.3f} ± {metrics['standard_error']:.3f}, n={metrics['n']}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 100, 200, 300, 400])
    parser.add_argument("--outputs", type=Path, default=Path("outputs/stability"))
    parser.add_argument(
        "--report-only", action="store_true", help="recompute the picks of studies already run"
    )
    parser.add_argument("overrides", nargs="*", help="more overrides for every rerun")
    options = parser.parse_args()
    results = [
        rerun(seed, options.outputs, options.overrides, sweep=not options.report_only)
        for seed in options.seeds
    ]
    print(
        "\nseed  pick (val_accuracy mean ± SE, n)          "
        "best (val_accuracy mean ± SE)                  wall"
    )
    for result in results:
        best = result["best"]
        assert isinstance(best, dict)
        print(
            f"{result['seed']:>4}  {label(result):<22} {score(result)}   "
            f"{label(best):<24} {score(best)}   {result['seconds']:.0f} s"
        )
    picks = collections.Counter(label(result) for result in results)
    common, count = picks.most_common(1)[0]
    print(f"\nThe same pick ({common}) in {count} of {len(results)} reruns: {dict(picks)}")


if __name__ == "__main__":
    main()
