"""Optuna storage and study handling: open or resume a study, and recover from dead workers.

Every process that touches the study (sweepers, trial workers, ``capsweep-report``) gets
its storage from :func:`open_storage`, so they agree on what a URL means.
"""

from __future__ import annotations

import json
import logging
import os
import random
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage, JournalStorage
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import FrozenTrial, TrialState

from capsweep.errors import CapsweepConfigError
from capsweep.redaction import redact_url

log = logging.getLogger(__name__)

SPACE_ATTR = "capsweep.search_space"
SIGNATURE_ATTR = "capsweep.search_space_signature"
DIRECTIONS_ATTR = "capsweep.directions"
OBJECTIVES_ATTR = "capsweep.objectives"
OWNER_ATTR = "capsweep.owner"
HEARTBEAT_ATTR = "capsweep.heartbeat"
RUN_ID_PREFIX = "capsweep.run_id."
RUN_ID_ATTR = RUN_ID_PREFIX + "{repeat}"
METRICS_PREFIX = "capsweep.metrics."
METRICS_ATTR = METRICS_PREFIX + "{repeat}"
SEED_ATTR = "capsweep.seed.{repeat}"  # the training seed a repeat used
SPLIT_SEED_ATTR = "capsweep.split_seed.{repeat}"  # the seed of its training/validation split
CURVE_ATTR = "capsweep.val_curve"
TRAINABLE_ATTR = "capsweep.trainable_params"
REQUEUED_ATTR = "capsweep.requeued_from"
SURPLUS_ATTR = "capsweep.surplus"
DUPLICATE_ATTR = "capsweep.duplicate_of"
PARENT_RUN_ATTR = "capsweep.mlflow_parent_run_id"
# {"repeats": k, "over": "both" | "seed" | "split"}: how each configuration is repeated.
REPEATS_ATTR = "capsweep.repeats"
# The nuisance space, budget and sampler each configuration is tuned with (None: none).
NUISANCE_ATTR = "capsweep.nuisance"
# The training hyperparameters neither compared nor tuned, with their values.
FIXED_ATTR = "capsweep.fixed_hyperparameters"

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ACTIVE = (TrialState.RUNNING, TrialState.WAITING)


def is_journal_path(storage: str) -> bool:
    return "://" not in storage


def redact(storage: str) -> str:
    """The storage URL with any password removed, safe to log and tag."""
    return redact_url(storage)


def storage_url(storage: str | None, outputs: str, study_name: str) -> str:
    """The configured storage, or by default a journal file under ``outputs``."""
    if storage:
        return storage
    return str(Path(outputs) / "optuna" / f"{study_name}.journal")


def open_storage(storage: str) -> BaseStorage:
    """Open a storage: a file path means Optuna's journal file; else an RDB URL.

    Raises:
        CapsweepConfigError: the storage cannot be reached or created.
    """
    if is_journal_path(storage):
        path = Path(storage).expanduser()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return JournalStorage(RepairingJournalFile(str(path)))
        except OSError as error:
            raise CapsweepConfigError(
                "hydra.sweeper.storage",
                storage,
                f"cannot be opened ({error})",
                fix="give a writable file path or a database URL",
            ) from None
    try:
        return _rdb_storage(storage)
    except Exception as error:  # SQLAlchemy raises many types for a bad or down server
        raise CapsweepConfigError(
            "hydra.sweeper.storage",
            redact(storage),
            f"cannot be reached ({type(error).__name__}: {str(error).splitlines()[0]})",
            fix="check the URL, that the database server is up and its driver installed "
            "(postgresql:// needs psycopg: pip install 'capsweep[cluster]')",
        ) from None


# Workers started together on a new database all create Optuna's tables at once; all but
# one fail on PostgreSQL's catalog ("duplicate key ... pg_type_typname_nsp_index"). They
# try again, by then finding the tables made.
SCHEMA_RACE_ATTEMPTS = 5


