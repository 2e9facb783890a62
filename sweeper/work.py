"""What a local worker process does for a sweep: the calls an Argo pod's steps make, as tasks.

Each task opens the tracking store once per process and keeps it: a worker preprocesses, trains
and logs its own trials, so logging runs on every core instead of queueing in one process. The
heavy imports happen inside the tasks (the fork server preloads them): the sweeping process
imports this module and never loads MLflow, pandas or scikit-learn.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steps.records import StoredSplit, TrialScore
from sweeper.plan import PreprocessGroup, Settings
from sweeper.tracking import Tracker, TrialRecord

if TYPE_CHECKING:
    from sweeper.conclude import SweepEnd
    from sweeper.outcome import SweepResult

_trackers: dict[tuple[str, str], Tracker] = {}


@dataclass(frozen=True)
class TrialDone:
    """A trial's result as its worker logged it."""

    run_id: str
    score: TrialScore | None  # None when it failed
    error: str | None = None  # "ValueError: …" when it failed


@dataclass(frozen=True)
class SweepContext:
    """What every trial's run needs to know about its sweep."""

    settings: Settings
    sweep_id: str
    parent_run_id: str


def tracker(settings: Settings) -> Tracker:
    """This process's tracker for the sweep's store: opened on first use, then kept warm."""
    key = (settings.tracking_uri, settings.experiment)
    if key not in _trackers:
        _trackers[key] = Tracker(*key)
    return _trackers[key]


def open_sweep(
    settings: Settings, sweep_id: str, params: dict[str, str], owner_pid: int | None = None
) -> tuple[str, list[str]]:
    """The sweep's parent run, after closing runs orphaned by processes that are gone.
    `owner_pid`: the process whose end orphans the run (default: this worker)."""
    sweeps = tracker(settings)
    orphans = sweeps.end_orphaned_sweeps()
    return sweeps.start_sweep(sweep_id, params, owner_pid), orphans


def prepare_group(
    group: PreprocessGroup, settings: Settings
) -> tuple[StoredSplit, dict[str, tuple[str, dict[str, float]]]]:
    """The group's stored split, and the trials some sweep already finished on it."""
    from steps.preprocess import preprocess

    split = preprocess(group.data, group.preprocess, group.seed, settings.storage_root)
    finished = {} if settings.rerun else tracker(settings).finished_trials(split.key)
    return split, finished


def train_trial(
    sweep: SweepContext, record: TrialRecord, model: dict[str, Any], split_url: str, markers: str
) -> TrialDone:
    """Fit and score one trial and log its child run. While it trains, a marker file named after
    this process holds the trial's index: if the process dies, the sweep knows which trial ran."""
    from steps.train import score

    marker = Path(markers, str(os.getpid()))
    marker.write_text(str(record.index))
    try:
        result = score(model, split_url)
    except Exception as err:
        return log_failure(sweep, record, err)
    finally:
        marker.unlink(missing_ok=True)
    with _uninterrupted():
        run_id = tracker(sweep.settings).log_trial(
            sweep.parent_run_id, sweep.sweep_id, record, score=result
        )
    return TrialDone(run_id, result)


def log_failure(sweep: SweepContext, record: TrialRecord, error: BaseException) -> TrialDone:
    with _uninterrupted():
        run_id = tracker(sweep.settings).log_trial(
            sweep.parent_run_id, sweep.sweep_id, record, error=error
        )
    return TrialDone(run_id, None, f"{type(error).__name__}: {error}")


def close_sweep(settings: Settings, result: SweepResult, status: str) -> SweepEnd:
    """End the sweep's run: artifacts, best model, summary metrics (see sweeper.conclude)."""
    from sweeper.conclude import conclude_sweep

    return conclude_sweep(tracker(settings), result, status, settings.register_best)


# The parts of close_sweep, for a pool to run side by side (each a few seconds of imports).
def log_results(settings: Settings, result: SweepResult) -> list[str]:
    from sweeper.conclude import log_results

    return log_results(tracker(settings), result)


def log_best(settings: Settings, result: SweepResult) -> list[str]:
    from sweeper.conclude import log_best

    return log_best(tracker(settings), result, settings.register_best)


def end_sweep(settings: Settings, result: SweepResult, status: str, notes: list[str]) -> SweepEnd:
    from sweeper.conclude import end_sweep

    return end_sweep(tracker(settings), result, status, notes)


def with_key(record: TrialRecord, key: str, split_key: str) -> TrialRecord:
    return dataclasses.replace(record, key=key, split_key=split_key)


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """A stop request (SIGTERM) waits until the run being written is whole."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
