"""Figures, drawn with matplotlib's non-interactive backend."""

from __future__ import annotations

from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def learning_curve(history: dict[str, list[float]], title: str) -> Any:
    """Loss and accuracy per epoch, train against validation."""
    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(9, 3.5))
    for axis, metric in ((loss_axis, "loss"), (accuracy_axis, "accuracy")):
        for prefix, style in (("", "-"), ("val_", "--")):
            values = history.get(prefix + metric)
            if values:
                epochs = range(1, len(values) + 1)
                axis.plot(epochs, values, style, label=(prefix or "train_") + metric)
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.legend()
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def close_figure(figure: Any) -> None:
    """Release a figure's memory (pyplot keeps every open figure alive)."""
    plt.close(figure)
