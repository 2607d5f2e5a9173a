"""Does the feature cache make a capacity sweep fast, and where does the rest of its time go?

In one run, on one machine (compare the paths measured here with each other, not with
figures from another day: a shared machine's timings are noisy):

1. writes scikit-learn's digits (1,797 images, 10 classes) as an image folder (one PNG per
   image, one sub-folder per class);
2. runs one capacity grid (unfreeze × head depth, one repeat) through the real path, a
   ``capsweep -m`` subprocess (capsweep's sweeper, a journal-file study, MLflow on SQLite,
   all in a fresh temp folder), once with ``cache.enabled=false`` and once with
   ``cache.enabled=true`` (its own fresh folder: building the cache entries is included);
3. runs the same grid as a plain uncached Keras loop, KerasTuner's GridSearch, in its own
   process: the same model (capsweep's builders and optimizer), the same split arrays,
   epochs and batch size, no feature cache;
4. prints the walls and ratios, each capsweep run's time split from its MLflow runs, the
   best val_accuracy of each path, and the lower bound (feature passes + training steps);
5. (unless ``--skip-default``) times the default ``capsweep -m`` (small_resnet on the
   embedded digits, sweeps/capacity.yaml) in fresh folders: cold (pretraining included),
   then with the pretrained weights already cached, and with ``--default-cache-off`` also
   warm with the cache off.

The backbone has random weights with its BatchNorm statistics set from the training images,
saved as a weights file that every path loads as a user's would (``--weights null``: Keras'
random init, every trial at chance): ImageNet weights cannot be downloaded on the machines
this was written on. Speed does not depend on the weights' values; the accuracies only
compare the three paths with each other.

    uv run --extra benchmark python benchmarks/sweep_speed.py           # ~25 min on 2 cores
    uv run --extra benchmark python benchmarks/sweep_speed.py --epochs 3 --skip-default --keep
    uv run --extra benchmark python benchmarks/sweep_speed.py --report-only /tmp/sweep-speed-x
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
STUDY = "speed"
RESULTS = "results.json"


# --------------------------------------------------------------------------- the data set


def write_digits_folder(root: Path) -> int:
    """scikit-learn's digits as ``root/<digit>/<index>.png`` (8×8 grayscale, 0–255)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    for index, (image, label) in enumerate(zip(pixels, bunch.target, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(folder / f"{index:04d}.png")
    return len(pixels)


# --------------------------------------------------------------------------- capsweep -m


def grid_overrides(options: argparse.Namespace, data_dir: Path) -> list[str]:
    """The capacity grid on the image folder, as ``capsweep -m`` overrides."""
    unfreeze = ",".join(str(count) for count in options.unfreeze)
    depths = ",".join(str(depth) for depth in options.depths)
    return [
        "data=image_folder",
        f"data.path={data_dir}",
        f"data.val_fraction={options.val_fraction}",
        f"data.test_fraction={options.test_fraction}",
        f"backbone={options.backbone}",
        f"backbone.weights={options.weights_file or 'null'}",
        f"backbone.input_size={options.size}",
        f"capacity.unit={options.unit}",
        f"trainer.epochs={options.epochs}",
        "trainer.early_stopping_patience=null",
        f"trainer.batch_size={options.batch_size}",
        f"capacity.unfreeze=choice({unfreeze})",
        f"head.depth=choice({depths})",
        "hydra.sweeper.sampler=grid",
        "hydra.sweeper.repeats=1",
        f"hydra.sweeper.study_name={STUDY}",
    ]


def run_logged(command: list[str], log: Path, label: str) -> tuple[int, float, float]:
    """Run ``command`` with its output in ``log``; print its exit and wall time, and the
    log's tail when it failed. Returns (exit code, start, end) as ``time.time()``."""
    started = time.time()
    with log.open("w") as console:
        finished = subprocess.run(command, stdout=console, stderr=subprocess.STDOUT, check=False)
    ended = time.time()
    print(f"[{label}] exit {finished.returncode} after {ended - started:.1f} s", flush=True)
    if finished.returncode != 0:
        print("".join(log.read_text().splitlines(keepends=True)[-30:]), file=sys.stderr)
    return finished.returncode, started, ended


