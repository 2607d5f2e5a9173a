"""Does capsweep train on this machine's GPUs? A short pass/fail table, for a CUDA machine.

UNTESTED ON A GPU until someone runs it on a CUDA machine: it was written on machines
without one, where ``--allow-cpu`` ran the plumbing of each check on the CPU.

Each check runs capsweep as a user does, in fresh outputs folders of its own under one
temporary folder, on the embedded digits with a randomly initialized backbone (no
pretraining, no download):

a. one trial trains on the GPU: its start-up line says ``training on GPU…`` and its MLflow
   run is FINISHED with a finite loss;
b. two local workers, one GPU each: ``capsweep -m hydra/launcher=joblib
   hydra.launcher.n_jobs=2 hydra.sweeper.n_jobs=2 hydra.sweeper.gpus=[0,1]`` on a 4-point
   grid, recording to a local ``mlflow server`` (SQLite backend in the temporary folder:
   capsweep refuses MLflow on SQLite for parallel trials); the trials' Optuna user attribute
   ``capsweep.worker.0`` must name two different ``cuda_visible_devices``, one per worker
   process (skipped with fewer than 2 GPUs);
c. ``trainer.mixed_precision=mixed_float16`` completes a trial with a finite loss;
d. ``trainer.jit_compile=true`` completes a trial with a finite loss;
e. the feature cache: one trial with ``cache.enabled=false``, then two with it on (the
   first computes the features, the second reads them): their times and the ratio.

Exits 0 when every check passes (or is skipped), 1 when one fails, and 2 when TensorFlow
sees no GPU here (unless ``--allow-cpu``: the checks then run on the CPU, ``c`` with
``mixed_bfloat16`` since capsweep refuses float16 on a CPU; a pass says nothing about a
GPU). Run from the repository's root:

    uv run --extra cluster python benchmarks/gpu_check.py
    uv run --extra cluster python benchmarks/gpu_check.py --backbone resnet50 --size 128
    uv run --extra cluster python benchmarks/gpu_check.py --only b e --keep
    uv run --extra cluster python benchmarks/gpu_check.py --allow-cpu --epochs 1 --size 32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
PASS, FAIL, SKIP = "PASS", "FAIL", "SKIP"
# A small trial: the embedded digits, small_resnet with random weights (no pretraining).
TRIAL = [
    "backbone.weights=null",
    "capacity.unfreeze=1",
    "head.depth=0",
    "trainer.early_stopping_patience=null",
]


@dataclass
class Check:
    """One row of the table."""

    name: str
    result: str
    detail: str


@dataclass
class Run:
    """What one ``capsweep`` single run left: its console, exit, time and MLflow record."""

    returncode: int
    seconds: float
    console: str
    status: str = "none"
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)

    @property
    def where(self) -> str:
        """capsweep's start-up line (``TensorFlow …: training on …``), or what is missing."""
        lines = [line for line in self.console.splitlines() if ": training on " in line]
        if not lines:
            return "no start-up line"
        return lines[-1][lines[-1].find("TensorFlow") :].strip()

    @property
    def on_gpu(self) -> bool:
        return "training on GPU" in self.where or "training on /device:GPU" in self.where

    @property
    def trained(self) -> bool:
        """Exit 0, the run FINISHED, and every epoch's loss finite."""
        finite = bool(self.losses) and all(math.isfinite(loss) for loss in self.losses)
        return self.returncode == 0 and self.status == "FINISHED" and finite

    def summary(self) -> str:
        loss = f"{self.losses[-1]:.4g}" if self.losses else "none"
        return f"exit {self.returncode}, run {self.status}, final loss {loss}, {self.where}"


def capsweep(arguments: list[str], log: Path, timeout: float) -> tuple[int, float, str]:
    """Run ``capsweep`` with ``arguments``; its exit, seconds and console (kept in ``log``)."""
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [str(BIN / "capsweep"), *arguments],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        returncode, console = done.returncode, done.stdout
    except subprocess.TimeoutExpired as expired:
        returncode, console = -1, f"{expired.output or ''}\n[timed out after {timeout:.0f} s]"
    log.write_text(console)
    return returncode, time.perf_counter() - started, console


def single_run(outputs: Path, overrides: list[str], timeout: float) -> Run:
    """One ``capsweep`` trial in ``outputs``; its latest MLflow run read back."""
    from mlflow.tracking import MlflowClient

    outputs.mkdir(parents=True, exist_ok=True)
    log = outputs / f"console-{len(list(outputs.glob('console-*.log')))}.log"
    returncode, seconds, console = capsweep([*overrides, f"paths.outputs={outputs}"], log, timeout)
    run = Run(returncode, seconds, console)
    client = MlflowClient(tracking_uri=f"sqlite:///{outputs}/mlflow.db")
    experiment = client.get_experiment_by_name("capsweep")
    found = client.search_runs([experiment.experiment_id]) if experiment else []
    if found:  # newest first
        latest = found[0]
        run.status, run.metrics, run.tags = (
            latest.info.status,
            latest.data.metrics,
            latest.data.tags,
        )
        history = client.get_metric_history(latest.info.run_id, "loss")
        run.losses = [m.value for m in sorted(history, key=lambda m: m.step)]
    return run


