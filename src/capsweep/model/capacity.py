"""Freeze a backbone, unfreeze N of its units (the last, the first, or from any position),
and account for what that trains.

Units are real blocks (:mod:`capsweep.model.blocks`), layers that hold trainable weights, or raw
Keras layers. This module knows Keras models but no MLflow, Optuna or CLI.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

from capsweep.model.blocks import find_blocks, inbound_layers
from capsweep.settings import Unit
from capsweep.settings.unit_range import LAST, unit_range

log = logging.getLogger(__name__)


def is_batch_norm(layer: Any) -> bool:
    """Whether ``layer`` normalizes with batch statistics (BatchNormalization and kin)."""
    return "BatchNormalization" in type(layer).__name__


def _holds_trainable_weights(layer: Any, train_bn: bool) -> bool:
    if is_batch_norm(layer) and not train_bn:
        return False
    return bool(layer.weights)


def backbone_units(backbone: Any, unit: Unit, *, train_bn: bool = False) -> list[list[str]]:
    """List the backbone's units of kind ``unit``, first to last, as lists of layer names.

    With ``train_bn`` false, BatchNorm layers stay frozen, so they are not counted as
    weighted layers.
    """
    layers = [layer for layer in backbone.layers if type(layer).__name__ != "InputLayer"]
    if unit is Unit.layer:
        return [[layer.name] for layer in layers]
    if unit is Unit.weighted_layer:
        return [[layer.name] for layer in layers if _holds_trainable_weights(layer, train_bn)]
    order = [layer.name for layer in backbone.layers]
    has_weights = {layer.name: bool(layer.weights) for layer in backbone.layers}
    return find_blocks(order, inbound_layers(backbone), has_weights)


def _param_count(weights: Any) -> int:
    return sum(math.prod(int(dim) for dim in weight.shape) for weight in weights)


def units_to_unfreeze(
    backbone: Any, unfreeze: int, unit: Unit, *, position: Any = LAST, train_bn: bool = False
) -> tuple[list[list[str]], range]:
    """The backbone's units of kind ``unit``, and the indices of those a setting trains.

    Raises:
        CapsweepConfigError: ``unfreeze`` is negative, not an integer, or more than the
            backbone has, or the range from ``position`` runs past its last unit.
    """
    units = backbone_units(backbone, unit, train_bn=train_bn)
    chosen = unit_range(len(units), unfreeze, position, backbone=backbone.name, unit=unit.name)
    return units, chosen


@dataclass(frozen=True)
class Unfrozen:
    """Which backbone layers a capacity setting trains: units ``start`` to ``start +
    requested - 1`` (0 = the first) of the ``available`` of kind ``unit``."""

    unit: Unit
    requested: int
    available: int
    layers: tuple[str, ...]
    start: int = 0


def unfreeze_units(
    backbone: Any, unfreeze: int, unit: Unit, *, position: Any = LAST, train_bn: bool = False
) -> Unfrozen:
    """Freeze ``backbone``, then make ``unfreeze`` of its units trainable, from ``position``
    (``last``: the last ones; ``first``; or the index of the first, 0-based).

    The frozen units after the range still pass the gradient on to it. BatchNorm layers
    stay frozen (inference mode) unless ``train_bn``.

    Raises:
        CapsweepConfigError: ``unfreeze`` is negative, not an integer, or more than the
            backbone has, or the range runs past its last unit.
    """
    units, chosen = units_to_unfreeze(
        backbone, unfreeze, unit, position=position, train_bn=train_bn
    )
    selected = [name for index in chosen for name in units[index]]
    backbone.trainable = True
    for layer in backbone.layers:
        layer.trainable = False
    for name in selected:
        layer = backbone.get_layer(name)
        layer.trainable = train_bn or not is_batch_norm(layer)
    if unfreeze and not backbone.trainable_weights:
        _warn_weightless(backbone, unfreeze, unit, units, selected, train_bn, position)
    return Unfrozen(
        unit=unit,
        requested=unfreeze,
        available=len(units),
        layers=tuple(selected),
        start=chosen.start,
    )


def _warn_weightless(
    backbone: Any,
    unfreeze: int,
    unit: Unit,
    units: list[list[str]],
    selected: list[str],
    train_bn: bool,
    position: Any,
) -> None:
    needed = (
        None
        if position != LAST
        else next(
            (
                count
                for count in range(unfreeze + 1, len(units) + 1)
                if any(
                    _holds_trainable_weights(backbone.get_layer(name), train_bn)
                    for name in units[len(units) - count]
                )
            ),
            None,
        )
    )
    if needed:
        hint = f"capacity.unfreeze={needed} is the smallest {unit.name} count that trains weights"
    elif position != LAST:
        hint = "move capacity.position or raise capacity.unfreeze"
    else:
        hint = "no count of this unit trains weights"
    log.warning(
        "capacity.unfreeze=%d with capacity.unit=%s unfreezes only weightless layers (%s): "
        "it trains 0 backbone parameters. %s, or use capacity.unit=block.",
        unfreeze,
        unit.name,
        ", ".join(selected),
        hint,
    )


@dataclass(frozen=True)
class CapacityReport:
    """Parameter accounting of one transfer model."""

    total_params: int
    trainable_params: int
    non_trainable_params: int
    trainable_backbone_params: int
    trainable_head_params: int
    backbone_params: int
    backbone_layers: int
    unfrozen_layers: int
    unfrozen_weighted_layers: int
    unfrozen_blocks: int
    available_units: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def capacity_report(
    backbone: Any, head_trainable_params: int, head_total_params: int, unfrozen: Unfrozen
) -> CapacityReport:
    """Account for a model made of ``backbone`` (as currently frozen) and a head.

    Args:
        backbone: The backbone model, after :func:`unfreeze_units`.
        head_trainable_params: Trainable parameters outside the backbone.
        head_total_params: All parameters outside the backbone.
        unfrozen: What :func:`unfreeze_units` returned.
    """
    backbone_total = _param_count(backbone.weights)
    backbone_trainable = _param_count(backbone.trainable_weights)
    unfrozen_names = set(unfrozen.layers)
    trained_layers = [
        layer for layer in backbone.layers if layer.name in unfrozen_names and layer.trainable
    ]
    blocks = backbone_units(backbone, Unit.block)
    trained_names = {layer.name for layer in trained_layers if layer.trainable_weights}
    total = backbone_total + head_total_params
    trainable = backbone_trainable + head_trainable_params
    return CapacityReport(
        total_params=total,
        trainable_params=trainable,
        non_trainable_params=total - trainable,
        trainable_backbone_params=backbone_trainable,
        trainable_head_params=head_trainable_params,
        backbone_params=backbone_total,
        backbone_layers=len(backbone.layers),
        unfrozen_layers=len(unfrozen.layers),
        unfrozen_weighted_layers=len(trained_names),
        unfrozen_blocks=sum(1 for block in blocks if trained_names.intersection(block)),
        available_units=unfrozen.available,
    )