def run_capsweep(outputs: Path, overrides: list[str], label: str) -> dict[str, Any]:
    """``capsweep -m`` in its own process, with ``paths.outputs=outputs``; its wall time."""
    outputs.mkdir(parents=True, exist_ok=True)
    command = [str(BIN / "capsweep"), "-m", *overrides, f"paths.outputs={outputs}"]
    print(f"[{label}] {' '.join(command[1:])}", flush=True)
    returncode, started, ended = run_logged(command, outputs / "console.log", label)
    return {
        "label": label,
        "outputs": str(outputs),
        "started": started,
        "ended": ended,
        "wall": ended - started,
        "returncode": returncode,
    }


def mlflow_trials(outputs: Path) -> list[dict[str, Any]]:
    """Every trial run of a sweep in ``outputs/mlflow.db``: times (s) and metrics, by start."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("capsweep")
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    trials = []
    for run in runs:
        tags = run.data.tags
        if "capsweep.trial_number" not in tags or run.info.end_time is None:
            continue
        trials.append(
            {
                "number": int(tags["capsweep.trial_number"]),
                "repeat": int(tags.get("capsweep.repeat", 0)),
                "unfreeze": tags.get("capsweep.unfreeze"),
                "depth": tags.get("capsweep.head_depth"),
                "cache": tags.get("capsweep.cache", "?"),
                "hit": tags.get("capsweep.cache_hit", ""),
                "start": run.info.start_time / 1000.0,
                "end": run.info.end_time / 1000.0,
                "metrics": dict(run.data.metrics),
            }
        )
    return sorted(trials, key=lambda trial: trial["start"])


# Per-trial timings, as capsweep records them (seconds; absent = 0).
TIMINGS = (
    "data_seconds",  # loading the split arrays (before the MLflow run opens)
    "build_seconds",  # building backbone + transfer model (before the run opens)
    "inputs_seconds",  # cache lookup, feature pass on a miss, suffix model
    "feature_seconds",  # the feature pass alone
    "compile_seconds",
    "trace_seconds",  # the first training step (tf.function tracing)
    "fit_seconds",  # training steps only
    "validation_seconds",  # per-epoch validation
    "fit_wall_seconds",  # model.fit as a whole
    "evaluate_seconds",  # final evaluation of train/val/test
)


def breakdown(run: dict[str, Any], trials: list[dict[str, Any]]) -> dict[str, float]:
    """Where a sweep's wall time went, in seconds; the parts add up to the wall.

    A trial's MLflow run opens after its data are loaded and its model built (those two are
    timed by the trial itself) and closes after its results and artifacts are logged.
    """
    total = {name: 0.0 for name in TIMINGS}
    for trial in trials:
        for name in TIMINGS:
            total[name] += float(trial["metrics"].get(name, 0.0))
    in_runs = sum(trial["end"] - trial["start"] for trial in trials)
    gaps = sum(later["start"] - earlier["end"] for earlier, later in itertools.pairwise(trials))
    first_start = trials[0]["start"] if trials else run["ended"]
    last_end = trials[-1]["end"] if trials else run["ended"]
    before_runs = total["data_seconds"] + total["build_seconds"]
    fit_other = total["fit_wall_seconds"] - (
        total["fit_seconds"] + total["trace_seconds"] + total["validation_seconds"]
    )
    parts = {
        "process start-up, sweep set-up": first_start - run["started"],
        "between trials (Hydra job, Optuna, MLflow run)": gaps,
        "after the last trial (summary, exit)": run["ended"] - last_end,
        "data loading": total["data_seconds"],
        "model build": total["build_seconds"],
        "cache lookup + suffix": total["inputs_seconds"] - total["feature_seconds"],
        "feature pass": total["feature_seconds"],
        "compile": total["compile_seconds"],
        "trace (first step)": total["trace_seconds"],
        "training steps": total["fit_seconds"],
        "validation (per epoch)": total["validation_seconds"],
        "fit() other (callbacks, epoch ends)": fit_other,
        "final evaluation": total["evaluate_seconds"],
        "in-run logging (MLflow, artifacts)": in_runs
        - (
            total["inputs_seconds"]
            + total["compile_seconds"]
            + total["fit_wall_seconds"]
            + total["evaluate_seconds"]
        ),
    }
    # The data and the model are prepared before a trial's run opens: take them out of
    # the start-up (the first trial) and the gaps (the others) they happened in.
    first = (
        float(trials[0]["metrics"].get("data_seconds", 0.0))
        + float(trials[0]["metrics"].get("build_seconds", 0.0))
        if trials
        else 0.0
    )
    parts["process start-up, sweep set-up"] -= first
    parts["between trials (Hydra job, Optuna, MLflow run)"] -= before_runs - first
    return parts


def grouped(parts: dict[str, float], wall: float) -> dict[str, float]:
    """The issue's five groups: build+trace, feature pass, training, evaluation, the rest."""
    build = (
        parts["data loading"]
        + parts["model build"]
        + parts["cache lookup + suffix"]
        + parts["compile"]
        + parts["trace (first step)"]
    )
    evaluation = parts["validation (per epoch)"] + parts["final evaluation"]
    groups = {
        "build + trace": build,
        "feature pass": parts["feature pass"],
        "training steps": parts["training steps"],
        "evaluation (per-epoch val + final)": evaluation,
    }
    groups["logging/sweeper/other"] = wall - sum(groups.values())
    return groups


