"""Reports of a sweep: the ranked table, the Pareto figure, and the files they are written to.

Works on :mod:`capsweep.select`'s records and summaries only; never imports TensorFlow,
MLflow, Optuna or Hydra.
"""

from capsweep.report.figure import pareto_figure
from capsweep.report.files import records_frame, unfinished_frame, write_report
from capsweep.report.table import trials_table, unfinished_table

__all__ = [
    "pareto_figure",
    "records_frame",
    "trials_table",
    "unfinished_frame",
    "unfinished_table",
    "write_report",
]
