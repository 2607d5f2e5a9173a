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

from hydra import compose, initialize_config_dir
from rich.console import Console
from rich.table import Table

from capsweep.errors import CapsweepConfigError
from capsweep.paths import CONF_DIR
from capsweep.schema import CapsweepConfig, register_configs


def unfreeze_settings(available: int, limit: int = 12) -> list[int]:
    """All counts 0..available when few; else 0, powers of two, and ``available``."""
    if available <= limit:
        return list(range(available + 1))
    counts = {0, available}
    power = 1
    while power < available:
        counts.add(power)
        power *= 2
    return sorted(counts)


def plan_rows(settings: CapsweepConfig) -> tuple[list[dict[str, int]], dict[str, int]]:
    """Build the backbone once and account for each (unfreeze, head depth) setting."""
    from capsweep.backbones import build_backbone
    from capsweep.capacity import backbone_units, capacity_report, unfreeze_last
    from capsweep.data import planned_num_classes
    from capsweep.transfer import head_parameters
    from capsweep.trial import check_settings

    check_settings(settings)
    num_classes = planned_num_classes(settings.data)
    backbone = build_backbone(
        settings.backbone.name,
        settings.backbone.input_size,
        None,
        filters=settings.backbone.filters,
        blocks_per_stage=settings.backbone.blocks_per_stage,
    )
    capacity = settings.capacity
    available = len(backbone_units(backbone, capacity.unit, train_bn=capacity.train_bn))
    # A head's parameters do not depend on what the backbone unfreezes: count them once.
    heads = {
        depth: head_parameters(
            backbone.output_shape[1:], num_classes, dataclasses.replace(settings.head, depth=depth)
        )
        for depth in sorted({0, 1, settings.head.depth})
    }
    rows = []
    for unfreeze in unfreeze_settings(available):
        unfrozen = unfreeze_last(backbone, unfreeze, capacity.unit, train_bn=capacity.train_bn)
        for depth, (head_trainable, head_total) in heads.items():
            report = capacity_report(backbone, head_trainable, head_total, unfrozen)
            rows.append({"unfreeze": unfreeze, "head_depth": depth, **report.as_dict()})
    summary = {
        "backbone_layers": len(backbone.layers),
        "backbone_params": rows[0]["backbone_params"],
        "available_units": available,
        "num_classes": num_classes,
    }
    return rows, summary


def render(settings: CapsweepConfig, rows: list[dict[str, int]], summary: dict[str, int]) -> Table:
    unit = settings.capacity.unit.name
    table = Table(
        title=(
            f"{settings.backbone.name} at {settings.backbone.input_size}px: "
            f"{summary['backbone_layers']} layers, {summary['backbone_params']:,} parameters, "
            f"{summary['available_units']} units of kind {unit}; "
            f"{summary['num_classes']} classes, head width {settings.head.width}"
        )
    )
    columns = [
        ("unfreeze", f"unfrozen {unit}s"),
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


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: Hydra overrides in, a table out."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    if any(arg in ("-h", "--help") for arg in overrides):
        print(__doc__)
        return
    register_configs()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    from capsweep.trial import settings_from

    settings = settings_from(cfg)
    try:
        rows, summary = plan_rows(settings)
    except CapsweepConfigError as error:
        print(f"capsweep-plan: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    Console(width=160).print(render(settings, rows, summary))


if __name__ == "__main__":
    main()