def best_val(trials: list[dict[str, Any]]) -> tuple[float, str]:
    """The best final val_accuracy of a sweep's trials, and its configuration."""
    if not trials:
        return float("nan"), "-"
    best = max(trials, key=lambda trial: trial["metrics"].get("val_accuracy", float("-inf")))
    return best["metrics"]["val_accuracy"], f"unfreeze={best['unfreeze']}, depth={best['depth']}"


# --------------------------------------------------------------------------- KerasTuner


def run_tuner_process(options: argparse.Namespace, data_dir: Path, work: Path) -> dict[str, Any]:
    """KerasTuner's GridSearch in a fresh process (start-up included in its wall)."""
    out = work / "tuner.json"
    spec = {
        "data_dir": str(data_dir),
        "directory": str(work / "tuner"),
        "out": str(out),
        "backbone": options.backbone,
        "size": options.size,
        "unit": options.unit,
        "unfreeze": options.unfreeze,
        "depths": options.depths,
        "epochs": options.epochs,
        "batch_size": options.batch_size,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "weights": options.weights_file,
    }
    command = [sys.executable, __file__, "--worker", json.dumps(spec)]
    print("[tuner] KerasTuner GridSearch in its own process", flush=True)
    returncode, started, ended = run_logged(command, work / "tuner.log", "tuner")
    if returncode != 0:
        return {"wall": ended - started, "returncode": returncode}
    result = json.loads(out.read_text())
    result.update(wall=ended - started, returncode=0, started=started, ended=ended)
    return result


def load_split_folder(spec: dict[str, Any]) -> Any:
    """The image folder split as the capsweep runs split it (in a worker process)."""
    from capsweep.data import load_dataset
    from capsweep.settings import DataConfig

    config = DataConfig(
        name="image_folder",
        path=spec["data_dir"],
        val_fraction=spec["val_fraction"],
        test_fraction=spec["test_fraction"],
    )
    return load_dataset(config, spec["size"])


def tuner_worker(spec: dict[str, Any]) -> None:
    """The uncached baseline: every trial trains the whole model on the images."""
    import keras
    import keras_tuner as kt

    from capsweep.model.backbones import build_backbone, preprocessing_mode
    from capsweep.model.transfer import build_transfer_model
    from capsweep.settings import CapacityConfig, HeadConfig, TrainerConfig
    from capsweep.settings.schema import Unit
    from capsweep.train.fit import compile_model
    from capsweep.train.trial import head_seed

    imported = time.time()
    data = load_split_folder(spec)
    x_train, y_train = data.train.images, data.train.labels
    x_val, y_val = data.val.images, data.val.labels
    # capsweep's defaults, as the sweep's trials use them (the same optimizer and rates).
    trainer = TrainerConfig(
        epochs=spec["epochs"], batch_size=spec["batch_size"], early_stopping_patience=None
    )

    def build(hp: Any) -> Any:
        unfreeze = hp.Choice("unfreeze", spec["unfreeze"])
        depth = hp.Choice("depth", spec["depths"])
        # Seeded as a capsweep trial seeds its build: the head from a stream of its own.
        keras.utils.set_random_seed(trainer.seed)
        backbone = build_backbone(spec["backbone"], spec["size"], spec["weights"])
        keras.utils.set_random_seed(head_seed(trainer.seed))
        transfer = build_transfer_model(
            backbone,
            preprocessing_mode(spec["backbone"]),
            data.num_classes,
            CapacityConfig(unfreeze=unfreeze, unit=Unit(spec["unit"])),
            HeadConfig(depth=depth),
        )
        compile_model(transfer, trainer)
        return transfer.model

    tuner = kt.GridSearch(
        build,
        objective="val_accuracy",
        directory=spec["directory"],
        project_name="grid",
        overwrite=True,
    )
    started = time.time()
    tuner.search(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        epochs=trainer.epochs,
        batch_size=trainer.batch_size,
        verbose=0,
    )
    searched = time.time()
    trials = []
    for trial in tuner.oracle.trials.values():
        history = [obs.value for obs in trial.metrics.get_history("val_accuracy")]
        values = [float(v[0] if isinstance(v, list | tuple) else v) for v in history]
        trials.append(
            {
                "unfreeze": trial.hyperparameters.get("unfreeze"),
                "depth": trial.hyperparameters.get("depth"),
                "final_val_accuracy": values[-1] if values else float("nan"),
                "best_epoch_val_accuracy": max(values) if values else float("nan"),
                "status": str(trial.status),
            }
        )
    Path(spec["out"]).write_text(
        json.dumps(
            {
                "search_seconds": searched - started,
                "setup_seconds": started - imported,
                "n_train": len(y_train),
                "n_val": len(y_val),
                "trials": trials,
            }
        )
    )


