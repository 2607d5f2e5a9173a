"""The report: the ranked table, the records frame, the Pareto figure and the written files."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from capsweep.report import pareto_figure, records_frame, trials_table, write_report
from capsweep.select import ConfigSummary, Recommendation, TrialRecord, recommend, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def config(unfreeze: int, depth: int) -> dict[str, Any]:
    return {"capacity.unfreeze": unfreeze, "head.depth": depth}


def metrics(val: float, trainable: int, gap: float = 0.02) -> dict[str, float]:
    return {
        "val_accuracy": val,
        "train_accuracy": val + gap,
        "test_accuracy": val - 0.01,
        "overfit_gap": gap,
        "trainable_params": trainable,
        "fit_seconds": 12.5,
        "n_val": 400,
    }


@pytest.fixture(scope="module")
def records() -> list[TrialRecord]:
    return [
        TrialRecord(0, "COMPLETE", config(6, 1), 0, metrics(0.90, 1_200_000, 0.10), "r0"),
        TrialRecord(1, "COMPLETE", config(6, 1), 1, metrics(0.88, 1_200_000, 0.12), "r1"),
        TrialRecord(2, "COMPLETE", config(1, 0), 0, metrics(0.89, 100_000), "r2"),
        TrialRecord(3, "COMPLETE", config(1, 0), 1, metrics(0.88, 100_000), "r3"),
        TrialRecord(4, "COMPLETE", config(3, 1), 0, metrics(0.80, 500_000), "r4"),
        TrialRecord(5, "COMPLETE", config(3, 1), 1, metrics(0.82, 500_000), "r5"),
        TrialRecord(6, "PRUNED", config(0, 0), 0, {"val_accuracy": 0.5}, "r6"),
        TrialRecord(7, "FAIL", config(0, 1), 0, {}, "r7"),
        TrialRecord(8, "RUNNING", config(0, 2), 0, {}, None),
    ]


@pytest.fixture(scope="module")
def summaries(records: list[TrialRecord]) -> list[ConfigSummary]:
    return summarize(records)


@pytest.fixture(scope="module")
def recommendation(summaries: list[ConfigSummary]) -> Recommendation:
    # best: mean 0.89, std 0.01414, SE 0.01, so threshold 0.88; config(1, 0) has mean 0.885
    return recommend(summaries)


def rendered(table: Any) -> list[str]:
    output = io.StringIO()
    Console(file=output, width=200, color_system=None).print(table)
    return output.getvalue().splitlines()


def row_of(lines: list[str], label: str) -> str:
    (line,) = [line for line in lines if label in line and "│" in line]
    return line


# trials_table


def test_trials_table_has_one_row_per_configuration_ranked_by_val_accuracy(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    table = trials_table(summaries, recommendation)

    assert table.row_count == 3
    assert [column.header for column in table.columns][1:] == [
        "rank", "params", "val_accuracy", "n", "test_accuracy", "trainable_params",
        "overfit_gap", "fit_seconds", "state",
    ]  # fmt: skip
    lines = rendered(table)
    labels = ("unfreeze=6, depth=1", "unfreeze=1, depth=0", "unfreeze=3, depth=1")
    positions = [lines.index(row_of(lines, label)) for label in labels]
    assert positions == sorted(positions)


def test_trials_table_marks_the_recommended_row_in_bold_with_a_star(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    lines = rendered(trials_table(summaries, recommendation))

    assert recommendation.chosen.label == "unfreeze=1, depth=0"
    assert "★" in row_of(lines, "unfreeze=1, depth=0")
    assert "★" not in row_of(lines, "unfreeze=6, depth=1")
    table = trials_table(summaries, recommendation)
    assert table.rows[1].style == "bold"
    assert table.rows[0].style is None


def test_trials_table_marks_the_pareto_front(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    lines = rendered(trials_table(summaries, recommendation))

    assert "◆" in row_of(lines, "unfreeze=6, depth=1")
    assert "◆" in row_of(lines, "unfreeze=1, depth=0")
    assert "◆" not in row_of(lines, "unfreeze=3, depth=1")  # worse and bigger than (1, 0)


def test_trials_table_shows_mean_and_standard_error_and_thousands_separators(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    line = row_of(rendered(trials_table(summaries, recommendation)), "unfreeze=6, depth=1")

    # repeats 0.90 and 0.88: mean 0.890, std 0.01414, spread 0.01414 / sqrt(2) = 0.010, below
    # the Wilson floor over 2 x 400 images, sqrt(800 * 0.89 * 0.11 + 1/4) / 801 = 0.01107
    assert "0.890 ± 0.011" in line
    assert "1,200,000" in line
    assert "0.110" in line  # mean overfit_gap


def test_trials_table_works_without_a_recommendation(summaries: list[ConfigSummary]) -> None:
    lines = rendered(trials_table(summaries, None))

    assert not any("★" in line for line in lines if "│" in line)


def test_trials_table_shows_the_wilson_half_width_for_a_single_run() -> None:
    perfect = {**metrics(1.0, 100), "n_val": 200}
    (summary,) = summarize([TrialRecord(0, "COMPLETE", config(0, 0), 0, perfect, "r0")])

    line = row_of(rendered(trials_table([summary], None)), "unfreeze=0, depth=0")

    # Wilson, z=1: sqrt(200 * 1 * 0 + 1/4) / 201 = 0.5 / 201 = 0.0025 (binomial: 0.000)
    assert "1.000 ± 0.002" in line


def test_trials_table_counts_the_runs_behind_pooled_same_seed_repeats() -> None:
    records = [
        TrialRecord(0, "COMPLETE", config(1, 0), 0, metrics(0.8, 100), "r0", seed=0, split_seed=0),
        TrialRecord(1, "COMPLETE", config(1, 0), 0, metrics(0.8, 100), "r1", seed=0, split_seed=0),
    ]

    line = row_of(rendered(trials_table(summarize(records), None)), "unfreeze=1, depth=0")

    assert "1 (2 runs)" in line


def test_trials_table_state_counts_the_configurations_unfinished_trials() -> None:
    records = [
        TrialRecord(0, "COMPLETE", config(1, 0), 0, metrics(0.8, 100), "r0"),
        TrialRecord(1, "PRUNED", config(1, 0), 0, {}, "r1"),
        TrialRecord(2, "COMPLETE", config(2, 0), 0, metrics(0.7, 100), "r2"),
    ]

    lines = rendered(trials_table(summarize(records), None))

    assert "complete, 1 pruned" in row_of(lines, "unfreeze=1, depth=0")
    assert row_of(lines, "unfreeze=2, depth=0").rstrip(" │").endswith("complete")


def test_trials_table_marks_the_pareto_front_of_the_candidates_only(
    summaries: list[ConfigSummary],
) -> None:
    # max_overfit_gap 0.05 leaves out (6, 1), whose mean overfit_gap is 0.11
    lines = rendered(trials_table(summaries, recommend(summaries, max_overfit_gap=0.05)))

    assert "◆" not in row_of(lines, "unfreeze=6, depth=1")
    assert "◆" in row_of(lines, "unfreeze=1, depth=0")


def test_trials_table_caption_gives_the_recommendations_reason(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    caption = trials_table(summaries, recommendation).caption

    assert isinstance(caption, str)
    assert caption.endswith("\n" + recommendation.reason)


# records_frame


def test_records_frame_has_one_row_per_trial_of_every_state(records: list[TrialRecord]) -> None:
    frame = records_frame(records)

    assert len(frame) == len(records)
    assert list(frame["state"]).count("PRUNED") == 1
    assert list(frame.columns[:6]) == [
        "number", "state", "repeat", "run_id", "params.capacity.unfreeze", "params.head.depth",
    ]  # fmt: skip
    assert {"val_accuracy", "trainable_params", "overfit_gap", "n_val"} <= set(frame.columns)


def test_records_frame_leaves_missing_metrics_empty(records: list[TrialRecord]) -> None:
    frame = records_frame(records).set_index("number")

    assert frame.loc[6, "val_accuracy"] == 0.5
    missing = frame.isna()
    assert missing.loc[6, "trainable_params"]
    assert missing.loc[7, "val_accuracy"]


# pareto_figure


def test_pareto_figure_plots_accuracy_against_log_trainable_params_with_a_colorbar(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    figure = pareto_figure(summaries, recommendation)

    axis, colorbar = figure.axes
    assert axis.get_xscale() == "log"
    assert axis.get_ylabel() == "val_accuracy"
    assert "overfit_gap" in colorbar.get_ylabel()
    (legend_box,) = figure.legends
    legend = [text.get_text() for text in legend_box.get_texts()]
    assert "Pareto front" in legend
    assert "recommended" in legend
    assert any(label.startswith("threshold") for label in legend)
    assert recommendation.chosen.label in [text.get_text() for text in axis.texts]


def error_bar_half_heights(figure: Any) -> list[float]:
    axis = figure.axes[0]
    (container,) = axis.containers
    _, _, (bars,) = container.lines
    return [(top[1] - bottom[1]) / 2 for bottom, top in bars.get_segments()]


def test_pareto_figure_draws_one_standard_error_on_every_point() -> None:
    records = [
        TrialRecord(0, "COMPLETE", config(0, 0), 0, metrics(0.90, 10_000), "r0"),  # one run
        TrialRecord(1, "COMPLETE", config(6, 1), 0, metrics(0.90, 1_200_000), "r1"),
        TrialRecord(2, "COMPLETE", config(6, 1), 1, metrics(0.88, 1_200_000), "r2"),
    ]
    summaries = summarize(records)  # (0, 0) mean 0.90 ranks first, then (6, 1) mean 0.89

    heights = error_bar_half_heights(pareto_figure(summaries, None))

    # one run: Wilson, sqrt(400 * 0.9 * 0.1 + 1/4) / 401; repeats: their spread 0.01414 /
    # sqrt(2) = 0.010 is below the Wilson floor over 800 images, sqrt(78.57) / 801
    assert heights == pytest.approx([math.sqrt(36.25) / 401, math.sqrt(78.57) / 801])


def test_pareto_figure_draws_the_front_of_the_candidates_only(
    summaries: list[ConfigSummary],
) -> None:
    # max_overfit_gap 0.05 leaves out (6, 1): the front of the rest is (1, 0) alone
    figure = pareto_figure(summaries, recommend(summaries, max_overfit_gap=0.05))

    (front,) = [line for line in figure.axes[0].get_lines() if line.get_label() == "Pareto front"]
    assert np.asarray(front.get_xdata()).tolist() == [100_000]


def test_pareto_figure_crosses_out_configurations_over_max_overfit_gap(
    summaries: list[ConfigSummary],
) -> None:
    figure = pareto_figure(summaries, recommend(summaries, max_overfit_gap=0.05))

    (crosses,) = [
        c for c in figure.axes[0].collections if c.get_label() == "left out: overfit_gap > 0.05"
    ]
    assert np.asarray(crosses.get_offsets()).tolist() == [[1_200_000, pytest.approx(0.89)]]


def test_pareto_figure_places_the_legend_clear_of_the_axes(
    summaries: list[ConfigSummary], recommendation: Recommendation
) -> None:
    figure = pareto_figure(summaries, recommendation)
    figure.canvas.draw()

    (legend,) = figure.legends
    box = legend.get_window_extent()
    plot = figure.axes[0].get_window_extent()
    assert not box.overlaps(plot)


# write_report


@pytest.fixture(scope="module")
def written(
    tmp_path_factory: pytest.TempPathFactory,
    records: list[TrialRecord],
    summaries: list[ConfigSummary],
    recommendation: Recommendation,
) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("report") / "nested"
    return write_report(folder, records, summaries, recommendation)


def test_write_report_writes_the_four_files_and_nothing_else(written: dict[str, Path]) -> None:
    folder = written["trials"].parent

    assert folder.name == "nested"  # created, with its parents
    assert sorted(path.name for path in folder.iterdir()) == [
        "pareto.png", "recommendation.json", "trials.csv", "unfinished.csv",
    ]  # fmt: skip
    assert written == {
        "trials": folder / "trials.csv",
        "pareto": folder / "pareto.png",
        "recommendation": folder / "recommendation.json",
        "unfinished": folder / "unfinished.csv",
    }


def test_write_report_json_names_the_chosen_trials(
    written: dict[str, Path], recommendation: Recommendation
) -> None:
    loaded = json.loads(written["recommendation"].read_text())

    assert loaded == recommendation.as_dict()
    assert loaded["trial_numbers"] == [2, 3]
    assert loaded["representative_trial"] == 2


def test_write_report_csv_has_one_row_per_record_including_unfinished(
    written: dict[str, Path], records: list[TrialRecord]
) -> None:
    frame = pd.read_csv(written["trials"])

    assert list(frame["number"]) == [record.number for record in records]
    assert list(frame["state"])[6:] == ["PRUNED", "FAIL", "RUNNING"]


def test_write_report_png_is_a_readable_png(written: dict[str, Path]) -> None:
    path = written["pareto"]

    assert path.read_bytes()[:8] == PNG_MAGIC
    image = matplotlib.image.imread(path)
    assert image.ndim == 3
    assert image.shape[0] > 100
    assert image.shape[1] > 100


def test_write_report_replaces_an_earlier_report(
    tmp_path: Path,
    records: list[TrialRecord],
    summaries: list[ConfigSummary],
    recommendation: Recommendation,
) -> None:
    (tmp_path / "recommendation.json").write_text("stale")
    (tmp_path / "trials.csv").write_text("stale")

    write_report(tmp_path, records[:2], summaries, recommendation)

    assert json.loads((tmp_path / "recommendation.json").read_text())["trial_numbers"] == [2, 3]
    assert len(pd.read_csv(tmp_path / "trials.csv")) == 2
    assert not list(tmp_path.glob(".*.tmp"))
