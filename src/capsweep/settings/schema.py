"""The typed settings of capsweep, and every default value: what each part receives.

Plain dataclasses, no Hydra. They are the one home of every default: the YAML files in
``conf/`` hold only what a group's option changes (``backbone=resnet50``), never a value
repeated from here (``tests/test_defaults.py`` checks both ways). ``capsweep.hydra_settings``
registers them with Hydra's ConfigStore, so unknown keys, wrong types and names outside an
Enum fail at compose time, and :func:`capsweep.settings.validate.check_settings` checks
their values in one pass before TensorFlow or MLflow is imported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from typing import Any

from capsweep.settings.choices import (
    Activation,
    Augmentation,
    BackboneName,
    CacheDtype,
    Corruption,
    DatasetName,
    MixedPrecision,
    Optimizer,
    Pooling,
    TrainingProtocol,
    Unit,
)


@dataclass
class DataConfig:
    """The data; these defaults are the embedded digits task, and
    ``conf/data/<name>.yaml`` sets what another data set changes."""

    name: DatasetName = DatasetName.digits
    # image_folder: a directory with one sub-folder per class.
    path: str | None = None
    # Number of classes; inferred from the data when null. Set it to plan without data.
    num_classes: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    # Seed of the train/validation split; repeats of a sweep may vary it.
    split_seed: int = 0
    # Seed of the test split: fixed, so every configuration and repeat is tested on the
    # same images, none of which selection ever saw.
    test_seed: int = 0
    # digits: the classes the backbone is pretrained on, and the ones transferred to.
    source_classes: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    target_classes: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9])
    # digits: labelled target images per class for training, and the validation size.
    train_per_class: int = 10
    val_size: int = 200
    # digits: an input-level shift of the target images (none | invert | noise | blur |
    # contrast). Target classes may then be source classes: the target task draws its
    # images from the half of those classes the pretraining never saw.
    corruption: Corruption = Corruption.none
    # Random augmentation of the training images, applied in the model before the
    # backbone and in training only: any of flip (horizontal), translate (up to 10 % of
    # the side each way), rotation (up to ±10 % of a turn). A trial with augmentation
    # trains on raw images every epoch (no feature cache).
    augment: list[Augmentation] = field(default_factory=list)


@dataclass
class PretrainConfig:
    """How the embedded default pretrains its backbone on the source classes."""

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 2e-3
    seed: int = 0
    # Source accuracy (inference mode) below which the cached weights are refused.
    min_val_accuracy: float = 0.95


@dataclass
class BackboneConfig:
    """The backbone; these defaults are the embedded default's small_resnet, and
    ``conf/backbone/<name>.yaml`` sets what another backbone changes."""

    name: BackboneName = BackboneName.small_resnet
    # imagenet | null (random init) | a weights file path | source (pretrain on data's
    # source classes, embedded default only).
    weights: str | None = "source"
    input_size: int = 32
    # small_resnet only: filters per stage and residual blocks per stage.
    filters: list[int] = field(default_factory=lambda: [16, 32, 64])
    blocks_per_stage: int = 2
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    # Accept a legacy .h5 file that holds a whole model (not only weights): Keras cannot
    # load its config in safe mode, so such a file must come from someone you trust.
    allow_unsafe_h5: bool = False


@dataclass
class CapacityConfig:
    """How much of the backbone trains: ``unfreeze`` units, counted in ``unit``s, from
    ``position``."""

    unfreeze: int = 1
    unit: Unit = Unit.block
    # Where the unfrozen units start: last (the last `unfreeze` units), first, middle, or the
    # index of the first one (0 = the first unit). Units outside the range stay frozen.
    position: Any = "last"
    # Train BatchNorm layers of unfrozen units; false keeps them in inference mode.
    train_bn: bool = False


@dataclass
class HeadConfig:
    # Hidden Dense layers before the classifier; 0 = only the classifier.
    depth: int = 1
    # Units of each hidden layer, its activation, and the dropout after it.
    width: int = 64
    dropout: float = 0.2
    activation: Activation = Activation.relu
    # How the backbone's feature map becomes a vector: global average or max pooling.
    pooling: Pooling = Pooling.avg


@dataclass
class TrainerConfig:
    epochs: int = 30
    batch_size: int = 16
    optimizer: Optimizer = Optimizer.adam
    # Learning rate of the new head.
    learning_rate: float = 1e-2
    # Learning rate of unfrozen backbone layers: pretrained, they learn slower than the head.
    backbone_learning_rate: float = 1e-3
    # joint: the head and the unfrozen units train together, each at its rate. lp_ft: the
    # head first on the frozen backbone (a linear probe, at learning_rate), then head and
    # units together at backbone_learning_rate (Kumar et al., ICLR 2022). The probe runs
    # on cached features and is shared by every unfreeze count with the same head.
    protocol: TrainingProtocol = TrainingProtocol.joint
    # Stop when val_accuracy has not improved for this many epochs, best weights restored;
    # null disables it.
    early_stopping_patience: int | None = 10
    seed: int = 0
    # Deterministic TensorFlow ops: the same seed gives the same result to the last bit,
    # at a cost in speed (see the README). Once on, it stays on for the process.
    deterministic: bool = False
    # Keras' output on the console: 2 = a line per epoch, 1 = a progress bar, 0 = none.
    # null: 2 for a single run, 0 for sweep jobs (their epoch lines go to the job's log).
    verbose: int | None = None
    # Keras dtype policy the trial's model is built in: null = float32, mixed_bfloat16,
    # mixed_float16 (GPU only; loss scaling on). The classifier stays float32. On 2 CPU
    # cores with AVX512_BF16/AMX, bfloat16 was no faster (README): float32 stays the default.
    mixed_precision: MixedPrecision | None = None
    # Take GPU memory as needed instead of nearly all of every visible GPU's at the first
    # op: true, false, or null = true in a sweep's jobs (workers may share a GPU) and
    # false for a single run.
    gpu_memory_growth: bool | None = None
    # XLA for the train/evaluate steps: true, false, or auto (Keras: on with a GPU, off on
    # a CPU-only machine). On those CPUs XLA was 3-8x slower per step and changed the
    # results; with deterministic=true Keras turns it off. Any: a bool or the string "auto".
    jit_compile: Any = "auto"


@dataclass
class TrackingConfig:
    # MLflow 3 refuses the plain file store: a SQLite file locally, or a tracking server
    # (http://host:5000) backed by PostgreSQL for clusters.
    uri: str = "sqlite:///${paths.outputs}/mlflow.db"
    experiment: str = "capsweep"
    # Log the learning-curve PNG and model summary as artifacts.
    log_artifacts: bool = True
    # A tracking server (http://...): seconds to wait for one answer, and how often to
    # retry a failed request, so a slow or absent server fails a trial rather than hanging
    # it (MLflow's own defaults wait ~4 minutes). MLFLOW_HTTP_REQUEST_TIMEOUT and
    # MLFLOW_HTTP_REQUEST_MAX_RETRIES, when exported, win.
    request_timeout: int = 30
    max_retries: int = 3


@dataclass
class CacheConfig:
    """The feature cache: a trial's frozen prefix computed once, then trained on."""

    enabled: bool = True
    # Also compute, on a miss, the features the unfreeze counts listed here need (one
    # forward pass for all); null = only the trial's own. capsweep's sweeper fills it in.
    cuts: list[int] | None = None
    # The same for unit ranges that start at these indices (capacity.position first or
    # an index; 0 = the first unit). Filled in by the sweeper too.
    starts: list[int] | None = None
    # Size cap of the entries on disk; least recently used ones are removed beyond it.
    max_gb: float = 10.0
    # Storage type of the features: float32 | float16 (half the size).
    dtype: CacheDtype = CacheDtype.float32
    # Folder of the entries; null = <paths.outputs>/cache/features.
    dir: str | None = None