# --------------------------------------------------------------------------- weights


def calibrated_weights_worker(spec: dict[str, Any]) -> None:
    """Random-init backbone weights whose BatchNorm statistics fit the training images.

    With ``weights=None`` every BatchNorm layer keeps mean 0 / variance 1, and a deep
    random network in inference mode shrinks its input to nothing (MobileNetV2 at 64 px:
    mean |feature| ~1e-12 at its output), so every trial sits at chance. One pass in
    training mode with momentum 0 sets each layer's moving statistics to those of the
    training images: random but informative features. Speed is unaffected.
    """
    import keras

    from capsweep.model.backbones import build_backbone, preprocessing_mode
    from capsweep.model.layers import ImagePreprocessing

    data = load_split_folder(spec)
    keras.utils.set_random_seed(0)
    backbone = build_backbone(spec["backbone"], spec["size"], None)
    batch_norms = [
        layer for layer in backbone.layers if "BatchNormalization" in type(layer).__name__
    ]
    for layer in batch_norms:
        layer.momentum = 0.0
    images = ImagePreprocessing(preprocessing_mode(spec["backbone"]))(
        data.train.images[:512].astype("float32")
    )
    backbone(images, training=True)
    backbone.save_weights(spec["out"])


def make_calibrated_weights(options: argparse.Namespace, data_dir: Path, work: Path) -> Path:
    out = work / f"{options.backbone}-{options.size}-calibrated.weights.h5"
    spec = {
        "job": "calibrate",
        "data_dir": str(data_dir),
        "backbone": options.backbone,
        "size": options.size,
        "val_fraction": options.val_fraction,
        "test_fraction": options.test_fraction,
        "out": str(out),
    }
    subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(spec)],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return out


# --------------------------------------------------------------------------- the report


def fmt_ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}×" if denominator else "n/a"


