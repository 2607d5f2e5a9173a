"""A journal-file study survives what a killed writer leaves: a torn last line, a lock."""

from __future__ import annotations

import os
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import IntDistribution

from capsweep.sweep import study as studies

SPACE = {"capacity.unfreeze": IntDistribution(0, 5)}


def study_with_trials(journal: Path, count: int) -> optuna.Study:
    study = optuna.create_study(storage=studies.open_storage(str(journal)), study_name="s")
    for _ in range(count):
        trial = study.ask(SPACE)
        study.tell(trial, 0.5)
    return study


def reopen(journal: Path) -> optuna.Study:
    return optuna.load_study(storage=studies.open_storage(str(journal)), study_name="s")


def test_a_torn_last_line_is_cut_and_the_study_goes_on(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    study_with_trials(journal, 3)
    with journal.open("ab") as file:  # a writer killed halfway through a record
        file.write(b'{"op_code":4,"worker_id":"dead","trial_id":9,"par')

    study = reopen(journal)
    trial = study.ask(SPACE)
    study.tell(trial, 0.7)

    assert [t.value for t in reopen(journal).trials] == [0.5, 0.5, 0.5, 0.7]
    assert journal.read_bytes().endswith(b"\n")


def test_a_whole_journal_is_left_as_it_is(tmp_path: Path) -> None:
    journal = tmp_path / "s.journal"
    study_with_trials(journal, 2)
    before = journal.read_bytes()
    assert not studies.repair_torn_tail(journal)
    assert journal.read_bytes() == before


@pytest.mark.slow
@pytest.mark.heavy
def test_a_lock_left_by_a_killed_writer_is_broken(tmp_path: Path) -> None:
    """Optuna breaks a journal lock that has not moved for its grace period (30 s)."""
    journal = tmp_path / "s.journal"
    study_with_trials(journal, 1)
    os.symlink(journal, f"{journal}.lock")  # what a writer killed mid-append leaves

    started = time.monotonic()
    study = reopen(journal)
    trial = study.ask(SPACE)
    study.tell(trial, 0.9)

    assert time.monotonic() - started < 120
    assert [t.value for t in reopen(journal).trials] == [0.5, 0.9]
    assert not os.path.lexists(f"{journal}.lock")


def test_a_writer_that_has_the_journal_open_survives_a_torn_line(tmp_path: Path) -> None:
    """A peer killed mid-append while this worker has the study open."""
    journal = tmp_path / "s.journal"
    study = study_with_trials(journal, 2)
    with journal.open("ab") as file:
        file.write(b'{"op_code":4,"worker_id":"dead","trial_id":9,"par')

    trial = study.ask(SPACE)  # the same storage object as before the tear
    study.tell(trial, 0.7)

    assert [t.value for t in reopen(journal).trials] == [0.5, 0.5, 0.7]