@dataclass
class PathsConfig:
    outputs: str = "outputs"


@dataclass
class TrialContext:
    """Set by capsweep's sweeper on each job: which Optuna trial this job trains."""

    number: int | None = None
    repeat: int = 0
    storage: str | None = None
    study_name: str | None = None
    pruner: str | None = None
    pruner_options: Any = None
    multi_objective: bool = False
    parent_run_id: str | None = None
    # GPU ids a local worker process may claim one of (hydra.sweeper.gpus).
    gpus: list[int] | None = None
    # With nuisance tuning, ``study_name`` and ``number`` name a configuration's own study
    # and trial; these name the sweep's study and its trial (the configuration), and
    # whether the job tries a candidate (search) or confirms the chosen one (confirm).
    sweep_study: str | None = None
    configuration: int | None = None
    role: str | None = None
    # The job's folder under the sweep's (hydra.sweep.subdir).
    job_name: str = "job"

    def as_overrides(self) -> list[str]:
        """This context as the Hydra overrides that hand it to a job (``trial.number=3``, ...).

        The one place that spells the format: the sweeper launches jobs with these, and
        each job's composed ``trial`` node parses back into an equal context.
        """
        return [
            f"trial.number={_override(self.number)}",
            f"trial.repeat={self.repeat}",
            f"trial.storage={_override(self.storage)}",
            f"trial.study_name={_override(self.study_name)}",
            f"trial.pruner={_override(self.pruner)}",
            f"trial.pruner_options={_override(self.pruner_options)}",
            f"trial.multi_objective={_override(self.multi_objective)}",
            f"trial.parent_run_id={_override(self.parent_run_id)}",
            f"trial.gpus={_override(self.gpus)}",
            f"trial.sweep_study={_override(self.sweep_study)}",
            f"trial.configuration={_override(self.configuration)}",
            f"trial.role={_override(self.role)}",
            f"trial.job_name={_override(self.job_name)}",
        ]


def _override(value: Any) -> str:
    """A value in Hydra's override grammar: strings quoted, mappings as ``{key:value}``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}:{json.dumps(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_override(item) for item in value) + "]"
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


@dataclass
class CapsweepConfig:
    data: DataConfig = field(default_factory=DataConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    # Set by the sweeper for each job; empty for a single run.
    trial: TrialContext = field(default_factory=TrialContext)


def as_plain_dict(settings: Any) -> dict[str, Any]:
    """A settings dataclass as nested plain values (enums by name), e.g. for logging."""
    return {item.name: _plain(getattr(settings, item.name)) for item in fields(settings)}


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return as_plain_dict(value)
    if isinstance(value, Enum):
        return value.name
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value