def report(work: Path, results: dict[str, Any]) -> None:
    """Print every figure from ``results`` and the MLflow databases under ``work``."""
    setup = results["setup"]
    print("\n" + "=" * 78)
    print(
        f"sweep_speed: {setup['backbone']} at {setup['size']} px, "
        f"{setup['epochs']} epochs, batch {setup['batch_size']}, grid unfreeze "
        f"{setup['unfreeze']} {setup['unit']}s × head.depth {setup['depths']} "
        f"({len(setup['unfreeze']) * len(setup['depths'])} trials, 1 repeat)"
    )
    print(
        f"data: digits as an image folder, {setup['n_images']} PNGs, "
        f"val_fraction={setup['val_fraction']}, test_fraction={setup['test_fraction']}"
        + (
            f" → {setup['n_train']} train / {setup['n_val']} val images"
            if setup.get("n_train")
            else ""
        )
    )
    weights = setup.get("weights", "null")
    print(
        "weights: "
        + (
            "null (Keras' random init)"
            if weights == "null"
            else f"random init, BatchNorm statistics calibrated on 512 training images ({weights})"
        )
        + "; no ImageNet weights (no download here)"
    )
    print(f"machine: {setup['machine']}")
    print("=" * 78)

    sweeps = {name: results[name] for name in ("cache_off", "cache_on") if name in results}
    analysed: dict[str, dict[str, Any]] = {}
    for name, run in sweeps.items():
        trials = mlflow_trials(Path(run["outputs"]))
        analysed[name] = {
            "run": run,
            "trials": trials,
            "parts": breakdown(run, trials),
            "best": best_val(trials),
        }
    tuner = results.get("tuner")

    print("\nTotal wall (each in its own process, start-up included)")
    for name, item in analysed.items():
        run = item["run"]
        print(
            f"  capsweep -m, cache.enabled={'true' if name == 'cache_on' else 'false':<5}  "
            f"{run['wall']:7.1f} s   ({len(item['trials'])} trials, exit {run['returncode']})"
        )
    if tuner:
        print(
            f"  KerasTuner GridSearch (uncached)  {tuner['wall']:7.1f} s   "
            f"(search {tuner.get('search_seconds', float('nan')):.1f} s, "
            f"{len(tuner.get('trials', []))} trials, exit {tuner['returncode']})"
        )
    on = analysed.get("cache_on")
    off = analysed.get("cache_off")
    print("\nRatios")
    if on and off:
        print(f"  cache-off / cache-on wall   {fmt_ratio(off['run']['wall'], on['run']['wall'])}")
    if on and tuner:
        print(f"  tuner / cache-on wall       {fmt_ratio(tuner['wall'], on['run']['wall'])}")
        if "search_seconds" in tuner:
            print(
                f"  tuner search only / cache-on wall  "
                f"{fmt_ratio(tuner['search_seconds'], on['run']['wall'])}"
            )
    if off and tuner:
        print(f"  tuner / cache-off wall      {fmt_ratio(tuner['wall'], off['run']['wall'])}")

    for name, item in analysed.items():
        wall = item["run"]["wall"]
        print(f"\nWhere the time went: capsweep -m, {name.replace('_', '-')} (wall {wall:.1f} s)")
        for part, seconds in item["parts"].items():
            print(f"  {part:<48} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")
        print("  grouped:")
        for part, seconds in grouped(item["parts"], wall).items():
            print(f"    {part:<46} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")

    for name, item in analysed.items():
        print(f"\nPer trial: {name.replace('_', '-')} (seconds)")
        print(
            "   #  unf dep cache       run   gap  data build inputs feat  comp trace train"
            "   val  fitoth  eval  log   val_acc"
        )
        previous_end = item["run"]["started"]
        for trial in item["trials"]:
            m = trial["metrics"]
            get = lambda key, m=m: float(m.get(key, 0.0))  # noqa: E731
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
            cache = trial["cache"] + (
                "/hit" if trial["hit"] == "true" else "/miss" if trial["hit"] else ""
            )
            gap = trial["start"] - previous_end
            print(
                f"  {trial['number']:>2}  {trial['unfreeze']:>3} {trial['depth']:>3} {cache:<9}"
                f" {run_seconds:5.1f} {gap:5.1f} {get('data_seconds'):5.2f}"
                f" {get('build_seconds'):5.2f} {get('inputs_seconds'):5.2f}"
                f" {get('feature_seconds'):5.1f} {get('compile_seconds'):5.2f}"
                f" {get('trace_seconds'):5.2f} {get('fit_seconds'):5.1f}"
                f" {get('validation_seconds'):5.2f} {fit_other:6.2f} {get('evaluate_seconds'):5.2f}"
                f" {logging_seconds:5.2f}  {get('val_accuracy'):.3f}"
            )
            previous_end = trial["end"]
        print("  (gap: since the previous trial's run ended, or since the process started;")
        print("   it includes that trial's data loading and model build)")

    print("\nBest val_accuracy (final epoch, inference mode)")
    for name, item in analysed.items():
        value, where = item["best"]
        print(f"  capsweep {name.replace('_', '-'):<10} {value:.3f}  ({where})")
    if tuner and tuner.get("trials"):
        best = max(tuner["trials"], key=lambda t: t["final_val_accuracy"])
        best_epoch = max(t["best_epoch_val_accuracy"] for t in tuner["trials"])
        print(
            f"  KerasTuner         {best['final_val_accuracy']:.3f}  (unfreeze={best['unfreeze']}, "
            f"depth={best['depth']}; its own objective, best epoch: {best_epoch:.3f})"
        )
        print("  per configuration (final epoch):   cache-off  cache-on  tuner")
        by_config: dict[tuple[str, str], dict[str, float]] = {}
        for name, item in analysed.items():
            for trial in item["trials"]:
                key = (str(trial["unfreeze"]), str(trial["depth"]))
                by_config.setdefault(key, {})[name] = trial["metrics"].get(
                    "val_accuracy", float("nan")
                )
        for t in tuner["trials"]:
            key = (str(t["unfreeze"]), str(t["depth"]))
            by_config.setdefault(key, {})["tuner"] = t["final_val_accuracy"]
        for key in sorted(by_config):
            row = by_config[key]
            print(
                f"    unfreeze={key[0]}, depth={key[1]:<18}"
                + "".join(
                    f"{row.get(n, float('nan')):9.3f} " for n in ("cache_off", "cache_on", "tuner")
                )
            )

    if on:
        parts = on["parts"]
        wall = on["run"]["wall"]
        lower = parts["feature pass"] + parts["training steps"]
        outside = wall - lower
        print("\nLower bound (cache on): feature passes + training steps")
        print(
            f"  {parts['feature pass']:.1f} s + {parts['training steps']:.1f} s = {lower:.1f} s;"
            f" cache-on wall / lower bound = {fmt_ratio(wall, lower)}"
        )
        print(
            f"  outside training steps and feature passes: {outside:.1f} s = "
            f"{100 * outside / wall:.1f} % of the cache-on wall"
        )
        print("\nTargets")
        if tuner:
            ratio = tuner["wall"] / wall
            value = on["best"][0]
            tuner_best = max(
                t["final_val_accuracy"]
                for t in tuner.get("trials", [{"final_val_accuracy": float("nan")}])
            )
            same = abs(value - tuner_best) <= 0.01
            print(
                f"  cache on ≥ 10× faster than the tuner:  {ratio:.2f}×  "
                f"{'MET' if ratio >= 10 else 'MISSED'}"
            )
            print(
                f"  same best val_accuracy (±1 point):     {value:.3f} vs {tuner_best:.3f}  "
                f"{'MET' if same else 'MISSED'}"
            )
        print(
            f"  cache-on wall ≤ 1.3× lower bound:      {wall / lower:.2f}×  "
            f"{'MET' if wall / lower <= 1.3 else 'MISSED'}"
        )
        print(
            f"  outside training+features ≤ 10 %:      {100 * outside / wall:.1f} %  "
            f"{'MET' if outside / wall <= 0.10 else 'MISSED'}"
        )

    defaults = {
        name: results[name]
        for name in ("default_cold", "default_warm", "default_warm_off")
        if name in results
    }
    if defaults:
        print(
            "\nDefault `capsweep -m` (small_resnet on digits, sweeps/capacity.yaml, 8 × 3 repeats)"
        )
        targets = {"default_cold": 180.0, "default_warm": 120.0, "default_warm_off": 120.0}
        titles = {
            "default_cold": "cold, cache on (pretraining included)",
            "default_warm": "pretrained weights cached, cache on",
            "default_warm_off": "pretrained weights cached, cache off",
        }
        for name, run in defaults.items():
            trials = mlflow_trials(Path(run["outputs"]))
            train = sum(float(t["metrics"].get("fit_seconds", 0.0)) for t in trials)
            feature = sum(float(t["metrics"].get("feature_seconds", 0.0)) for t in trials)
            verdict = "MET" if run["wall"] <= targets[name] else "MISSED"
            if name == "default_warm_off":
                verdict = "(comparison)"
            print(
                f"  {titles[name]:<40} {run['wall']:6.1f} s  (target ≤ {targets[name]:.0f} s: "
                f"{verdict}); {len(trials)} trials, training steps {train:.1f} s, "
                f"feature passes {feature:.1f} s, exit {run['returncode']}"
            )
            if name == "default_cold" and "default_warm" in defaults:
                print(
                    f"    cold − warm (≈ pretraining + its start-up): "
                    f"{run['wall'] - defaults['default_warm']['wall']:.1f} s"
                )
        for name in ("default_warm", "default_warm_off"):
            if name in defaults:
                run = defaults[name]
                trials = mlflow_trials(Path(run["outputs"]))
                parts = breakdown(run, trials)
                print(f"  where the time went, {titles[name]}:")
                wall = run["wall"]
                for part, seconds in grouped(parts, wall).items():
                    print(f"    {part:<46} {seconds:7.1f} s  {100 * seconds / wall:5.1f} %")
                startup = parts["process start-up, sweep set-up"]
                between = parts["between trials (Hydra job, Optuna, MLflow run)"]
                print(
                    f"    of which process start-up {startup:.1f} s, between trials "
                    f"{between:.1f} s, in-run logging "
                    f"{parts['in-run logging (MLflow, artifacts)']:.1f} s, model build "
                    f"{parts['model build']:.1f} s, trace {parts['trace (first step)']:.1f} s"
                )


