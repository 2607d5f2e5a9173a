"""The same configuration and seed give the same metrics, whatever ran before in the process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from omegaconf import DictConfig

from exact import assert_same

# Pretraining on the source digits (one short epoch) runs before the first trial only.
PRETRAINED_TINY = [
    "backbone.weights=source",
    "backbone.input_size=16",
    "backbone.filters=[4,8,8]",
    "backbone.blocks_per_stage=1",
    "backbone.pretrain.epochs=1",
    "backbone.pretrain.min_val_accuracy=0.0",
    "data.train_per_class=5",
    "data.val_size=50",
    "trainer.epochs=3",
    "trainer.verbose=0",
    "capacity.unfreeze=1",
    "head.depth=1",
    "tracking.log_artifacts=false",
]
# Wall-clock measurements differ from run to run by nature.
TIMINGS = {"fit_seconds", "seconds_per_epoch", "samples_per_second"}


def measured(outcome: object) -> dict[str, object]:
    metrics = outcome.metrics  # type: ignore[attr-defined]
    values = {k: v for k, v in metrics.scalars().items() if k not in TIMINGS}
    return {**values, "history": metrics.history}


@pytest.fixture
def run(compose: Callable[..., DictConfig], tmp_path: Path) -> Callable[..., dict[str, object]]:
    """Run the tiny trial in this process with its outputs in ``tmp_path``; return its metrics."""
    from capsweep.cli.run import run_trial
    from capsweep.hydra_settings import load_settings

    def trial(*overrides: str) -> dict[str, object]:
        cfg = compose(
            *PRETRAINED_TINY,
            f"paths.outputs={tmp_path}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            *overrides,
        )
        return measured(run_trial(load_settings(cfg)))

    return trial


def test_a_trial_that_pretrains_first_gives_the_metrics_of_the_same_trial_warm(
    run: Callable[..., dict[str, object]], tmp_path: Path
) -> None:
    cold = run()  # pretrains the backbone, then trains
    assert list((tmp_path / "pretrained").glob("*.weights.h5"))

    warm = run()  # loads the cached weights

    assert_same(warm, cold)  # to the last bit on a CPU (see tests/exact.py)


def test_another_seed_gives_other_metrics(run: Callable[..., dict[str, object]]) -> None:
    # The check above is only worth something if the seed reaches the result.
    assert run("trainer.seed=0")["history"] != run("trainer.seed=1")["history"]