def _rdb_storage(storage: str) -> optuna.storages.RDBStorage:
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(1, SCHEMA_RACE_ATTEMPTS + 1):
        try:
            return optuna.storages.RDBStorage(storage)
        except (IntegrityError, ProgrammingError):
            if attempt == SCHEMA_RACE_ATTEMPTS:
                raise
            time.sleep(random.uniform(0.2, 1.0) * attempt)
    raise AssertionError("unreachable")


class RepairingJournalFile(JournalFileBackend):
    """Optuna's journal file, which first cuts off a record a killed writer left unfinished.

    Optuna skips a half-written last line when reading, but appends the next record onto
    it, and from then on cannot read the file. Every append here looks at the file's end
    under the journal's lock first — held by every writer for a whole append, so an
    unfinished line seen under it belongs to a dead writer — and cuts such a line off.
    """

    def __init__(self, file_path: str) -> None:
        self.lock = JournalFileSymlinkLock(file_path)
        super().__init__(file_path, lock_obj=self.lock)
        self.path = Path(file_path)
        repair_torn_tail(self.path, self.lock)

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        self.lock.acquire()
        try:
            _cut_torn_tail(self.path)
            with self.path.open("ab") as file:
                file.write(text.encode("utf-8"))
                file.flush()
                os.fsync(file.fileno())
        finally:
            self.lock.release()


def repair_torn_tail(journal: Path, lock: JournalFileSymlinkLock | None = None) -> bool:
    """Cut a half-written last line off a journal file; return whether there was one.

    A writer killed in the middle of an append leaves a line with no end. Optuna skips it
    when reading, but appends the next record onto it, and from then on cannot read the
    file. The check runs under the journal's own lock, which every writer holds for a
    whole append: an unfinished line seen under it belongs to a dead writer. (A lock left
    by a killed process is broken by Optuna after its grace period, 30 s.)
    """
    if not journal.exists():
        return False
    lock = lock or JournalFileSymlinkLock(str(journal))
    lock.acquire()
    try:
        return _cut_torn_tail(journal)
    finally:
        lock.release()


def _cut_torn_tail(journal: Path) -> bool:
    """Cut an unfinished last line off ``journal``; the caller holds the journal's lock."""
    if not journal.exists():
        return False
    with journal.open("r+b") as file:
        size = file.seek(0, 2)
        if size == 0:
            return False
        file.seek(size - 1)
        if file.read(1) == b"\n":
            return False
        start = size
        while start > 0:  # back to the end of the last whole line
            start = max(0, start - 65536)
            file.seek(start)
            newline = file.read(size - start).rfind(b"\n")
            if newline >= 0:
                start += newline + 1
                break
        file.truncate(start)
        file.flush()
        os.fsync(file.fileno())
    log.warning("Journal %s ended in a half-written record (a killed writer): removed", journal)
    return True


