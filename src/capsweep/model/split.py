"""Split a transfer model at a block boundary: a frozen prefix and a trainable suffix.

The *cut* is the last cut point (:mod:`capsweep.model.blocks`) of the backbone before its
first layer that trains; with nothing unfrozen it is the backbone's output. Everything up to
the cut is frozen, so its output (the *features*) can be computed once and cached. The
suffix is rebuilt from the same layer objects on a new ``keras.Input``: training it trains
the original model, which still takes raw images.

Keras 3 refuses ``keras.Model(intermediate_tensor, output)``, so the suffix is rebuilt by
calling the layers after the cut again, in topological order, with the arguments their
nodes recorded in the model's public ``get_config()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import keras

from capsweep.model.blocks import cut_points, inbound_layers
from capsweep.model.capacity import is_batch_norm, units_to_unfreeze
from capsweep.settings import Unit
from capsweep.settings.unit_range import LAST

# Layers that draw random numbers in training mode: the prefix computes them in inference
# mode, which only matches the whole model when the backbone runs with training=False.
STOCHASTIC_LAYERS = ("Dropout", "Noise")


def cut_index(is_cut: Sequence[bool], trains: Sequence[bool]) -> int:
    """The position of the last cut point before the first layer that trains.

    Args:
        is_cut: For each layer in topological order (input first), whether it is a cut point.
        trains: For each layer, whether it holds weights that train.

    Returns:
        A position in the order; the last layer when nothing trains.
    """
    first = next((index for index, flag in enumerate(trains) if flag), len(trains))
    return max(index for index in range(first) if is_cut[index])


def _cut_name(backbone: keras.Model, trains: set[str]) -> str:
    order = [layer.name for layer in backbone.layers]
    is_cut = cut_points(order, inbound_layers(backbone))
    return order[cut_index(is_cut, [name in trains for name in order])]


def find_cut(backbone: keras.Model) -> str:
    """The layer of ``backbone`` (frozen as it is now) whose output the features are."""
    return _cut_name(backbone, {layer.name for layer in backbone.layers if layer.trainable_weights})


def planned_cut(
    backbone: keras.Model,
    unfreeze: int,
    unit: Unit,
    *,
    position: Any = LAST,
    train_bn: bool = False,
) -> str:
    """The cut :func:`find_cut` would give once ``unfreeze`` units from ``position`` are
    unfrozen (the last ones by default).

    Reads the layer graph only; the backbone's ``trainable`` flags are left as they are.
    """
    units, chosen = units_to_unfreeze(
        backbone, unfreeze, unit, position=position, train_bn=train_bn
    )
    selected = [name for index in chosen for name in units[index]]
    trains = {
        name
        for name in selected
        if backbone.get_layer(name).weights
        and (train_bn or not is_batch_norm(backbone.get_layer(name)))
    }
    return _cut_name(backbone, trains)


def is_input_cut(backbone: keras.Model, cut: str) -> bool:
    """Whether ``cut`` is the backbone's input layer (everything trains: nothing to cache)."""
    return cut == backbone.layers[0].name


def stochastic_prefix_layers(backbone: keras.Model, cut: str) -> list[str]:
    """The layers up to ``cut`` that behave randomly in training mode (dropout, noise)."""
    names = []
    for layer in backbone.layers:
        if any(kind in type(layer).__name__ for kind in STOCHASTIC_LAYERS):
            names.append(layer.name)
        if layer.name == cut:
            break
    return names


def feature_extractor(
    model: keras.Model, backbone: keras.Model, cuts: Sequence[str]
) -> keras.Model:
    """A model from raw images to the features at each of ``cuts``, in one forward pass.

    The preprocessing in front of the backbone is included; the backbone runs in inference
    mode, as its frozen layers do inside ``model``.
    """
    features = keras.Model(
        backbone.input,
        [backbone.get_layer(cut).output for cut in cuts],
        name=f"{backbone.name}_features",
    )
    source = _inbound_history(model, backbone.name)
    x = model.get_layer(source[0]).output
    outputs = features(x, training=False)
    return keras.Model(model.input, outputs if len(cuts) > 1 else [outputs], name="prefix")


