"""``capsweep-plan``: what each capacity setting would train, without data or training.

    capsweep-plan backbone=resnet50 backbone.weights=null backbone.input_size=224 \\
        data.num_classes=4 head.width=256

takes the same overrides as ``capsweep`` and prints parameter counts per unfreeze setting
and head depth, in seconds: the backbone is built once with random weights (counts do
not depend on weights) and nothing is loaded or trained.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from rich.console import Console
from rich.table import Table

from capsweep.errors import CapsweepConfigError
from capsweep.hydra_settings import compose_config, settings_from
from capsweep.settings import CapsweepConfig, check_settings
from capsweep.settings.unit_range import LAST


def render(settings: CapsweepConfig, rows: list[dict[str, int]], summary: dict[str, int]) -> Table:
    unit = settings.capacity.unit.name
    position = settings.capacity.position
    counted = f"unfrozen {unit}s" if position == LAST else f"{unit}s unfrozen from {position}"
    table = Table(
        title=(
            f"{settings.backbone.name} at {settings.backbone.input_size}px: "
            f"{summary['backbone_layers']} layers, {summary['backbone_params']:,} parameters, "
            f"{summary['available_units']} units of kind {unit}; "
            f"{summary['num_classes']} classes, head width {settings.head.width}"
        )
    )
    columns = [
        ("unfreeze", counted),
        ("head_depth", "head depth"),
        ("trainable_params", "trainable"),
        ("trainable_backbone_params", "in backbone"),
        ("trainable_head_params", "in head"),
        ("non_trainable_params", "frozen"),
        ("unfrozen_layers", "layers"),
        ("unfrozen_weighted_layers", "weighted layers"),
        ("unfrozen_blocks", "blocks"),
    ]
    for _, header in columns:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(*(f"{row[key]:,}" for key, _ in columns))
    return table


def plan(
    settings: CapsweepConfig,
) -> tuple[list[dict[str, int]], dict[str, int], list[dict[str, object]]]:
    """The plan's rows, summary and positions; TensorFlow loads here, after the checks."""
    from capsweep.data import planned_num_classes
    from capsweep.model.capacity_plan import plan_rows, planned_backbone, position_rows

    num_classes = planned_num_classes(settings.data)
    backbone = planned_backbone(settings.backbone)
    rows, summary = plan_rows(backbone, settings.capacity, settings.head, num_classes)
    return rows, summary, position_rows(backbone, settings.capacity)


def render_positions(settings: CapsweepConfig, rows: list[dict[str, object]]) -> Table:
    """For ``capacity.unfreeze`` units, each position: the layers and parameters that train."""
    capacity = settings.capacity
    table = Table(
        title=f"capacity.unfreeze={capacity.unfreeze} {capacity.unit.name}(s) at each "
        "capacity.position (0 = the first unit; last = the last row)"
    )
    for header in ("position", "units", "layers that train", "trainable in backbone"):
        table.add_column(header, justify="left" if header == "layers that train" else "right")
    for row in rows:
        table.add_row(
            str(row["start"]),
            str(row["units"]),
            str(row["layers"]),
            f"{row['trainable_backbone_params']:,}",
        )
    return table


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: Hydra overrides in, a table out."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in overrides):
        print(__doc__)
        return
    try:
        settings = settings_from(compose_config(overrides))
        # A plan builds with random weights: where weights would come from is not its concern.
        check_settings(
            dataclasses.replace(
                settings, backbone=dataclasses.replace(settings.backbone, weights=None)
            )
        )
        rows, summary, positions = plan(settings)
    except CapsweepConfigError as error:
        print(f"capsweep-plan: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    console = Console(width=160)
    console.print(render(settings, rows, summary))
    if settings.capacity.unfreeze and positions:
        console.print(render_positions(settings, positions))


if __name__ == "__main__":
    main()
