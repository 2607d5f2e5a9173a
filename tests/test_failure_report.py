"""Reports list the trials that did not complete, with why: failed, pruned, killed."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState

from capsweep.sweep import study as studies
from capsweep.sweep.recovery import recover_stale_trials
from capsweep.sweep.summary import build_report, unfinished_trials

DISTRIBUTIONS: dict[str, Any] = {
    "capacity.unfreeze": optuna.distributions.IntDistribution(0, 6),
    "head.depth": optuna.distributions.IntDistribution(0, 2),
}
OOM_ERROR = (
    "out of memory (ResourceExhaustedError: OOM when allocating tensor); lower "
    "trainer.batch_size or backbone.input_size\nTraceback follows"
)


@pytest.fixture(autouse=True)
def _quiet_optuna() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def dead_pid() -> int:
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def ask(study: optuna.Study, unfreeze: int, depth: int) -> optuna.Trial:
    study.enqueue_trial({"capacity.unfreeze": unfreeze, "head.depth": depth})
    return study.ask(DISTRIBUTIONS)


def complete(study: optuna.Study, unfreeze: int, depth: int, accuracy: float) -> None:
    trial = ask(study, unfreeze, depth)
    metrics = {"val_accuracy": accuracy, "trainable_params": 1000.0 * (unfreeze + 1), "n_val": 200}
    trial.set_user_attr(studies.METRICS_ATTR.format(repeat=0), metrics)
    trial.set_user_attr(studies.RUN_ID_ATTR.format(repeat=0), f"run-{trial.number}")
    study.tell(trial, accuracy)


@pytest.fixture
def study_path(tmp_path: Path) -> Path:
    """A journal study holding two complete trials, one failed for want of memory, one
    pruned at epoch 2, and one whose worker died (recovered: FAIL, re-queued)."""
    path = tmp_path / "optuna" / "capacity.journal"
    storage = studies.open_storage(str(path))
    study = optuna.create_study(storage=storage, study_name="capacity", direction="maximize")
    complete(study, 0, 0, 0.70)  # trial 0
    complete(study, 1, 0, 0.85)  # trial 1

    failed = ask(study, 6, 1)  # trial 2: as the sweep loop records a failed repeat
    failed.set_user_attr("capsweep.error.0", OOM_ERROR)
    study.tell(failed, state=TrialState.FAIL)

    pruned = ask(study, 2, 2)  # trial 3: reported val_accuracy per epoch, then pruned
    for epoch, accuracy in enumerate([0.30, 0.35, 0.36]):
        pruned.report(accuracy, epoch)
    study.tell(pruned, state=TrialState.PRUNED)

    killed = ask(study, 3, 0)  # trial 4: its worker process is gone
    killed.set_user_attr(studies.OWNER_ATTR, {"host": socket.gethostname(), "pid": dead_pid()})
    recovered = recover_stale_trials(
        study, stale_after=3600, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"
    )
    assert [trial.number for trial in recovered] == [4]
    return path


def load(path: Path) -> optuna.Study:
    return optuna.load_study(study_name="capacity", storage=studies.open_storage(str(path)))


def test_unfinished_trials_say_why_each_did_not_complete(study_path: Path) -> None:
    listed = [(t.number, t.state, t.reason) for t in unfinished_trials(load(study_path))]

    assert listed == [
        (2, "FAIL", OOM_ERROR.splitlines()[0]),
        (3, "PRUNED", "pruned at epoch 2 (val_accuracy 0.360)"),
        (4, "KILLED", "worker died; re-queued as trial 5"),
    ]


def test_unfinished_trials_keep_their_params(study_path: Path) -> None:
    (oom, *_) = unfinished_trials(load(study_path))

    assert oom.params == {"capacity.unfreeze": 6, "head.depth": 1}
    assert oom.line.startswith("trial 2 (unfreeze=6, depth=1) FAIL: out of memory")


def test_each_failed_repeat_is_named_when_a_trial_has_repeats(tmp_path: Path) -> None:
    study = optuna.create_study()
    trial = ask(study, 1, 0)
    trial.set_user_attr("capsweep.error.1", "ValueError: boom")
    trial.set_user_attr("capsweep.error.2", "tracking.uri='http://x': no server")
    study.tell(trial, state=TrialState.FAIL)

    (failed,) = unfinished_trials(study)

    assert (
        failed.reason == "repeat 1: ValueError: boom; repeat 2: tracking.uri='http://x': no server"
    )


def test_report_files_list_the_unfinished_trials(study_path: Path, tmp_path: Path) -> None:
    report = build_report(load(study_path), tmp_path / "report")

    assert report.recommendation is not None
    table = pd.read_csv(report.files["unfinished"])
    assert table["number"].tolist() == [2, 3, 4]
    assert table["state"].tolist() == ["FAIL", "PRUNED", "KILLED"]
    assert table["params.capacity.unfreeze"].tolist() == [6, 2, 3]
    assert table["reason"].tolist() == [
        OOM_ERROR.splitlines()[0],
        "pruned at epoch 2 (val_accuracy 0.360)",
        "worker died; re-queued as trial 5",
    ]


def test_capsweep_report_prints_the_unfinished_trials_with_their_reasons(
    study_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from capsweep.cli.report import main

    main(
        [
            "--out",
            str(tmp_path / "report"),
            f"hydra.sweeper.storage={study_path}",
            "hydra.sweeper.study_name=capacity",
            f"paths.outputs={tmp_path}",
        ]
    )

    printed = capsys.readouterr().out
    assert "trials that did not complete" in printed
    for text in ("out of memory", "pruned at epoch 2", "worker died; re-queued as trial 5"):
        assert text in printed
    assert "KILLED" in printed and "PRUNED" in printed


def test_capsweep_report_counts_the_studys_trials_by_state(
    study_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from capsweep.cli.report import main

    main(
        [
            "--out",
            str(tmp_path / "report"),
            f"hydra.sweeper.storage={study_path}",
            "hydra.sweeper.study_name=capacity",
            f"paths.outputs={tmp_path}",
        ]
    )

    counts = Counter(t.state.name.lower() for t in load(study_path).get_trials())
    first = capsys.readouterr().out.splitlines()[0]
    total, _, states = (
        first.rpartition(": ")[0].rpartition(": ")[2],
        None,
        first.rpartition(": ")[2],
    )
    assert total == f"{sum(counts.values())} trials"
    assert sorted(states.split(", ")) == sorted(f"{n} {state}" for state, n in counts.items())


@pytest.mark.parametrize(
    ("option", "value", "expected"),
    [
        ("--tolerance", "-1", "--tolerance=-1.0: must be >= 0"),
        ("--tolerance", "nan", "--tolerance=nan: must be a finite number"),
        ("--max-overfit-gap", "inf", "--max-overfit-gap=inf: must be a finite number"),
    ],
)
def test_capsweep_report_refuses_a_bad_pick_option_with_exit_2_writing_nothing(
    study_path: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    option: str,
    value: str,
    expected: str,
) -> None:
    from capsweep.cli.report import main

    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exited:
        main(
            [
                option,
                value,
                "--out",
                str(out),
                f"hydra.sweeper.storage={study_path}",
                "hydra.sweeper.study_name=capacity",
                f"paths.outputs={tmp_path}",
            ]
        )

    assert exited.value.code == 2
    assert capsys.readouterr().err.startswith(f"capsweep-report: error: {expected}")
    assert not out.exists()
