"""``python -m benchmarks.sweep_speed``: the command line (see the package's docstring)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from . import __doc__ as description
from .options import parser, setup_from
from .report import report
from .workloads import RESULTS, Paths, measure


def run_worker(spec: dict[str, object]) -> None:
    """A job this package runs in a fresh process: its heavy imports stay there."""
    if spec["job"] == "calibrate":
        from .calibration import calibrated_weights_worker

        calibrated_weights_worker(spec)
    elif spec["job"] == "tuner":
        from .tuner_worker import tuner_worker

        tuner_worker(spec)
    else:
        raise ValueError(f"no worker job {spec['job']!r}: expected 'calibrate' or 'tuner'")


def main() -> None:
    """Run the benchmark, print a kept run's report again, or run one worker's job."""
    parse = parser(description or "")
    options = parse.parse_args()
    if options.worker:
        run_worker(json.loads(options.worker))
        return
    if options.report_only:
        report(options.report_only, json.loads((options.report_only / RESULTS).read_text()))
        return
    try:
        setup = setup_from(options)
    except ValueError as error:
        parse.error(str(error))
    work = options.work or Path(tempfile.mkdtemp(prefix="sweep-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working folder: {work}", flush=True)
    paths = Paths(
        cache_off=not options.skip_cache_off,
        tuner=not options.skip_tuner,
        default=not options.skip_default,
        default_cache_off=options.default_cache_off,
    )
    results = measure(setup, paths, work, calibrated=options.weights == "calibrated")
    report(work, results)
    if options.keep or options.work:
        print(f"\nkept: {work}  (--report-only {work} prints this again)")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
