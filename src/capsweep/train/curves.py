"""A trial's learning curve, drawn without pyplot's global state."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def learning_curve(history: dict[str, list[float]], title: str) -> Figure:
    """Loss and accuracy per epoch, train against validation.

    The figure belongs to no pyplot state: nothing keeps it alive once it is logged.
    """
    # Fixed margins, not a layout engine: a sweep draws one per trial, and the tight
    # layout took a third of the drawing's time.
    figure = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(figure)
    loss_axis, accuracy_axis = figure.subplots(1, 2)
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
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.15, top=0.86, wspace=0.25)
    return figure
