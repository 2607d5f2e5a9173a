"""One trial recorded as one MLflow run: the train part wired to the tracking edge."""

from __future__ import annotations

import gc
import logging
import re
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import tensorflow as tf
import yaml

from capsweep import tracking
from capsweep.model.capacity import CapacityReport, Unfrozen
from capsweep.redaction import redact_text, redact_url
from capsweep.settings import CapsweepConfig, as_plain_dict
from capsweep.train.fit import EpochListener
from capsweep.train.long_lived import freeze_long_lived_objects
from capsweep.train.trial import TrialOutcome, prepare_trial, train_trial, trial_session

log = logging.getLogger(__name__)

OOM_FAILURE = "oom"
OOM_HINT = (
    "lower trainer.batch_size or backbone.input_size; on a GPU, run it again in a fresh "
    "process (TensorFlow keeps GPU memory it has taken)"
)


class TrialOutOfMemory(RuntimeError):
    """A trial ran out of memory; its message carries the hint, its cause the original."""


# What cuDNN, cuBLAS and TensorFlow's GPU allocator say when device memory runs out; they
# raise it as InternalError or UnknownError, not ResourceExhaustedError.
_OUT_OF_MEMORY = re.compile(
    r"CUDNN_STATUS_ALLOC_FAILED|CUBLAS_STATUS_ALLOC_FAILED|CUDA_ERROR_OUT_OF_MEMORY"
    r"|OOM when allocating|Dst tensor is not initialized|failed to allocate memory"
    r"|out of memory",
    re.IGNORECASE,
)


def is_out_of_memory(error: BaseException) -> bool:
    """Out of host or device memory: TensorFlow's ResourceExhaustedError, Python's
    MemoryError, or a TensorFlow error whose message is cuDNN's, cuBLAS's or the GPU
    allocator's way of saying so."""
    if isinstance(error, tf.errors.ResourceExhaustedError | MemoryError):
        return True
    return isinstance(error, tf.errors.OpError) and bool(_OUT_OF_MEMORY.search(str(error)))


def trial_failure_tags(error: BaseException) -> dict[str, str]:
    """:func:`capsweep.tracking.failure_tags`, with ``capsweep.failure=oom`` and a hint for
    running out of memory."""
    tags = tracking.failure_tags(error)
    if is_out_of_memory(error):
        tags[tracking.FAILURE_TAG] = OOM_FAILURE
        tags["capsweep.hint"] = OOM_HINT
    return tags


def prepare_tracking(settings: CapsweepConfig) -> None:
    """Bound MLflow's HTTP waits and check the tracking server answers (before training)."""
    tracking.prepare_tracking(
        settings.tracking.uri,
        request_timeout=settings.tracking.request_timeout,
        max_retries=settings.tracking.max_retries,
    )


def trial_tags(settings: CapsweepConfig) -> dict[str, Any]:
    return {
        "capsweep.backbone": settings.backbone.name,
        "capsweep.unfreeze": settings.capacity.unfreeze,
        "capsweep.position": settings.capacity.position,
        "capsweep.unit": settings.capacity.unit.name,
        "capsweep.head_depth": settings.head.depth,
    }


def units_tag(unfrozen: Unfrozen) -> str:
    """``2–3 of 6``: which units (0 = the first) a trial trained, of how many."""
    if not unfrozen.requested:
        return f"none of {unfrozen.available}"
    last = unfrozen.start + unfrozen.requested - 1
    return f"{unfrozen.start}–{last} of {unfrozen.available}"


def loggable_config(settings: CapsweepConfig) -> dict[str, Any]:
    """The settings as plain values, with the passwords of the storage and tracking URLs hidden."""
    config = as_plain_dict(settings)
    for section, key in (("trial", "storage"), ("tracking", "uri")):
        if config[section][key]:
            config[section][key] = redact_url(config[section][key])
    return config


def run_trial(
    settings: CapsweepConfig,
    *,
    parent_run_id: str | None = None,
    listeners: Sequence[EpochListener] = (),
    extra_tags: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    on_run_created: Callable[[str], None] | None = None,
    on_started: Callable[[str, CapacityReport], None] | None = None,
) -> TrialOutcome:
    """Build, train and evaluate one capacity setting, recorded as one MLflow run.

    The settings must have passed :func:`capsweep.settings.check_settings`. Everything that
    can fail on input (data, weights, units to unfreeze) fails before the run is opened.

    Args:
        settings: The trial's checked settings.
        parent_run_id: MLflow run to nest this trial's run under (a sweep's parent run).
        listeners: Called after each epoch; one may raise StopTraining to end the trial
            early, which is then recorded as PRUNED (the run itself ends FINISHED).
        extra_tags: More tags for the run.
        run_name: The MLflow run name.
        on_run_created: Told the MLflow run id as soon as the run exists.
        on_started: Called with the MLflow run id and the capacity report once the run
            is open, before training.

    Raises:
        CapsweepConfigError: the tracking server does not answer (before anything else).
        TrialOutOfMemory: the trial ran out of memory; its run ended FAILED, tagged
            ``capsweep.failure=oom``. Other errors pass through as they are, their run
            ended FAILED and tagged with the exception type and message.
    """
    prepare_tracking(settings)
    try:
        return _run(
            settings,
            parent_run_id=parent_run_id,
            listeners=listeners,
            extra_tags=extra_tags,
            run_name=run_name,
            on_run_created=on_run_created,
            on_started=on_started,
        )
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        # The traceback's frames hold the model and its tensors: let them go now, so the
        # next trial in this process starts from freed memory.
        traceback.clear_frames(error.__traceback__)
        gc.collect()
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        log.error("Trial ran out of memory (%s): %s", type(error).__name__, OOM_HINT)
        raise TrialOutOfMemory(
            f"out of memory ({type(error).__name__}: {message[:300]}); {OOM_HINT}"
        ) from error


def _run(
    settings: CapsweepConfig,
    *,
    parent_run_id: str | None,
    listeners: Sequence[EpochListener],
    extra_tags: Mapping[str, Any] | None,
    run_name: str | None,
    on_run_created: Callable[[str], None] | None,
    on_started: Callable[[str, CapacityReport], None] | None,
) -> TrialOutcome:
    # What the command line holds before the first trial lives as long as the process.
    freeze_long_lived_objects()
    with trial_session():
        prepared = prepare_trial(settings)
        config = loggable_config(settings)
        with tracking.trial_run(
            settings.tracking.uri,
            settings.tracking.experiment,
            run_name=run_name,
            tags={
                **trial_tags(settings),
                "capsweep.units": units_tag(prepared.transfer.unfrozen),
                "capsweep.deterministic_ops": prepared.deterministic_ops,
                "capsweep.backbone_reused": prepared.backbone_reused,
                **(extra_tags or {}),
            },
            parent_run_id=parent_run_id,
            on_created=on_run_created,
            describe_failure=lambda error: {
                # Error texts may quote a URL with its password (MLflow's do).
                key: redact_text(value, settings.tracking.uri, settings.trial.storage or "")
                for key, value in trial_failure_tags(error).items()
            },
        ) as run:
            run.log_params(tracking.flatten(config))
            run.log_text(yaml.safe_dump(config, sort_keys=False), "config.yaml")
            return train_trial(
                prepared,
                settings,
                run,
                listeners=listeners,
                on_started=on_started,
                title=run_name or settings.backbone.name,
            )
