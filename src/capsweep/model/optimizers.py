"""Optimizers: one learning rate for the head, a lower one for unfrozen backbone layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras

from capsweep.settings.validate import check_optimizer


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """Build a Keras optimizer by name, or raise naming the choices."""
    check_optimizer(name, learning_rate)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})


@keras.saving.register_keras_serializable(package="capsweep")
class SplitLearningRate(keras.optimizers.Optimizer):
    """Route gradients of backbone variables to one optimizer and the rest to another.

    Keras optimizers have one learning rate for every variable; fine-tuning wants a lower
    one for pretrained layers than for the new head. ``learning_rate`` reads and sets the
    head optimizer's, so schedules and callbacks act on the head.
    """

    def __init__(
        self,
        head_optimizer: keras.optimizers.Optimizer,
        backbone_optimizer: keras.optimizers.Optimizer,
        backbone_variable_paths: Sequence[str],
        name: str = "split_learning_rate",
        **kwargs: Any,
    ) -> None:
        super().__init__(learning_rate=0.0, name=name, **kwargs)
        self.head_optimizer = head_optimizer
        self.backbone_optimizer = backbone_optimizer
        self.backbone_variable_paths = frozenset(backbone_variable_paths)

    def _split(
        self, values: Sequence[Any], variables: Sequence[Any]
    ) -> tuple[list[Any], list[Any]]:
        head: list[Any] = []
        backbone: list[Any] = []
        for value, variable in zip(values, variables, strict=True):
            target = backbone if variable.path in self.backbone_variable_paths else head
            target.append(value)
        return head, backbone

    def build(self, var_list: Sequence[Any]) -> None:
        head, backbone = self._split(var_list, var_list)
        self.head_optimizer.build(head)
        self.backbone_optimizer.build(backbone)
        super().build(var_list)

    @property
    def variables(self) -> list[Any]:
        return (
            list(self._variables)
            + list(self.head_optimizer.variables)
            + list(self.backbone_optimizer.variables)
        )

    def apply(self, grads: Sequence[Any], trainable_variables: Sequence[Any] | None = None) -> None:
        variables = list(trainable_variables or self._trainable_variables)
        if not self.built:  # type: ignore[has-type]
            self.build(variables)
            self.built = True
        head_grads, backbone_grads = self._split(grads, variables)
        head_vars, backbone_vars = self._split(variables, variables)
        self.head_optimizer.apply(head_grads, head_vars)
        if backbone_vars:
            self.backbone_optimizer.apply(backbone_grads, backbone_vars)
        self.iterations.assign_add(1)

    @property
    def learning_rate(self) -> Any:
        return self.head_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, learning_rate: Any) -> None:
        # The base class sets this before head_optimizer exists.
        if "head_optimizer" in self.__dict__:
            self.head_optimizer.learning_rate = learning_rate

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "head_optimizer": keras.saving.serialize_keras_object(self.head_optimizer),
            "backbone_optimizer": keras.saving.serialize_keras_object(self.backbone_optimizer),
            "backbone_variable_paths": sorted(self.backbone_variable_paths),
        }

    @classmethod
    def from_config(
        cls, config: dict[str, Any], custom_objects: dict[str, Any] | None = None
    ) -> SplitLearningRate:
        # The two optimizers are serialized inside the config: rebuild them too.
        config = dict(config)
        for key in ("head_optimizer", "backbone_optimizer"):
            config[key] = keras.saving.deserialize_keras_object(
                config[key], custom_objects=custom_objects
            )
        return cls(**config)