def open_study(
    storage: BaseStorage,
    study_name: str,
    *,
    directions: Sequence[str],
    objectives: Sequence[str],
    space_signature: str,
    space_description: dict[str, str],
    repeats: dict[str, Any] | None = None,
    nuisance: dict[str, Any] | None = None,
    fixed: dict[str, Any] | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> tuple[optuna.Study, bool]:
    """Create the study, or load it to resume; return it and whether this call created it.

    Raises:
        CapsweepConfigError: the existing study searches another space, other directions,
            repeats or nuisance tuning.
    """
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=[str(d) for d in directions],  # type: ignore[misc]
            sampler=sampler,
            pruner=pruner,
        )
        study.set_user_attr(SIGNATURE_ATTR, space_signature)
        study.set_user_attr(SPACE_ATTR, space_description)
        study.set_user_attr(DIRECTIONS_ATTR, list(directions))
        study.set_user_attr(OBJECTIVES_ATTR, list(objectives))
        study.set_user_attr(REPEATS_ATTR, repeats)
        study.set_user_attr(NUISANCE_ATTR, nuisance)
        study.set_user_attr(FIXED_ATTR, fixed or {})
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        pass
    study = optuna.load_study(
        study_name=study_name, storage=storage, sampler=sampler, pruner=pruner
    )
    attrs = _wait_for_attrs(study)
    stored = (attrs.get(DIRECTIONS_ATTR), attrs.get(OBJECTIVES_ATTR))
    if stored != (list(directions), list(objectives)):
        raise CapsweepConfigError(
            "hydra.sweeper.direction",
            list(directions),
            f"study {study_name!r} was created with objectives {stored[1]} and directions "
            f"{stored[0]}, and cannot be resumed with objectives {list(objectives)}",
            fix="use the same objectives and directions, or a new hydra.sweeper.study_name",
        )
    if attrs.get(REPEATS_ATTR, repeats) != repeats:
        raise CapsweepConfigError(
            "hydra.sweeper.repeats",
            repeats,
            f"study {study_name!r} repeats each configuration as {attrs.get(REPEATS_ATTR)}; "
            "mixing repeat schemes in one study would pool unlike repeats",
            fix="use the same repeats and repeat_over, or a new hydra.sweeper.study_name",
        )
    if attrs.get(NUISANCE_ATTR) != nuisance:
        raise CapsweepConfigError(
            "hydra.sweeper.nuisance",
            nuisance,
            f"study {study_name!r} tunes each configuration with {attrs.get(NUISANCE_ATTR)}; "
            "configurations tuned with another nuisance space or budget cannot be compared",
            fix="use the same nuisance, nuisance_trials, nuisance_sampler and "
            "nuisance_where, or a new hydra.sweeper.study_name",
        )
    if attrs.get(SIGNATURE_ATTR) != space_signature:
        raise CapsweepConfigError(
            "hydra.sweeper.params",
            space_description,
            f"study {study_name!r} was created with the search space "
            f"{attrs.get(SPACE_ATTR)}, and cannot be resumed with another one",
            fix="use the same params, or a new hydra.sweeper.study_name",
        )
    return study, False


def _wait_for_attrs(study: optuna.Study, timeout: float = 30.0) -> dict[str, Any]:
    """The study's attributes, waiting briefly for a concurrent creator to write them."""
    deadline = time.monotonic() + timeout
    while True:
        attrs = study.user_attrs
        if (DIRECTIONS_ATTR in attrs and SIGNATURE_ATTR in attrs) or time.monotonic() > deadline:
            return attrs
        time.sleep(0.2)


def tell(study: optuna.Study, trial: optuna.Trial | int, **result: Any) -> bool:
    """``study.tell``, safe for ask/tell across workers; return whether the result was stored.

    * A trial another worker has already finished (it declared this one's worker dead and
      queued its configuration again) is left as it is: the late result is dropped, and
      ``False`` returned, instead of Optuna's "Cannot tell a FAIL trial".
    * GridSampler's ``after_trial`` runs after Optuna has stored the result and may raise
      under ask/tell: ``study.stop()`` outside ``optimize()``, and a ``KeyError`` for a
      queued trial, which has no grid id.
    """
    number = trial if isinstance(trial, int) else trial.number
    try:
        study.tell(trial, **result)
    except UpdateFinishedTrialError:  # another worker finished it between look and write
        log.warning("Trial %d was already finished by another worker: result dropped", number)
        return False
    except ValueError:  # "Cannot tell a FAIL trial": finished before this worker looked
        state = frozen_trial(study, number).state
        if not state.is_finished():
            raise
        log.warning(
            "Trial %d is %s already: finished by another worker, result dropped",
            number,
            state.name,
        )
        return False
    except RuntimeError as error:
        if "Study.stop" not in str(error):
            raise
        return True
    except KeyError:
        if not frozen_trial(study, number).state.is_finished():
            raise
        return True
    return True


