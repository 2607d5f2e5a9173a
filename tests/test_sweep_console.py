"""What a person watching a sweep sees: one line per trial, the best so far, the outcome."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from capsweep.sweep.jobs import repeat_seeds
from capsweep.sweep.progress import SweepProgress, TrialLine

PARAMS = {"capacity.unfreeze": 1, "head.depth": 0}


def plain_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=200), buffer


def test_a_complete_trial_line_names_its_settings_accuracy_size_time_and_state() -> None:
    line = TrialLine(3, PARAMS, "COMPLETE", [0.8, 0.9], 74053.0, 9.3)

    assert line.render() == (
        "trial 3  unfreeze=1, depth=0  val_accuracy 0.850 (mean of 2)  "
        "74,053 trainable params  9.3 s  COMPLETE"
    )


def test_a_pruned_trial_line_says_at_which_epoch() -> None:
    line = TrialLine(4, PARAMS, "PRUNED", seconds=2.0, detail="at epoch 5")

    assert line.render() == "trial 4  unfreeze=1, depth=0  2.0 s  PRUNED at epoch 5"


def test_progress_counts_finished_trials_and_keeps_the_best_so_far() -> None:
    console, printed = plain_console()
    with SweepProgress(total=3, done=0, console=console) as progress:
        progress.trial_finished(TrialLine(0, {"head.depth": 0}, "COMPLETE", [0.7], 10.0, 1.0))
        progress.trial_finished(TrialLine(1, {"head.depth": 1}, "COMPLETE", [0.9], 20.0, 1.0))
        progress.trial_finished(TrialLine(2, {"head.depth": 2}, "COMPLETE", [0.8], 30.0, 1.0))

    lines = printed.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["[1/3]", "[2/3]", "[3/3]"]
    assert lines[0].endswith("best 0.700 (depth=0))")
    assert lines[2].endswith("best 0.900 (depth=1))")


def test_a_failed_trial_does_not_count_as_done() -> None:
    console, printed = plain_console()
    with SweepProgress(total=2, done=1, console=console) as progress:
        progress.trial_finished(TrialLine(5, PARAMS, "FAIL", detail="(repeat 0): boom"))

    assert printed.getvalue().startswith(
        "[1/2] trial 5  unfreeze=1, depth=0  FAIL (repeat 0): boom"
    )


@pytest.mark.parametrize(
    ("repeat_over", "repeat", "expected"),
    [
        ("both", 0, (7, 3)),
        ("both", 2, (9, 5)),
        ("seed", 2, (9, 3)),
        ("split", 2, (7, 5)),
    ],
)
def test_a_repeat_moves_the_seeds_it_varies_from_the_base_seeds(
    repeat_over: str, repeat: int, expected: tuple[int, int]
) -> None:
    assert repeat_seeds(repeat_over, repeat, seed=7, split_seed=3) == expected