def trainable_suffix(model: keras.Model, backbone: keras.Model, cut: str) -> keras.Model:
    """A model from the features at ``cut`` to ``model``'s outputs, sharing its layers.

    The backbone's layers after the cut are wrapped in a model called as ``model`` calls
    the backbone (``training=False`` unless BatchNorm trains), so each layer behaves as it
    does inside ``model``.
    """
    shape = backbone.get_layer(cut).output.shape[1:]
    features = keras.Input(shape, name="features")
    if cut == backbone.layers[-1].name:
        outputs = call_layers_after(model, backbone.name, features)
    else:
        tail_input = keras.Input(shape, name="tail_features")
        tail = keras.Model(
            tail_input, call_layers_after(backbone, cut, tail_input), name=f"{backbone.name}_tail"
        )
        start = _inbound_history(model, backbone.name)[0]
        outputs = call_layers_after(model, start, features, substitutes={backbone.name: tail})
    return keras.Model(features, outputs, name="suffix")


def call_layers_after(
    model: keras.Model,
    start: str,
    start_output: Any,
    *,
    substitutes: Mapping[str, Callable[..., Any]] | None = None,
) -> Any:
    """Call ``model``'s layers after layer ``start`` again, on ``start_output``.

    Args:
        model: A functional model in which every path to the output passes through ``start``.
        start: The layer whose output ``start_output`` replaces.
        start_output: A symbolic tensor shaped like ``start``'s output.
        substitutes: Layers (by name) to call in place of the original ones.

    Returns:
        The new symbolic tensors of ``model``'s outputs (a list when it has several).

    Raises:
        ValueError: a layer after ``start`` reads a tensor from before it.
    """
    config = model.get_config()
    names = [layer_config["name"] for layer_config in config["layers"]]
    tensors: dict[tuple[str, int], list[Any]] = {(start, 0): [start_output]}
    for layer_config in config["layers"][names.index(start) + 1 :]:
        name = layer_config["name"]
        layer = (substitutes or {}).get(name) or model.get_layer(name)
        for node_index, node in enumerate(layer_config["inbound_nodes"]):
            args = replace_tensors(node["args"], tensors, name)
            kwargs = replace_tensors(node["kwargs"], tensors, name)
            result = layer(*args, **kwargs)
            tensors[(name, node_index)] = (
                list(result) if isinstance(result, list | tuple) else [result]
            )
    output_layers = config["output_layers"]
    if output_layers and isinstance(output_layers[0], str):  # one output: not nested
        output_layers = [output_layers]
    outputs = [tensors[(name, node)][index] for name, node, index in output_layers]
    return outputs[0] if len(outputs) == 1 else outputs


def replace_tensors(
    value: Any, tensors: Mapping[tuple[str, int], Sequence[Any]], layer: str
) -> Any:
    """A serialized node argument with each recorded tensor replaced by the rebuilt one.

    Pure: ``tensors`` maps ``(layer name, node index)`` to that call's output tensors.
    """
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            source, node, index = value["config"]["keras_history"]
            if (source, node) not in tensors:
                raise ValueError(
                    f"layer {layer!r} reads the output of {source!r}, which comes before the cut"
                )
            return tensors[(source, node)][index]
        return {key: replace_tensors(item, tensors, layer) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [replace_tensors(item, tensors, layer) for item in value]
    return value


def _inbound_history(model: keras.Model, name: str) -> tuple[str, int, int]:
    """The (layer, node, tensor) that feeds layer ``name`` of ``model`` (called once)."""
    layer_config = next(item for item in model.get_config()["layers"] if item["name"] == name)
    (node,) = layer_config["inbound_nodes"]
    (history,) = list(_histories(node["args"]))
    return history


def _histories(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            yield tuple(value["config"]["keras_history"])
            return
        for item in value.values():
            yield from _histories(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _histories(item)
