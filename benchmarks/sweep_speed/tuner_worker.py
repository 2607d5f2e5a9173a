"""KerasTuner's GridSearch, as a careful user runs it, fed as capsweep feeds its trials.

A fair peer: each model is capsweep's (its builders, optimizer and learning rates), seeded
as a capsweep trial seeds its build, trained on capsweep's streamed ``tf.data`` batches of
the same memory-mapped images (the same seeded order per seed) and validated from the
same batched pipeline at capsweep's evaluation batch size. What differs is what the
comparison measures: no feature cache, and KerasTuner's procedure (every grid point and
rate trained ``executions_per_trial`` times; its own per-batch callback, which turns off
Keras' asynchronous dispatch, and a weights checkpoint at each epoch that improves).
Heavy imports: run in a worker process only.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt

from capsweep.data import Dataset
from capsweep.model.backbones import build_backbone, preprocessing_mode
from capsweep.model.transfer import build_transfer_model
from capsweep.settings import CapacityConfig, HeadConfig, TrainerConfig
from capsweep.settings.choices import Unit
from capsweep.train.compiled_models import compile_model
from capsweep.train.fit import evaluation_batches
from capsweep.train.inputs import batches
from capsweep.train.trial import head_seed

from .data import load_split_folder

RATE = "backbone_learning_rate"


class StreamedHyperModel(kt.HyperModel):
    """capsweep's transfer model for one grid point, trained on capsweep's batches.

    Execution ``e`` of a grid point trains with seed ``trainer.seed + e``, as capsweep's
    repeats over the seed do. Every execution's final val_accuracy is kept in
    :attr:`executions`.
    """

    def __init__(self, spec: dict[str, Any], data: Dataset) -> None:
        super().__init__()
        self.spec = spec
        self.data = data
        # capsweep's defaults, as the sweep's trials use them (optimizer, rates, seed).
        self.trainer = TrainerConfig(
            epochs=spec["epochs"], batch_size=spec["batch_size"], early_stopping_patience=None
        )
        self.validation = evaluation_batches(None, data.val)
        self.executions: list[dict[str, Any]] = []

    @property
    def seed(self) -> int:
        """The seed of the model about to be built and trained: GridSearch runs every
        execution of a grid point before the next point, so it follows from the count."""
        return self.trainer.seed + len(self.executions) % self.spec["repeats"]

    def rate(self, hp: kt.HyperParameters, unfreeze: int) -> float:
        """The backbone's learning rate: capsweep's default, or a hyperparameter (careful)."""
        if self.spec["workload"] != "careful":
            return self.trainer.backbone_learning_rate
        rates = self.spec["rates"]
        if not self.spec["tuner_skip_inert"]:
            return float(hp.Choice(RATE, rates))
        trains = [count for count in self.spec["unfreeze"] if count > 0]
        with hp.conditional_scope("unfreeze", trains):
            if unfreeze in trains:
                return float(hp.Choice(RATE, rates))
        return self.trainer.backbone_learning_rate

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        spec = self.spec
        unfreeze = hp.Choice("unfreeze", spec["unfreeze"])
        depth = hp.Choice("depth", spec["depths"])
        trainer = dataclasses.replace(
            self.trainer, backbone_learning_rate=self.rate(hp, unfreeze), seed=self.seed
        )
        # Seeded as a capsweep trial seeds its build: the head from a stream of its own.
        keras.utils.set_random_seed(trainer.seed)
        backbone = build_backbone(spec["backbone"], spec["size"], spec["weights_file"])
        keras.utils.set_random_seed(head_seed(trainer.seed))
        transfer = build_transfer_model(
            backbone,
            preprocessing_mode(spec["backbone"]),
            self.data.num_classes,
            CapacityConfig(unfreeze=unfreeze, unit=Unit(spec["unit"])),
            HeadConfig(depth=depth),
        )
        compile_model(transfer, trainer)
        return transfer.model

    def fit(self, hp: kt.HyperParameters, model: keras.Model, *args: Any, **kwargs: Any) -> Any:
        """Train as capsweep's ``fit_and_evaluate`` does: every epoch from one finite
        iterator of shuffled batches, whole batches only under XLA."""
        seed, epochs, batch_size = self.seed, self.trainer.epochs, self.trainer.batch_size
        whole = bool(model.jit_compile)
        train = batches(self.data.train, batch_size=batch_size, seed=seed, drop_remainder=whole)
        steps = len(self.data.train) / batch_size
        started = time.perf_counter()
        history = model.fit(
            train.repeat(epochs),
            steps_per_epoch=max(1, math.floor(steps)) if whole else math.ceil(steps),
            validation_data=self.validation,
            epochs=epochs,
            shuffle=False,
            callbacks=kwargs.get("callbacks"),
            verbose=0,
        )
        values = [float(value) for value in history.history.get("val_accuracy", [])]
        self.executions.append(
            {
                "unfreeze": hp.get("unfreeze"),
                "depth": hp.get("depth"),
                "rate": hp.values.get(RATE, self.trainer.backbone_learning_rate),
                "execution": len(self.executions) % self.spec["repeats"],
                "seed": seed,
                "final_val_accuracy": values[-1] if values else float("nan"),
                "best_epoch_val_accuracy": max(values) if values else float("nan"),
                "fit_seconds": time.perf_counter() - started,
            }
        )
        return history


def tuner_worker(spec: dict[str, Any]) -> None:
    """Search the whole grid, write what every execution measured to ``spec["out"]``."""
    imported = time.time()
    data = load_split_folder(spec, cache_dir=Path(spec["images_cache"]))
    hypermodel = StreamedHyperModel(spec, data)
    tuner = kt.GridSearch(
        hypermodel,
        objective="val_accuracy",
        executions_per_trial=spec["repeats"],
        directory=spec["directory"],
        project_name="grid",
        overwrite=True,
    )
    started = time.time()
    tuner.search(epochs=spec["epochs"], verbose=0)
    searched = time.time()
    best = tuner.get_best_hyperparameters(1)
    answer = {
        "search_seconds": searched - started,
        "setup_seconds": started - imported,
        "n_train": len(data.train),
        "n_val": len(data.val),
        "grid_points": len(tuner.oracle.trials),
        "executions": hypermodel.executions,
        # KerasTuner's own pick: the best mean over executions of each one's best epoch.
        "keras_tuner_best": best[0].values if best else None,
    }
    Path(spec["out"]).write_text(json.dumps(answer))
