"""The command line, and the settings of one benchmark run that every path shares."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WORKLOADS = ("grid", "careful")


@dataclass(frozen=True)
class Setup:
    """What every path of one run trains: the same grid, data, model and epochs.

    ``rates`` and ``repeats`` are the careful workload's: each configuration's backbone
    learning rate tuned among ``rates``, and ``repeats`` runs on fresh seeds.
    """

    workload: str
    backbone: str
    size: int
    epochs: int
    batch_size: int
    unit: str
    unfreeze: list[int]
    depths: list[int]
    val_fraction: float
    test_fraction: float
    rates: list[float] = field(default_factory=list)
    repeats: int = 1
    tuner_skip_inert: bool = False
    weights_file: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """For results.json (``weights``: the file, or ``null``)."""
        values = dataclasses.asdict(self)
        values["weights"] = values.pop("weights_file") or "null"
        return values


def setup_from(options: argparse.Namespace) -> Setup:
    """The run's settings from the parsed options.

    Raises:
        ValueError: a careful workload with nothing to tune (no unfreeze count above 0, no
            rate, a rate that is not positive) or fewer than one repeat.
    """
    careful = options.workload == "careful"
    if careful:
        check_careful(options.unfreeze, options.rates, options.repeats)
    return Setup(
        workload=options.workload,
        backbone=options.backbone,
        size=options.size,
        epochs=options.epochs,
        batch_size=options.batch_size,
        unit=options.unit,
        unfreeze=options.unfreeze,
        depths=options.depths,
        val_fraction=options.val_fraction,
        test_fraction=options.test_fraction,
        rates=options.rates if careful else [],
        repeats=options.repeats if careful else 1,
        tuner_skip_inert=careful and options.tuner_skip_inert,
    )


def check_careful(unfreeze: list[int], rates: list[float], repeats: int) -> None:
    """Refuse a careful workload capsweep would refuse, before anything runs."""
    if not any(count > 0 for count in unfreeze):
        raise ValueError(
            f"--workload careful tunes the backbone's learning rate, which has no effect "
            f"when nothing of it trains, but got --unfreeze {unfreeze}: add a count above 0"
        )
    if not rates or any(rate <= 0 for rate in rates):
        raise ValueError(f"--rates must be positive learning rates, but got {rates}")
    if repeats < 1:
        raise ValueError(f"--repeats must be at least 1, but got {repeats=}")


def parser(description: str) -> argparse.ArgumentParser:
    """Every option; ``description`` is the package's docstring."""
    parse = argparse.ArgumentParser(
        prog="python -m benchmarks.sweep_speed",
        description=description,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parse.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="grid",
        help="grid: the capacity grid, one run per configuration at capsweep's default\n"
        "rates; careful: the grid × --rates (the backbone's learning rate) × --repeats",
    )
    parse.add_argument("--epochs", type=int, default=10)
    parse.add_argument("--size", type=int, default=64, help="backbone.input_size")
    parse.add_argument("--backbone", default="mobilenetv2")
    parse.add_argument("--batch-size", type=int, default=64)
    parse.add_argument("--unit", default="block", help="capacity.unit")
    parse.add_argument("--unfreeze", type=int, nargs="+", default=[0, 1, 2])
    parse.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    careful_options(parse)
    # 0.15 / 0.10 give ~1,350 training images; image_folder's defaults (0.2 / 0.2) ~1,080.
    parse.add_argument("--val-fraction", type=float, default=0.15)
    parse.add_argument("--test-fraction", type=float, default=0.10)
    parse.add_argument("--skip-tuner", action="store_true", help="no KerasTuner baseline")
    parse.add_argument(
        "--skip-cache-off", action="store_true", help="no capsweep -m with cache.enabled=false"
    )
    parse.add_argument("--skip-default", action="store_true", help="no default capsweep -m")
    parse.add_argument(
        "--default-cache-off",
        action="store_true",
        help="also time the default sweep warm with cache.enabled=false",
    )
    parse.add_argument("--work", type=Path, help="working folder (default: a new temp folder)")
    parse.add_argument("--keep", action="store_true", help="keep the working folder")
    parse.add_argument(
        "--report-only", type=Path, metavar="DIR", help="print the report of a kept run again"
    )
    parse.add_argument(
        "--weights",
        choices=["calibrated", "null"],
        default="calibrated",
        help="calibrated: random weights with BatchNorm statistics set from the training\n"
        "images (a backbone.weights file); null: Keras' random init (every trial at chance)",
    )
    parse.add_argument("--worker", help=argparse.SUPPRESS)
    return parse


def careful_options(parse: argparse.ArgumentParser) -> None:
    """The options of ``--workload careful``."""
    parse.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[0.0003, 0.001, 0.003],
        help="careful: the backbone learning rates each configuration is tuned over",
    )
    parse.add_argument(
        "--repeats", type=int, default=3, help="careful: runs of each configuration's best rate"
    )
    parse.add_argument(
        "--tuner-skip-inert",
        action="store_true",
        help="careful: KerasTuner tries the rates only where something of the backbone\n"
        "trains (a conditional hyperparameter), as capsweep does; default: every rate\n"
        "everywhere, as a plain GridSearch over the grid × the rates does",
    )