def enqueue_again(study: optuna.Study, trial: FrozenTrial, **user_attrs: Any) -> bool:
    """Queue ``trial``'s parameters for another worker unless a live trial already has them.

    Optuna's ``enqueue_trial(skip_if_exists=True)`` counts failed trials too, so it would
    skip the parameters of the very trial being given back.
    """
    trials = study.get_trials(deepcopy=False)
    for other in trials:
        live = other.state in (*FINISHED, *ACTIVE) and other.number != trial.number
        if live and planned_params(other) == trial.params:
            return False
    generation = requeue_generation(trials, trial.number)
    if generation >= MAX_REQUEUES:
        log.warning(
            "Trial %d's parameters %s were queued again %d times and lost every time (a "
            "worker killed by them, or preempted again and again): not queued again",
            trial.number,
            trial.params,
            generation,
        )
        return False
    study.enqueue_trial(trial.params, user_attrs=user_attrs or None)
    return True


# How many times one configuration is queued again after its trial was lost.
MAX_REQUEUES = 3


def requeue_generation(trials: Sequence[FrozenTrial], number: int) -> int:
    """How many times the configuration of trial ``number`` has already been queued again."""
    generation = 0
    origin = trials[number].user_attrs.get(REQUEUED_ATTR)
    while origin is not None and generation <= MAX_REQUEUES:
        generation += 1
        origin = trials[int(origin)].user_attrs.get(REQUEUED_ATTR)
    return generation


def planned_params(trial: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters; for a queued trial, the ones it was queued with."""
    if trial.state == TrialState.WAITING:
        return dict(trial.system_attrs.get("fixed_params") or {})
    return trial.params


def duplicate_of(trials: Sequence[FrozenTrial], trial: FrozenTrial) -> int | None:
    """The number of an earlier live or finished trial with the same parameters, if any.

    The trial ``trial`` was queued again from is not one: it is queued before the trial it
    replaces is failed, so it may still be RUNNING when ``trial`` is asked.
    """
    origin = trial.user_attrs.get(REQUEUED_ATTR)
    for other in trials:
        live = other.state in (*FINISHED, TrialState.RUNNING)
        if other.number == origin and other.state == TrialState.RUNNING:
            continue
        if live and other.number < trial.number and other.params == trial.params:
            return other.number
    return None


def frozen_trial(study: optuna.Study, number: int) -> FrozenTrial:
    """Trial ``number`` as stored now (for the rare paths: a loop pass reads all once)."""
    return study.get_trials(deepcopy=False)[number]


def owner_tag() -> dict[str, Any]:
    """Who is running a trial: host, process id and, under Slurm, the job and array task."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "slurm_array_task_id": os.environ.get("SLURM_ARRAY_TASK_ID"),
    }


def count_states(trials: Sequence[FrozenTrial]) -> dict[TrialState, int]:
    """How many of ``trials`` are in each state."""
    counts = dict.fromkeys(TrialState, 0)
    for trial in trials:
        counts[trial.state] += 1
    return counts


def trials_ahead(trials: Sequence[FrozenTrial], number: int) -> int:
    """How many trials before ``number`` are finished, running or queued."""
    active = (*FINISHED, TrialState.RUNNING, TrialState.WAITING)
    return sum(1 for t in trials if t.number < number and t.state in active)


def trial_handle(storage: BaseStorage, study_name: str, number: int, **load: Any) -> optuna.Trial:
    """An ``optuna.Trial`` for trial ``number`` of a study, usable from any process.

    Workers on other hosts report intermediate values and ask ``should_prune`` through it.
    """
    study = optuna.load_study(study_name=study_name, storage=storage, **load)
    study_id = storage.get_study_id_from_name(study_name)
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    return optuna.Trial(study, trial_id)


# The metrics a sweep may optimize: a trial's final metrics (capsweep.training.TrialMetrics).
OBJECTIVE_METRICS = (
    "val_accuracy",
    "train_accuracy",
    "test_accuracy",
    "overfit_gap",
    "trainable_params",
    "non_trainable_params",
    "total_params",
    "fit_seconds",
    "seconds_per_epoch",
    "samples_per_second",
)
