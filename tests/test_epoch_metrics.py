"""Per-epoch metrics reach the tracking store in batches: first epoch at once, then timed."""

from __future__ import annotations

from capsweep.train.epoch_metrics import BufferedEpochMetrics, MetricSteps


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def recorder() -> tuple[list[list[int]], BufferedEpochMetrics, Clock]:
    writes: list[list[int]] = []
    clock = Clock()

    def write(steps: MetricSteps) -> None:
        writes.append([step for step, _ in steps])

    return writes, BufferedEpochMetrics(write, ["loss"], every_seconds=5, clock=clock), clock


def test_the_first_epoch_is_written_at_once() -> None:
    writes, log_epoch, _ = recorder()
    log_epoch(0, {"loss": 1.0})
    assert writes == [[0]]


def test_later_epochs_wait_for_the_interval_and_go_together() -> None:
    writes, log_epoch, clock = recorder()
    for epoch in range(4):
        clock.now = epoch * 2.0  # 0, 2, 4, 6 s
        log_epoch(epoch, {"loss": 1.0})
    assert writes == [[0], [1, 2, 3]]


def test_flush_writes_what_is_left_when_training_ends() -> None:
    writes, log_epoch, clock = recorder()
    log_epoch(0, {"loss": 1.0})
    clock.now = 1.0
    log_epoch(1, {"loss": 0.5})
    log_epoch.flush()
    assert writes == [[0], [1]]


def test_only_the_named_metrics_are_recorded() -> None:
    rows: list[MetricSteps] = []
    log_epoch = BufferedEpochMetrics(rows.append, ["loss"])
    log_epoch(0, {"loss": 1.0, "learning_rate": 0.1})
    assert [dict(values) for _, values in rows[0]] == [{"loss": 1.0}]
