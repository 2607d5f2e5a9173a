"""Block discovery from a functional model's layer graph.

A *cut point* is a layer whose output every path from input to output passes through.
In a topological order that is exactly a layer that no edge jumps over. Stretches between
cut points that contain a branch (a residual or squeeze-excite path) are the
architecture's blocks; plain sequential layers around them join the block before them
(or, before the first branch, the block after them). This works for any functional
backbone, with no table of layer names per model.

The functions here are pure: they take layer names and edges, not Keras objects, except
:func:`inbound_layers`, which reads the edges from a model's public ``get_config()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any


def inbound_layers(model: Any) -> dict[str, list[str]]:
    """Map each layer name of a functional Keras model to the names of the layers feeding it."""
    graph: dict[str, list[str]] = {}
    for layer_config in model.get_config()["layers"]:
        sources: list[str] = []
        for node in layer_config.get("inbound_nodes", []):
            sources.extend(_history_names(node))
        graph[layer_config["name"]] = list(dict.fromkeys(sources))
    return graph


def _history_names(value: Any) -> Iterator[str]:
    """Yield the source layer names of the serialized tensors nested in ``value``."""
    if isinstance(value, dict):
        config = value.get("config")
        if isinstance(config, dict) and "keras_history" in config:
            yield config["keras_history"][0]
            return
        for item in value.values():
            yield from _history_names(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _history_names(item)


def cut_points(order: Sequence[str], inbound: Mapping[str, Sequence[str]]) -> list[bool]:
    """Say, for each layer in topological ``order``, whether every path passes through it."""
    position = {name: index for index, name in enumerate(order)}
    # The furthest position an edge leaving each position lands on.
    furthest_target = list(range(len(order)))
    for target, sources in inbound.items():
        for source in sources:
            source_position = position[source]
            furthest_target[source_position] = max(
                furthest_target[source_position], position[target]
            )
    is_cut = []
    reach = -1
    for index in range(len(order)):
        # An edge from before this layer that lands after it jumps over it.
        is_cut.append(reach <= index)
        reach = max(reach, furthest_target[index])
    return is_cut


def find_blocks(
    order: Sequence[str],
    inbound: Mapping[str, Sequence[str]],
    has_weights: Mapping[str, bool],
) -> list[list[str]]:
    """Group the layers of a backbone (input layer excluded) into blocks, first to last.

    Args:
        order: Layer names in topological order, the input layer first.
        inbound: For each layer, the names of the layers feeding it.
        has_weights: For each layer, whether it holds weights.

    Returns:
        The blocks as lists of layer names. A backbone without branches has one block per
        weighted layer, each with the weightless layers that follow it.
    """
    layers = list(order[1:])
    is_cut = cut_points(order, inbound)[1:]
    segments: list[list[str]] = []
    current: list[str] = []
    for name, cut in zip(layers, is_cut, strict=True):
        current.append(name)
        if cut:
            segments.append(current)
            current = []
    if current:
        segments.append(current)

    if not any(len(segment) > 1 for segment in segments):
        return _weighted_groups(layers, has_weights)

    blocks: list[list[str]] = []
    leading: list[str] = []
    for segment in segments:
        if len(segment) > 1:
            blocks.append(leading + segment)
            leading = []
        elif blocks:
            blocks[-1].extend(segment)
        else:
            leading.extend(segment)
    return blocks


def _weighted_groups(layers: Sequence[str], has_weights: Mapping[str, bool]) -> list[list[str]]:
    groups: list[list[str]] = []
    leading: list[str] = []
    for name in layers:
        if has_weights[name]:
            groups.append([*leading, name])
            leading = []
        elif groups:
            groups[-1].append(name)
        else:
            leading.append(name)
    return groups or [list(layers)]
