"""What each capacity setting of one backbone would train, counted without training."""

from __future__ import annotations

import dataclasses
from typing import Any

from capsweep.model.backbones import build_configured_backbone
from capsweep.model.capacity import backbone_units, capacity_report, unfreeze_units
from capsweep.model.transfer import head_parameters
from capsweep.settings import BackboneConfig, CapacityConfig, HeadConfig
from capsweep.settings.unit_range import start_index


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


def position_rows(backbone: Any, capacity: CapacityConfig) -> list[dict[str, object]]:
    """For ``capacity.unfreeze`` units, each position they may start at: which layers
    train and how many backbone parameters (the head's do not depend on it)."""
    available = len(backbone_units(backbone, capacity.unit, train_bn=capacity.train_bn))
    rows: list[dict[str, object]] = []
    for start in range(available - capacity.unfreeze + 1):
        unfrozen = unfreeze_units(
            backbone, capacity.unfreeze, capacity.unit, position=start, train_bn=capacity.train_bn
        )
        report = capacity_report(backbone, 0, 0, unfrozen)
        rows.append(
            {
                "start": start,
                "units": f"{start}–{start + capacity.unfreeze - 1}",
                "layers": f"{unfrozen.layers[0]} … {unfrozen.layers[-1]}"
                if unfrozen.layers
                else "-",
                "trainable_backbone_params": report.trainable_backbone_params,
            }
        )
    return rows


def planned_backbone(backbone_settings: BackboneConfig) -> Any:
    """The backbone with random weights: parameter counts do not depend on weights."""
    return build_configured_backbone(backbone_settings, None)


def plan_rows(
    backbone: Any,
    capacity: CapacityConfig,
    head: HeadConfig,
    num_classes: int,
) -> tuple[list[dict[str, int]], dict[str, int]]:
    """Account for each count of units unfrozen from ``capacity.position`` and each head depth.

    Counts whose range would run past the last unit (from a start index) are left out.

    Returns:
        One row per (unfreeze, head depth) with the capacity report's counts, and a
        summary of the backbone (layers, parameters, units available, classes).
    """
    available = len(backbone_units(backbone, capacity.unit, train_bn=capacity.train_bn))
    # A head's parameters do not depend on what the backbone unfreezes: count them once.
    heads = {
        depth: head_parameters(
            backbone.output_shape[1:], num_classes, dataclasses.replace(head, depth=depth)
        )
        for depth in sorted({0, 1, head.depth})
    }
    rows = []
    for unfreeze in unfreeze_settings(available):
        if start_index(available, unfreeze, capacity.position) + unfreeze > available:
            continue
        unfrozen = unfreeze_units(
            backbone,
            unfreeze,
            capacity.unit,
            position=capacity.position,
            train_bn=capacity.train_bn,
        )
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
