"""What a local worker process does for a sweep: the calls an Argo pod's steps make, as tasks.

Each task opens the tracking store once per process and keeps it: a worker preprocesses, trains
and logs its own trials, so logging runs on every core instead of queueing in one process. The
heavy imports happen inside the tasks (the fork server preloads them): the sweeping process
imports this module, and loads MLflow only to look a stored split's trials up (`cached`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from collections.abc import Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sweeper.core.evidence import FoldStop
from sweeper.core.metrics import ProblemType
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.provenance import provenance
from sweeper.core.records import Plan, PreprocessGroup, Status, StoredSplit, Trial, TrialValues
from sweeper.core.settings import SearchKind, Settings
from sweeper.search.halving import on_split
from sweeper.tracking.tracker import Tracker
from sweeper.trial import kept, lifecycle
from sweeper.trial.lifecycle import Finished, SweepRef

if TYPE_CHECKING:
    from sweeper.conclusion.conclude import SweepEnd

_trackers: dict[tuple[str, str], Tracker] = {}


# A sweep's tasks besides preprocessing a group and training a trial, as the scheduler's work.
@dataclass(frozen=True)
class WarmStore:
    """Open the tracking store in a worker while the first batch's input is checked."""


@dataclass(frozen=True)
class OpenRun:
    """Open the sweep's run, once its input is sound."""


def tracker(settings: Settings) -> Tracker:
    """This process's tracker for the sweep's store: opened on first use, then kept warm."""
    key = (settings.mlflow.tracking_uri, settings.mlflow.experiment)
    if key not in _trackers:
        _trackers[key] = Tracker(*key)
    return _trackers[key]


def open_sweep(
    settings: Settings,
    sweep_id: str,
    params: dict[str, str],
    owner_pid: int,
    inputs: Sequence[StoredSplit] = (),
    definition: str = "",
) -> tuple[str, list[str]]:
    """The sweep's parent run, after closing runs orphaned by processes that are gone, with the
    data its splits were made from as its inputs. `owner_pid`: the process whose end orphans
    the run (the sweeping process); `definition`: the sweep's, encoded (see core.provenance)."""
    sweeps = tracker(settings)
    orphans = sweeps.end_orphaned_sweeps()
    tags = provenance(definition)  # here, not in the sweeping process: it asks git
    return sweeps.start_sweep(sweep_id, params, owner_pid, inputs, tags), orphans


def warm_tracking(settings: Settings) -> None:
    """Open the tracking store (a new database gets its tables, seconds of migrations) while the
    input is checked; the sweep's run opens only once it is sound."""
    tracker(settings)


def warm_fitting(targets: list[str]) -> None:
    """Import the modules of the trials' estimators (their `_target_`s) the fork server did
    not (a model config may name any), in a worker idle while the input is preprocessed and
    looked up."""
    import importlib

    import sklearn.metrics  # noqa: F401

    for module in sorted({target.rpartition(".")[0] for target in targets} - {""}):
        with contextlib.suppress(ImportError):  # said by the check of the model values
            importlib.import_module(module)


def prepare_end(settings: Settings, result: SweepResult, markers: str) -> str | None:
    """In a worker no trial is left for, while the others finish theirs: load what ending the
    sweep's run loads, and log the model of the best trial so far; the run it was logged on."""
    from sweeper.conclusion.conclude import load_libraries, log_best_early

    load_libraries()
    return log_best_early(tracker(settings), result, handed_over(markers))


def prepare_group(
    group: PreprocessGroup,
    settings: Settings,
    trials: Sequence[Trial] | Sequence[TrialValues],
    check: bool,
    split: StoredSplit | None = None,
) -> tuple[StoredSplit, Finished, list[str]]:
    """The group's stored split (`split`: preprocessed already, by the sweeping process), which
    of its `trials` (every rung of them, for a halving, which sends whole Trials; a grid sends
    their values) some sweep finished, and (`check`) what fitting would refuse in the model
    values of those not finished yet. A sweep whose trials are all finished imports no
    scikit-learn (for a split stored before)."""
    if split is None:
        from steps.preprocess import preprocess

        split = preprocess(
            group.data, group.preprocess, group.seed, settings.storage.root, settings.eval.cv
        )
    cv, looked_up = settings.eval.cv, trials
    if settings.search.kind == SearchKind.halving:
        ranking = settings.ranking(ProblemType(split.task))
        configs = [t for t in trials if isinstance(t, Trial)]
        assert len(configs) == len(trials), "a halving's configurations come as whole Trials"
        looked_up = on_split(configs, settings.search, ranking, split, cv).every_trial()
    finished = lifecycle.finished_trials(
        tracker(settings), split, settings.sweep.rerun, looked_up, cv
    )
    candidates: list[Trial | TrialValues] = list(trials) if check else []
    left = lifecycle.to_train(candidates, split, finished, cv)
    if not left:
        return split, finished, []
    from sweeper.trial.fitting import model_errors

    return split, finished, model_errors(left, settings.trust.modules)


