"""A trial that runs out of memory fails tagged ``oom``; the next trial starts cleanly.

TensorFlow's ResourceExhaustedError is raised for real inside Keras' ``fit`` (from an
epoch listener): what a CPU cannot be made to do reliably on demand, a GPU does often.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from capsweep.hydra_settings import load_settings

# Wall-clock measurements differ from run to run by nature.
TIMINGS = {"fit_seconds", "seconds_per_epoch", "samples_per_second"}


def out_of_memory(epoch: int, logs: dict[str, float]) -> None:
    import tensorflow as tf

    raise tf.errors.ResourceExhaustedError(
        None, None, "OOM when allocating tensor with shape[4096,4096,64] on /device:GPU:0\nmore"
    )


def failing(error: BaseException) -> Callable[[int, dict[str, float]], None]:
    def listener(epoch: int, logs: dict[str, float]) -> None:
        raise error

    return listener


def measured(outcome: Any) -> dict[str, Any]:
    values = {k: v for k, v in outcome.metrics.scalars().items() if k not in TIMINGS}
    return {**values, "history": outcome.metrics.history}


def test_an_out_of_memory_trial_fails_tagged_oom_with_a_hint(
    tiny_config: Callable[..., Any], tracking_uri: str, runs_in: Callable[[str], list[Any]]
) -> None:
    import tensorflow as tf

    from capsweep.cli.run import TrialOutOfMemory, run_trial

    with pytest.raises(TrialOutOfMemory) as failure:
        run_trial(load_settings(tiny_config()), listeners=[out_of_memory])

    assert isinstance(failure.value.__cause__, tf.errors.ResourceExhaustedError)
    assert "trainer.batch_size" in str(failure.value)  # the loop stores this as the reason
    (run,) = runs_in(tracking_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["capsweep.state"] == "FAIL"
    assert run.data.tags["capsweep.failure"] == "oom"
    assert run.data.tags["capsweep.error"] == (
        "OOM when allocating tensor with shape[4096,4096,64] on /device:GPU:0"
    )
    assert "trainer.batch_size" in run.data.tags["capsweep.hint"]


@pytest.mark.slow
def test_the_trial_after_an_out_of_memory_one_gives_the_metrics_of_a_fresh_start(
    tiny_config: Callable[..., Any],
) -> None:
    from capsweep.cli.run import TrialOutOfMemory, run_trial

    settings = load_settings(tiny_config("head.depth=1", "tracking.log_artifacts=false"))
    before = measured(run_trial(settings))
    with pytest.raises(TrialOutOfMemory):
        run_trial(load_settings(tiny_config("capacity.unfreeze=2")), listeners=[out_of_memory])
    after = measured(run_trial(settings))
    assert after == before


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("InternalError", "cuDNN launch failure: CUDNN_STATUS_ALLOC_FAILED"),
        ("InternalError", "Blas GEMM launch failed: CUBLAS_STATUS_ALLOC_FAILED"),
        ("InternalError", "Dst tensor is not initialized."),
        ("UnknownError", "Failed to allocate memory for the batch of component 0"),
    ],
)
def test_a_gpu_library_running_out_of_memory_is_recognized_as_out_of_memory(
    tiny_config: Callable[..., Any], kind: str, message: str
) -> None:
    import tensorflow as tf

    from capsweep.cli.run import TrialOutOfMemory, run_trial

    error = getattr(tf.errors, kind)(None, None, message)
    with pytest.raises(TrialOutOfMemory) as failure:
        run_trial(load_settings(tiny_config()), listeners=[failing(error)])

    assert failure.value.__cause__ is error


def test_another_tensorflow_error_is_not_taken_for_out_of_memory(
    tiny_config: Callable[..., Any],
) -> None:
    import tensorflow as tf

    from capsweep.cli.run import run_trial

    error = tf.errors.InternalError(
        None, None, "cuDNN launch failure: CUDNN_STATUS_EXECUTION_FAILED"
    )
    with pytest.raises(tf.errors.InternalError):
        run_trial(load_settings(tiny_config()), listeners=[failing(error)])


def test_any_other_failure_is_tagged_with_its_type_and_first_line(
    tiny_config: Callable[..., Any], tracking_uri: str, runs_in: Callable[[str], list[Any]]
) -> None:
    from capsweep.cli.run import run_trial

    error = ValueError("the labels are all one class\n(details follow)")
    with pytest.raises(ValueError, match="all one class"):
        run_trial(load_settings(tiny_config()), listeners=[failing(error)])

    (run,) = runs_in(tracking_uri)
    assert run.info.status == "FAILED"
    assert run.data.tags["capsweep.failure"] == "ValueError"
    assert run.data.tags["capsweep.error"] == "the labels are all one class"
    assert "capsweep.hint" not in run.data.tags