def trial_on_gpu(root: Path, options: argparse.Namespace) -> Check:
    run = single_run(
        root / "a-trial", [*TRIAL, f"trainer.epochs={options.epochs}"], options.timeout
    )
    passed = run.trained and (run.on_gpu or options.allow_cpu)
    return Check("a. one trial trains on the GPU", PASS if passed else FAIL, run.summary())


def precision(root: Path, options: argparse.Namespace, gpus: list[str]) -> Check:
    policy = "mixed_float16" if gpus else "mixed_bfloat16"
    overrides = [*TRIAL, f"trainer.epochs={options.epochs}", f"trainer.mixed_precision={policy}"]
    run = single_run(root / "c-mixed-precision", overrides, options.timeout)
    passed = run.trained and (run.on_gpu or options.allow_cpu)
    return Check(f"c. {policy} trains, finite loss", PASS if passed else FAIL, run.summary())


def xla(root: Path, options: argparse.Namespace) -> Check:
    overrides = [*TRIAL, f"trainer.epochs={options.epochs}", "trainer.jit_compile=true"]
    run = single_run(root / "d-xla", overrides, options.timeout)
    compiled = run.tags.get("capsweep.xla") == "True"  # how the trained model was compiled
    passed = run.trained and compiled and (run.on_gpu or options.allow_cpu)
    detail = f"{run.summary()}; capsweep.xla={run.tags.get('capsweep.xla')}"
    return Check("d. jit_compile=true trains, finite loss", PASS if passed else FAIL, detail)


def feature_cache(root: Path, options: argparse.Namespace) -> Check:
    """The same trial with the cache off, then on twice (a miss, then a hit)."""
    overrides = [
        *TRIAL,
        f"backbone={options.backbone}",
        f"backbone.input_size={options.size}",
        "data.train_per_class=120",  # 600 training images: features worth caching
        f"trainer.epochs={options.cache_epochs}",
    ]
    off = single_run(root / "e-cache-off", [*overrides, "cache.enabled=false"], options.timeout)
    miss = single_run(root / "e-cache-on", [*overrides, "cache.enabled=true"], options.timeout)
    hit = single_run(root / "e-cache-on", [*overrides, "cache.enabled=true"], options.timeout)
    runs = {"off": off, "on, miss": miss, "on, hit": hit}
    broken = [name for name, run in runs.items() if not run.trained]
    if broken:
        return Check("e. feature cache: one trial's time", FAIL, f"did not train: {broken}")
    if hit.tags.get("capsweep.cache_hit") != "true":
        return Check("e. feature cache: one trial's time", FAIL, "the second run missed")
    times = ", ".join(
        f"{name} {run.seconds:.1f} s (training steps {run.metrics.get('fit_seconds', 0):.1f} s)"
        for name, run in runs.items()
    )
    ratio = off.seconds / hit.seconds
    detail = (
        f"{options.backbone} {options.size} px, process walls: {times}; off / hit = {ratio:.2f}×"
    )
    return Check("e. feature cache: one trial's time", PASS, detail)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[str]:
    """A local ``mlflow server`` on a SQLite file in ``folder``; its URL while it lives."""
    port = free_port()
    log = (folder / "mlflow-server.log").open("w")
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{folder}/mlflow.db",
        "--artifacts-destination", str(folder / "mlartifacts"),
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its workers in a process group of its own, ended together
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{url}/health", timeout=2) as answer,
            ):
                if answer.status == 200:
                    break
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not start: see {log.name}")
            time.sleep(1)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


def two_workers(root: Path, options: argparse.Namespace, gpus: list[str]) -> Check:
    """Two joblib workers on one grid study, each claiming one GPU of ``--gpus``."""
    name = "b. 2 workers, one GPU each"
    if len(gpus) < 2 and not options.allow_cpu:
        return Check(name, SKIP, f"needs 2 GPUs, TensorFlow sees {len(gpus)}")
    outputs = root / "b-two-workers"
    outputs.mkdir(parents=True)
    study = "gpu-check"
    with mlflow_server(outputs) as url:
        arguments = [
            "-m", *TRIAL, f"trainer.epochs={options.epochs}",
            "capacity.unfreeze=choice(0,1)", "head.depth=choice(0,1)",
            "hydra.sweeper.nuisance=null", "hydra.sweeper.repeats=1",
            "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "hydra.sweeper.n_jobs=2",
            f"hydra.sweeper.gpus=[{','.join(str(gpu) for gpu in options.gpus)}]",
            f"hydra.sweeper.study_name={study}", f"tracking.uri={url}",
            f"paths.outputs={outputs}",
        ]  # fmt: skip
        returncode, seconds, _ = capsweep(arguments, outputs / "console.log", options.timeout)
        statuses = mlflow_statuses(url)
    devices = worker_devices(outputs / "optuna" / f"{study}.journal", study)
    distinct = {device for device in devices.values() if device is not None}
    finished = statuses.count("FINISHED")
    # Each worker process logs where it trains once, into the log of its first job.
    starts = [
        line
        for log in (outputs / "multirun").rglob("*.log")
        for line in log.read_text().splitlines()
        if ": training on " in line
    ]
    on_gpu = sum("training on GPU" in line for line in starts)
    detail = (
        f"exit {returncode} after {seconds:.0f} s; {finished}/{len(statuses)} MLflow runs "
        f"FINISHED; worker processes → cuda_visible_devices {devices}; "
        f"{on_gpu}/{len(starts)} started on a GPU"
    )
    placed = len(devices) == 2 and len(distinct) == 2
    on_gpus = len(starts) >= 2 and on_gpu == len(starts)
    passed = returncode == 0 and finished == 4 and placed and (on_gpus or options.allow_cpu)
    return Check(name, PASS if passed else FAIL, detail)