def train_trial(
    settings: Settings,
    sweep: SweepRef,
    trial: Trial,
    split: StoredSplit,
    markers: str,
    wait: bool,
    threads: int | None = None,
    early_stop: FoldStop | None = None,
) -> Outcome:
    """Fit, score and log one trial (`wait`: for another process's claim on it; else it comes
    back unsettled); the fitted model of this worker's best trial so far is handed over. While
    it trains, a marker file named after this process holds the trial's index: if the process
    dies, the sweep knows which trial ran. `threads`: more BLAS/OpenMP threads than this
    worker's share, for a trial the sweep waits on alone (a halving's last rung); `early_stop`:
    the best finished trial's folds, its CV is stopped against (eval.early_stop)."""
    from threadpoolctl import threadpool_limits

    marker = Path(markers, str(os.getpid()))
    with threadpool_limits(limits=threads) if threads else contextlib.nullcontext():
        outcome = lifecycle.run_trial(
            tracker(settings), sweep, trial, split, marker=marker, wait=wait, early_stop=early_stop
        )
    if outcome.ok and not outcome.reused:
        kept.hand_over(handed_over(markers))  # when it is this worker's best so far
    return outcome


def handed_over(markers: str) -> Path:
    """Where this sweep's workers leave the fitted model of their best trial (trial.kept)."""
    return Path(markers, "kept")


def log_failure(
    settings: Settings, sweep: SweepRef, trial: Trial, split: StoredSplit, error: BaseException
) -> Outcome:
    return lifecycle.record_failure(tracker(settings), sweep, trial, split, error)


def stop_sweep(settings: Settings, result: SweepResult) -> None:
    """End a sweep an outage stopped: FAILED with the reason as a tag, its trials caught mid-fit
    KILLED, each call tried once (a store still down leaves the run to the next sweep, which
    ends it KILLED as an orphan). Nothing else is written: the rest stays for the resume."""
    from sweeper.core import faults

    if not result.parent_run_id or result.stopped_by is None:
        return
    with contextlib.suppress(Exception), faults.without_retries():
        store = tracker(settings)
        store.set_tag(result.parent_run_id, "stopped_by", result.stopped_by)
        store.end_running_trials(result.parent_run_id)
        store.set_terminated(result.parent_run_id, Status.FAILED)


def conclude_here(
    settings: Settings, result: SweepResult, status: Status, markers: str
) -> SweepEnd:
    """End the sweep's run in this process, every part one after the other (its workers were
    stopped; see sweeper.conclusion.conclude)."""
    from sweeper.conclusion.conclude import conclude_sweep

    store = tracker(settings)
    return conclude_sweep(store, result, status, settings.register_best, handed_over(markers))


def conclude_in(
    pool: Executor,
    settings: Settings,
    result: SweepResult,
    status: Status,
    markers: str,
    prepared: Future[str | None] | None = None,
) -> SweepEnd:
    """End the sweep's run in the pool's workers: the best model, and the tables, report and
    plots (the one part that reads every outcome) side by side, then the run's end (see
    sweeper.conclusion.conclude). Past WRITTEN_HERE_PAST outcomes this process writes the
    tables, report and plots and a worker logs them. `prepared`: `prepare_end`, if it was sent."""
    here = written_here(len(result.outcomes))
    # The longest part first, on a worker free while `prepared` may still run on the other.
    tables = None if here else pool.submit(log_results, settings, result)
    early = None
    if prepared is not None and prepared.exception() is None:  # else the end does it all
        early = prepared.result()
    best = pool.submit(log_best, settings, result.of_best(), markers, early)
    if tables is not None:
        notes = [*best.result(), *tables.result()]
    else:
        from sweeper.conclusion.conclude import write_results

        with tempfile.TemporaryDirectory(prefix="sweeper-results-") as folder:
            written = write_results(result, Path(folder))
            rungs = [o for o in result.outcomes if o.rungs]  # a halving's: logged on their runs
            lean = dataclasses.replace(result, plan=_without_trials(result.plan), outcomes=rungs)
            logged = pool.submit(log_written, settings, lean, folder)
            notes = [*best.result(), *written, *logged.result()]
    plan, metrics = _without_trials(result.plan), result.summary_metrics()
    run = result.parent_run_id
    ended: SweepEnd = pool.submit(end_sweep, settings, run, plan, metrics, status, notes).result()
    return ended


def _without_trials(plan: Plan) -> Plan:
    return dataclasses.replace(plan, trials=())


# Past this many outcomes the sweeping process writes the tables, report and plots itself: a
# worker would be sent a copy of every outcome (~1.7 KB each unpickled, and the pickle on both
# sides), more than this process's own imports of pandas, plotly and matplotlib and their first
# use (~0.13 GB). Below it a worker, which has them loaded, is faster: ~0.5 s less at 1,000.
WRITTEN_HERE_PAST = 20_000


def written_here(outcomes: int) -> bool:
    """Whether a sweep of this many outcomes has its tables written by the sweeping process."""
    return outcomes > WRITTEN_HERE_PAST


# The parts of ending a sweep's run.
def log_results(settings: Settings, result: SweepResult) -> list[str]:
    from sweeper.conclusion.conclude import log_results

    return log_results(tracker(settings), result)


def log_written(settings: Settings, result: SweepResult, folder: str) -> list[str]:
    """What `write_results` wrote in `folder`, logged on the sweep's run (and a halving's rungs:
    `result` holds only the outcomes that have them)."""
    from sweeper.conclusion.conclude import log_written

    return log_written(tracker(settings), result, Path(folder))


def log_best(
    settings: Settings, result: SweepResult, markers: str, early: str | None = None
) -> list[str]:
    from sweeper.conclusion.conclude import log_best

    store = tracker(settings)
    return log_best(store, result, settings.register_best, early, handed_over(markers))


def end_sweep(
    settings: Settings,
    parent_run_id: str,
    plan: Plan,
    metrics: dict[str, float],
    status: Status,
    notes: list[str],
) -> SweepEnd:
    from sweeper.conclusion.conclude import end_sweep

    return end_sweep(tracker(settings), parent_run_id, plan, metrics, status, notes)
