"""One benchmark run: the data, the weights, then each path in its own process.

Every path's figures are saved to ``results.json`` in the working folder as soon as they
exist, so ``--report-only`` can print a run again, or a run cut short.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import platform
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .calibration import make_calibrated_weights
from .capsweep_path import run_capsweep, workload_overrides
from .data import write_digits_folder
from .options import Setup
from .tuner_path import run_tuner_process

RESULTS = "results.json"
DEFAULT_RUNS = ("default_cold", "default_warm", "default_warm_off")


@dataclasses.dataclass(frozen=True)
class Paths:
    """Which paths to run besides ``capsweep -m`` with the cache on."""

    cache_off: bool = True
    tuner: bool = True
    default: bool = True
    default_cache_off: bool = False


def measure(setup: Setup, paths: Paths, work: Path, *, calibrated: bool) -> dict[str, Any]:
    """Run every asked path on the workload in ``work``; return (and save) the results."""
    data_dir = work / "digits_png"
    n_images = write_digits_folder(data_dir)
    if calibrated:
        weights = make_calibrated_weights(
            backbone=setup.backbone,
            size=setup.size,
            data_dir=data_dir,
            val_fraction=setup.val_fraction,
            test_fraction=setup.test_fraction,
            work=work,
        )
        setup = dataclasses.replace(setup, weights_file=str(weights))
    results: dict[str, Any] = {
        "setup": {**setup.as_dict(), "n_images": n_images, "machine": machine()}
    }

    def save() -> None:
        (work / RESULTS).write_text(json.dumps(results, indent=1))

    overrides = workload_overrides(setup, data_dir, work / "sweeps")
    sweeps = [("cache_off", "false")] if paths.cache_off else []
    for name, enabled in [*sweeps, ("cache_on", "true")]:
        results[name] = run_capsweep(work / name, [*overrides, f"cache.enabled={enabled}"], name)
        save()
    if paths.tuner:
        results["tuner"] = run_tuner_process(setup, data_dir, work)
        results["setup"]["n_train"] = results["tuner"].get("n_train")
        results["setup"]["n_val"] = results["tuner"].get("n_val")
        save()
    if paths.default:
        run_default_sweeps(work, results, save, cache_off=paths.default_cache_off)
    return results


def run_default_sweeps(
    work: Path, results: dict[str, Any], save: Callable[[], None], *, cache_off: bool
) -> None:
    """Time the default ``capsweep -m`` in fresh folders: cold (pretraining included),
    then warm (the pretrained weights copied in), with the cache on and, if asked, off."""
    cold = work / "default_cold"
    results["default_cold"] = run_capsweep(cold, [], "default_cold")
    save()
    warm_runs: list[tuple[str, list[str]]] = [("default_warm", [])]
    if cache_off:
        warm_runs.append(("default_warm_off", ["cache.enabled=false"]))
    for name, extra in warm_runs:
        outputs = work / name
        if (cold / "pretrained").is_dir():
            shutil.copytree(cold / "pretrained", outputs / "pretrained")
        results[name] = run_capsweep(outputs, extra, name)
        save()


def machine() -> str:
    """The machine in one line: system, CPUs, whether a GPU is there, load, Python."""
    cpus = os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "an NVIDIA device" if glob.glob("/dev/nvidia[0-9]*") else "no GPU"
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model or 'unknown'}), "
        f"{gpu}, load average {load:.2f} at start, Python {platform.python_version()}"
    )