def mlflow_statuses(url: str) -> list[str]:
    """The status of every trial run on the server (the parent run left out)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    experiment = client.get_experiment_by_name("capsweep")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return [run.info.status for run in runs if "capsweep.trial_number" in run.data.tags]


def worker_devices(journal: Path, study: str) -> dict[int, str | None]:
    """Each worker process's ``cuda_visible_devices``, from its trials' user attributes."""
    import optuna

    from capsweep.sweep.study import open_storage

    if not journal.is_file():
        return {}
    trials = optuna.load_study(study_name=study, storage=open_storage(str(journal))).trials
    workers = [
        t.user_attrs["capsweep.worker.0"] for t in trials if "capsweep.worker.0" in t.user_attrs
    ]
    return {int(worker["pid"]): worker["cuda_visible_devices"] for worker in workers}


def visible_gpus() -> list[str]:
    """The GPUs TensorFlow sees here (asked in a process of its own)."""
    probe = (
        "import json, tensorflow as tf; "
        "print(json.dumps([d.name for d in tf.config.list_physical_devices('GPU')]))"
    )
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=environment, check=False
    )
    lines = done.stdout.strip().splitlines()
    return list(json.loads(lines[-1])) if done.returncode == 0 and lines else []


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--allow-cpu", action="store_true", help="run the checks on a CPU")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the checks a-d")
    parser.add_argument("--backbone", default="mobilenetv2", help="check e's backbone")
    parser.add_argument("--size", type=int, default=96, help="check e's input size")
    parser.add_argument("--cache-epochs", type=int, default=10, help="check e's epochs")
    parser.add_argument("--gpus", type=int, nargs=2, default=[0, 1], help="check b's GPU ids")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per command")
    parser.add_argument(
        "--only", nargs="+", choices="abcde", default=list("abcde"), help="run these checks"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def main() -> int:
    options = arguments()
    gpus = visible_gpus()
    print(f"TensorFlow sees {len(gpus)} GPU(s): {', '.join(gpus) or 'none'}", flush=True)
    if not gpus and not options.allow_cpu:
        print(
            "NO GPU: TensorFlow sees no GPU on this machine, so there is nothing to check.\n"
            "Install the CUDA build (`uv pip install 'tensorflow[and-cuda]'`) on a machine "
            "with an NVIDIA driver, or pass --allow-cpu to test the checks' plumbing on the "
            "CPU (which says nothing about a GPU).",
            file=sys.stderr,
        )
        return 2
    root = Path(tempfile.mkdtemp(prefix="capsweep-gpu-check-"))
    print(f"working folder: {root}", flush=True)
    steps = {
        "a": lambda: trial_on_gpu(root, options),
        "b": lambda: two_workers(root, options, gpus),
        "c": lambda: precision(root, options, gpus),
        "d": lambda: xla(root, options),
        "e": lambda: feature_cache(root, options),
    }
    checks = []
    for letter in options.only:
        checks.append(steps[letter]())
        print(f"  {checks[-1].name}: {checks[-1].result}", flush=True)
    print_table(checks, cpu=not gpus)
    if options.keep:
        print(f"\nlogs and MLflow records: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if any(check.result == FAIL for check in checks) else 0


def print_table(checks: list[Check], *, cpu: bool) -> None:
    """The table; on a CPU, a pass is marked: it tested the plumbing, not a GPU."""
    print("\ncapsweep GPU check" + (" -- ON THE CPU (--allow-cpu)" if cpu else ""))
    width = max(len(check.name) for check in checks)
    print(f"{'check':<{width}}  result  detail")
    for check in checks:
        result = f"{check.result}*" if cpu and check.result == PASS else check.result
        print(f"{check.name:<{width}}  {result:<6}  {check.detail}")
    if cpu:
        print("* on the CPU: the check's plumbing works; nothing here was tested on a GPU")


if __name__ == "__main__":
    sys.exit(main())
