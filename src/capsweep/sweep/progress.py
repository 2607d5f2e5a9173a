"""What a person watching ``capsweep -m`` sees: a line per finished trial and a live bar.

Keras' epoch lines go to each job's log file, so the console holds one line per trial
(its settings, val_accuracy, trainable parameters, seconds and state), a progress bar
with elapsed time, time remaining and the best so far, and at the end the recommendation,
where the report is and how to open the sweep in the MLflow UI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from capsweep.select import params_label
from capsweep.sweep.nuisance import NuisancePlan
from capsweep.sweep.tuning import CANDIDATE_ATTR, SEARCH, JobResult


@dataclass
class TrialLine:
    """One finished trial (all its repeats), as the sweep loop told it to the study."""

    number: int
    params: Mapping[str, Any]
    state: str
    val_accuracies: list[float] = field(default_factory=list)
    trainable_params: float | None = None
    seconds: float | None = None
    detail: str = ""
    # With nuisance tuning: the chosen values and how many candidates were tried.
    nuisance: Mapping[str, Any] | None = None
    tried: int | None = None

    def render(self) -> str:
        parts = [f"trial {self.number}", params_label(self.params)]
        if self.val_accuracies:
            mean = sum(self.val_accuracies) / len(self.val_accuracies)
            accuracy = f"val_accuracy {mean:.3f}"
            if len(self.val_accuracies) > 1:
                accuracy += f" (mean of {len(self.val_accuracies)})"
            parts.append(accuracy)
        if self.nuisance:
            parts.append(f"at {params_label(self.nuisance)} (best of {self.tried})")
        if self.trainable_params is not None:
            parts.append(f"{self.trainable_params:,.0f} trainable params")
        if self.seconds is not None:
            parts.append(f"{self.seconds:.1f} s")
        parts.append(self.state + (f" {self.detail}" if self.detail else ""))
        return "  ".join(parts)


def job_line(result: JobResult, plan: NuisancePlan | None) -> str:
    """One tuning job's line: ``trial 3 candidate 1/3 backbone_learning_rate=0.0003: ...``."""
    job = result.job
    tuning = job.tuning
    if job.role == SEARCH:
        index = int(job.trial.user_attrs.get(CANDIDATE_ATTR, job.trial.number)) + 1
        total = plan.candidates(tuning.effective) if plan else "?"
        again = " (second run)" if job.round else ""
        what = f"candidate {index}/{total}{again} {params_label(job.values)}"
    else:
        what = f"confirmation {job.repeat + 1}/{tuning.repeats}"
    parts = [f"  trial {tuning.sweep_trial.number} {what}"]
    if result.val_accuracy is not None:
        parts.append(f"val_accuracy {result.val_accuracy:.3f}")
    if result.seconds:
        parts.append(f"{result.seconds:.1f} s")
    parts.append(result.state + (f" {result.detail}" if result.detail else ""))
    return "  ".join(parts)


class SweepProgress:
    """A live progress bar on a terminal; plain lines elsewhere (CI logs, pipes, files)."""

    def __init__(self, *, total: int, done: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True, highlight=False)
        self.total = total
        self.done = done
        self.best: tuple[float, str] | None = None
        self.started = time.monotonic()
        self._bar: Progress | None = None
        self._task: Any = None

    def __enter__(self) -> SweepProgress:
        if self.console.is_terminal:
            self._bar = Progress(
                TextColumn("sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[best]}"),
                console=self.console,
                redirect_stdout=True,
                redirect_stderr=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("sweep", total=self.total, completed=self.done, best="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def trial_finished(self, line: TrialLine) -> None:
        """Print the trial's line and move the bar on."""
        if line.state in ("COMPLETE", "PRUNED"):
            self.done += 1
        if line.state == "COMPLETE" and line.val_accuracies:
            mean = sum(line.val_accuracies) / len(line.val_accuracies)
            if self.best is None or mean > self.best[0]:
                self.best = (mean, params_label(line.params))
        best = f"best {self.best[0]:.3f} ({self.best[1]})" if self.best else ""
        prefix = f"[{min(self.done, self.total)}/{self.total}]"
        if self._bar is None:
            elapsed = time.monotonic() - self.started
            suffix = f"  ({elapsed:.0f} s elapsed{'; ' + best if best else ''})"
            self.console.print(f"{prefix} {line.render()}{suffix}", soft_wrap=True)
            return
        self.console.print(f"{prefix} {line.render()}", soft_wrap=True)
        self._bar.update(self._task, completed=min(self.done, self.total), best=best)

    def say(self, text: str) -> None:
        """A line above the bar (or on its own without one)."""
        self.console.print(text, soft_wrap=True, highlight=False)
