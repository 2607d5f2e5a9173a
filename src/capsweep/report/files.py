"""A report's files: trials.csv, pareto.png and recommendation.json, each written whole."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from capsweep.report.figure import pareto_figure
from capsweep.report.tuning_figures import axis_figure, isolation_figure
from capsweep.select import ConfigSummary, Recommendation, TrialRecord, UnfinishedTrial
from capsweep.select.nuisance import NuisanceRange

_RECORD_COLUMNS = ["number", "state", "repeat", "run_id"]


def records_frame(records: Iterable[TrialRecord]) -> pd.DataFrame:
    """One row per trial of any state: number, state, repeat, run_id, params.*, metrics."""
    rows: list[dict[str, Any]] = []
    param_columns: dict[str, None] = {}
    metric_columns: dict[str, None] = {}
    for record in sorted(records, key=lambda record: (record.number, record.repeat)):
        row: dict[str, Any] = {
            "number": record.number,
            "state": record.state,
            "repeat": record.repeat,
            "run_id": record.run_id,
        }
        for name, value in record.params.items():
            param_columns.setdefault(f"params.{name}")
            row[f"params.{name}"] = value
        for name, metric in record.metrics.items():
            metric_columns.setdefault(name)
            row[name] = metric
        rows.append(row)
    columns = _RECORD_COLUMNS + sorted(param_columns) + list(metric_columns)
    return pd.DataFrame(rows, columns=columns)


def unfinished_frame(unfinished: Iterable[UnfinishedTrial]) -> pd.DataFrame:
    """One row per trial that did not complete: number, state, reason, params.*."""
    rows = [
        {
            "number": trial.number,
            "state": trial.state,
            "reason": trial.reason,
            **{f"params.{name}": value for name, value in trial.params.items()},
        }
        for trial in unfinished
    ]
    params = sorted({key for row in rows for key in row if key.startswith("params.")})
    return pd.DataFrame(rows, columns=["number", "state", "reason", *params])


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary sibling, then rename it, so no half-written file remains."""
    # Not mkstemp: its 0600 mode would stay on the report files after the rename.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_report(
    directory: str | os.PathLike[str],
    records: Sequence[TrialRecord],
    summaries: Sequence[ConfigSummary],
    recommendation: Recommendation,
    *,
    unfinished: Sequence[UnfinishedTrial] = (),
    ranges: Mapping[str, NuisanceRange] | None = None,
) -> dict[str, Path]:
    """Write ``trials.csv``, ``pareto.png``, ``recommendation.json`` and ``unfinished.csv``
    (the failed, pruned and killed trials with their reasons) into ``directory``; for a
    sweep that tuned nuisance hyperparameters (``ranges``), also ``isolation.png`` and an
    ``axis_<key>.png`` per hyperparameter.

    Everything is rendered before the first file is written; each file appears whole or
    not at all.

    Returns:
        The paths by name: ``trials``, ``pareto``, ``recommendation``, ``unfinished``,
        and ``isolation`` and ``axis:<key>`` with tuning.
    """
    folder = Path(directory)
    frame = records_frame(records)
    failures = unfinished_frame(unfinished)
    text = json.dumps(recommendation.as_dict(), indent=2, allow_nan=False) + "\n"
    figures = {"pareto": pareto_figure(summaries, recommendation)}
    if ranges:
        figures["isolation"] = isolation_figure(summaries, recommendation)
        for key, searched in ranges.items():
            figures[f"axis:{key}"] = axis_figure(summaries, key, searched)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "trials": folder / "trials.csv",
        "recommendation": folder / "recommendation.json",
        "unfinished": folder / "unfinished.csv",
        **{name: folder / f"{name.replace(':', '_')}.png" for name in figures},
    }
    _write_atomically(paths["trials"], lambda path: frame.to_csv(path, index=False))
    for name, figure in figures.items():
        _write_atomically(paths[name], partial(figure.savefig, format="png", dpi=120))
    _write_atomically(paths["recommendation"], lambda path: path.write_text(text, "utf-8"))
    _write_atomically(paths["unfinished"], lambda path: failures.to_csv(path, index=False))
    return paths