# --------------------------------------------------------------------------- main


def machine() -> str:
    import platform

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
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model or 'unknown'}), "
        f"no GPU, load average {load:.2f} at start, Python {platform.python_version()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=64, help="backbone.input_size")
    parser.add_argument("--backbone", default="mobilenetv2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--unit", default="block", help="capacity.unit")
    parser.add_argument("--unfreeze", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    # 0.15 / 0.10 give ~1,350 training images; image_folder's defaults (0.2 / 0.2) ~1,080.
    parser.add_argument("--val-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.10)
    parser.add_argument("--skip-tuner", action="store_true", help="no KerasTuner baseline")
    parser.add_argument("--skip-default", action="store_true", help="no default capsweep -m")
    parser.add_argument(
        "--default-cache-off",
        action="store_true",
        help="also time the default sweep warm with cache.enabled=false",
    )
    parser.add_argument("--work", type=Path, help="working folder (default: a new temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the working folder")
    parser.add_argument(
        "--report-only", type=Path, metavar="DIR", help="print the report of a kept run again"
    )
    parser.add_argument(
        "--weights",
        choices=["calibrated", "null"],
        default="calibrated",
        help="calibrated: random weights with BatchNorm statistics set from the training\n"
        "images (a backbone.weights file); null: Keras' random init (every trial at chance)",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.worker:
        spec = json.loads(options.worker)
        if spec.get("job") == "calibrate":
            calibrated_weights_worker(spec)
        else:
            tuner_worker(spec)
        return
    if options.report_only:
        report(options.report_only, json.loads((options.report_only / RESULTS).read_text()))
        return

    work = options.work or Path(tempfile.mkdtemp(prefix="sweep-speed-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"working folder: {work}", flush=True)
    data_dir = work / "digits_png"
    n_images = write_digits_folder(data_dir)
    results: dict[str, Any] = {
        "setup": {
            "backbone": options.backbone,
            "size": options.size,
            "epochs": options.epochs,
            "batch_size": options.batch_size,
            "unit": options.unit,
            "unfreeze": options.unfreeze,
            "depths": options.depths,
            "val_fraction": options.val_fraction,
            "test_fraction": options.test_fraction,
            "n_images": n_images,
            "machine": machine(),
        }
    }

    def save() -> None:
        (work / RESULTS).write_text(json.dumps(results, indent=1))

    options.weights_file = None
    if options.weights == "calibrated":
        options.weights_file = str(make_calibrated_weights(options, data_dir, work))
    results["setup"]["weights"] = options.weights_file or "null"
    grid = grid_overrides(options, data_dir)
    for name, enabled in (("cache_off", "false"), ("cache_on", "true")):
        results[name] = run_capsweep(work / name, [*grid, f"cache.enabled={enabled}"], name)
        save()
    if not options.skip_tuner:
        results["tuner"] = run_tuner_process(options, data_dir, work)
        results["setup"]["n_train"] = results["tuner"].get("n_train")
        results["setup"]["n_val"] = results["tuner"].get("n_val")
        save()
    if not options.skip_default:
        cold = work / "default_cold"
        results["default_cold"] = run_capsweep(cold, [], "default_cold")
        save()
        warm_runs = [("default_warm", [])]
        if options.default_cache_off:
            warm_runs.append(("default_warm_off", ["cache.enabled=false"]))
        for name, extra in warm_runs:
            outputs = work / name
            if (cold / "pretrained").is_dir():
                shutil.copytree(cold / "pretrained", outputs / "pretrained")
            results[name] = run_capsweep(outputs, extra, name)
            save()

    report(work, results)
    if options.keep or options.work:
        print(f"\nkept: {work}  (--report-only {work} prints this again)")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
