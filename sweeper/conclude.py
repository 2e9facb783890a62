"""How a sweep's parent run ends: the results table and plots as artifacts, the best trial's
model logged (and registered when asked and better), summary metrics, the final status.

The same call ends a local sweep (in a worker) and an Argo sweep (its summary pod). What goes
wrong while making the extras is reported as a note; the run still ends with its status.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sweeper.outcome import SweepResult
    from sweeper.tracking import Tracker

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class SweepEnd:
    experiment_id: str
    notes: tuple[str, ...] = ()  # lines for the person who started the sweep


def conclude_sweep(
    tracker: Tracker, result: SweepResult, status: str, register_best: str | None = None
) -> SweepEnd:
    parent = result.parent_run_id
    notes: list[str] = []
    if status != "FINISHED":
        tracker.end_running_trials(parent)
    if status != "KILLED":  # an interrupted sweep ends at once
        _attempt(notes, "the results table and plots", lambda: _log_results(tracker, result))
        _log_best(tracker, result, register_best, notes)
    tracker.finish_sweep(parent, result.summary_metrics(), status)
    return SweepEnd(tracker.experiment_id, tuple(notes))


def _log_best(
    tracker: Tracker, result: SweepResult, register_best: str | None, notes: list[str]
) -> None:
    from sweeper.best_model import log_best_model, register_if_better

    best = result.best
    split = result.splits.get(best.trial.group) if best else None
    if best is None or split is None:
        return
    model = _attempt(notes, "the best model", lambda: log_best_model(tracker, best, split.url))
    if model is None:
        return
    tracker.client.set_tag(result.parent_run_id, "best_model_uri", model.uri)
    if not register_best:
        return
    decision = _attempt(notes, f"registered model {register_best}", lambda: register_if_better(
        tracker, register_best, model, best, split.url, result.plan.sweep_id))  # fmt: skip
    if decision:
        notes.append(decision)
        tracker.client.set_tag(result.parent_run_id, "registry", decision)


def _log_results(tracker: Tracker, result: SweepResult) -> None:
    from sweeper.artifacts import write_plots, write_tables

    with tempfile.TemporaryDirectory(prefix="sweeper-results-") as folder:
        tables, plots = Path(folder, "results"), Path(folder, "plots")
        tables.mkdir()
        plots.mkdir()
        write_tables(result, tables)
        write_plots(result, plots)
        tracker.client.log_artifacts(result.parent_run_id, str(tables), "results")
        if any(plots.iterdir()):
            tracker.client.log_artifacts(result.parent_run_id, str(plots), "plots")


def _attempt(notes: list[str], what: str, make: Callable[[], T]) -> T | None:
    try:
        return make()
    except Exception as err:
        log.warning("Could not log %s", what, exc_info=True)
        notes.append(f"Could not log {what}: {type(err).__name__}: {err}")
        return None
