"""Selection: group trial results by configuration and recommend the smallest that performs well.

Pure functions over a table of trial records: no TensorFlow, MLflow, Optuna or Hydra, no
file access, so a recommendation answers in a second on a laptop.
"""

from capsweep.select.explain import Recommendation, accuracy_text, considered
from capsweep.select.holdout import HoldoutCheck
from capsweep.select.pareto import pareto_front
from capsweep.select.rule import recommend
from capsweep.select.summaries import (
    COMPLETE,
    ConfigSummary,
    TrialRecord,
    UnfinishedTrial,
    config_key,
    params_label,
    rank_key,
    summarize,
)
from capsweep.select.uncertainty import standard_error, standard_error_or_none, wilson_half_width

__all__ = [
    "COMPLETE",
    "ConfigSummary",
    "HoldoutCheck",
    "Recommendation",
    "TrialRecord",
    "UnfinishedTrial",
    "accuracy_text",
    "config_key",
    "considered",
    "params_label",
    "pareto_front",
    "rank_key",
    "recommend",
    "standard_error",
    "standard_error_or_none",
    "summarize",
    "wilson_half_width",
]
