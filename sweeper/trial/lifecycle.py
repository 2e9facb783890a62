"""The one trial lifecycle: look up a finished trial, else fit and score it, and record its run.

Every executor's trials go through `run_trial` (a local worker, an Argo train pod), as every
scikit-learn search goes through its `_fit_and_score`; a sweep's runs are read back into outcomes
by `recorded_outcomes`, with the same reuse lookup. The sweeping process imports this module
without loading pandas or scikit-learn: fitting is imported when a trial runs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sweeper.core.faults import Fault, without_retries
from sweeper.core.metrics import ProblemType, Ranking
from sweeper.core.outcomes import Outcome
from sweeper.core.processes import uninterrupted
from sweeper.core.records import (
    Plan,
    Status,
    StoredSplit,
    Trial,
    TrialRecord,
    TrialScore,
    TrialValues,
    stopped_key,
    trial_key,
)
from sweeper.tracking import claims
from sweeper.tracking.tracker import PARENT_TAG, STOPPED_AFTER_TAG, FinishedRun, fold_scores
from sweeper.trial import kept

AnyTrial = TypeVar("AnyTrial", bound=Trial | TrialValues)

if TYPE_CHECKING:
    from mlflow.entities import Run

    from sweeper.core.evidence import FoldStop
    from sweeper.tracking.tracker import Tracker

# trial key → its run: the trials of one split that some sweep of the experiment finished.
Finished = Mapping[str, FinishedRun]


@dataclass(frozen=True)
class SweepRef:
    """The sweep a trial belongs to: its id and its open MLflow run; `rerun`: it trains every
    trial again (its claims count its own runs only); `ranked_by`: its `eval.metric`, by which
    this process keeps the fitted model of its best trial (trial.kept; None: keeps none);
    `trusted_modules`: its `trust.modules`, whose classes model configs may name (core.trust);
    `cv`: its `eval.cv`, the folds every trial is scored on; `early_stop`: its eval.early_stop,
    whether a trial some sweep stopped early counts as done."""

    sweep_id: str
    parent_run_id: str
    rerun: bool = False
    ranked_by: str | None = None
    trusted_modules: tuple[str, ...] = ()
    cv: int = 0
    early_stop: bool = False

    @classmethod
    def of(cls, plan: Plan) -> SweepRef:
        """The sweep a plan describes, once its run is open."""
        assert plan.parent_run_id, "the sweep's run is not open yet"
        settings = plan.settings
        return cls(
            plan.sweep_id,
            plan.parent_run_id,
            settings.sweep.rerun,
            settings.eval.metric,
            tuple(settings.trust.modules),
            settings.eval.cv,
            settings.eval.early_stop,
        )


def finished_trials(
    tracker: Tracker,
    split: StoredSplit,
    rerun: bool,
    trials: Iterable[Trial | TrialValues],
    cv: int,
) -> Finished:
    """What the reuse lookup consults for these trials of one split (each as trained in full,
    or stopped early): nothing when the sweep trains every trial. A trial not among `trials`
    (one an optimiser asks for later) is not in it: its claim finds an earlier run instead."""
    if rerun:
        return {}
    keys = [trial_key(split.key, trial.model, cv, trial.rows) for trial in trials]
    return tracker.finished_trials(split.key, [*keys, *map(stopped_key, keys)])


def reused(
    trial: Trial, split: StoredSplit, finished: Finished, cv: int, early_stop: bool = False
) -> Outcome | None:
    """The trial as an earlier sweep finished it on this very split and folds, if one did; with
    `early_stop` (the sweep's eval.early_stop), also as one stopped it early."""
    if not finished:  # a sweep whose trials no sweep finished before: no key to compute
        return None
    key = trial_key(split.key, trial.model, cv, trial.rows)
    found = finished.get(key) or (finished.get(stopped_key(key)) if early_stop else None)
    if found is None:
        return None
    return Outcome.finished(
        trial, found.metrics, found.run_id, found.folds, reused=True, stopped=found.stopped
    )


def to_train(
    trials: Iterable[AnyTrial], split: StoredSplit, finished: Finished, cv: int
) -> list[AnyTrial]:
    """The trials no sweep has finished on this split and folds yet: what an executor starts."""
    if not finished:
        return list(trials)
    return [t for t in trials if trial_key(split.key, t.model, cv, t.rows) not in finished]


def run_trial(
    tracker: Tracker,
    sweep: SweepRef,
    trial: Trial,
    split: StoredSplit,
    finished: Finished | None = None,
    marker: Path | None = None,
    wait: bool = True,
    early_stop: FoldStop | None = None,
) -> Outcome:
    """Reuse, or claim, fit, score and log the trial as a child run of the sweep's run. A trial
    another process holds is waited for (see tracking.claims), or with `wait` False comes back
    unsettled (`Outcome.elsewhere`). A failing fit is logged as a FAILED run, not raised.
    `marker`: a file that holds the trial's index while it fits (a local worker's, so the sweep
    knows which trial a dead process was running). `early_stop`: its CV ends once it is worse
    than the best finished so far (eval.early_stop)."""
    from sweeper.trial.fitting import fit_and_score, load_split

    earlier = (
        reused(trial, split, finished, sweep.cv, sweep.early_stop) if finished is not None else None
    )
    if earlier is not None:
        return earlier
    record = TrialRecord.of(trial, split if split.key else None, sweep.cv)
    held = _claim(tracker, sweep, trial, record, wait)
    if isinstance(held, Outcome):
        return held
    if marker is not None:
        marker.write_text(str(trial.index))
    try:
        with claims.renewing(tracker, held) if held else contextlib.nullcontext():
            loaded = load_split(split.url)
            if len(loaded.folds) != sweep.cv:  # another version's split, or another eval.cv
                raise ValueError(
                    f"the split {split.url} holds {len(loaded.folds)} CV folds, the sweep's "
                    f"eval.cv is {sweep.cv}: preprocess it with eval.cv={sweep.cv}"
                )
            score, fitted = fit_and_score(
                trial.model,
                loaded,
                sweep.trusted_modules,
                rows=trial.rows,
                final=not trial.partial,
                early_stop=early_stop,
            )
    except Fault:  # the store or the disk, not the trial: unrun, for the next command
        if held is not None:
            with contextlib.suppress(Exception), without_retries():
                tracker.drop_run(held.run_id)
        raise
    except Exception as err:
        return record_failure(tracker, sweep, trial, split, err, held)
    finally:
        if marker is not None:
            marker.unlink(missing_ok=True)
    run_id = _record(tracker, sweep, record, held, score=score)
    folds = score.folds
    if sweep.ranked_by is not None:
        ranking = Ranking.of(sweep.ranked_by, sweep.cv, ProblemType(split.task))
        if fitted is not None:  # a halving rung below the last fits no model on all rows
            kept.offer(sweep.sweep_id, run_id, ranking.loss(score.metrics), fitted)
        # Trials are compared by their ranking metric's folds: the outcome (one per trial, held
        # by the sweeping process) keeps those; every metric's are in MLflow.
        folds = {m: v for m, v in folds.items() if m == ranking.metric}
    return Outcome.finished(trial, score.metrics, run_id, folds, stopped=score.stopped)


def _claim(
    tracker: Tracker, sweep: SweepRef, trial: Trial, record: TrialRecord, wait: bool
) -> claims.Held | Outcome | None:
    """The trial claimed (None: it has no key to claim by), or its outcome when another run
    finished it meanwhile (this sweep's own, after a retry, or an earlier sweep's)."""
    if record.key is None:
        return None
    # Not `uninterrupted`: it may wait; a claim cut short is RUNNING until its sweep ends it.
    got = claims.claim(tracker, sweep.parent_run_id, sweep.sweep_id, record, sweep.rerun, wait)
    if isinstance(got, claims.Held):
        return got
    run = got.run
    if isinstance(got, claims.Busy):
        return Outcome.elsewhere(trial, run.info.run_id)
    metrics, folds = dict(run.data.metrics), fold_scores(run)
    if run.data.tags.get(PARENT_TAG) == sweep.parent_run_id:
        return Outcome.finished(trial, metrics, run.info.run_id, folds)
    return Outcome.finished(trial, metrics, run.info.run_id, folds, reused=True)


def record_failure(
    tracker: Tracker,
    sweep: SweepRef,
    trial: Trial,
    split: StoredSplit,
    error: BaseException,
    held: claims.Held | None = None,
) -> Outcome:
    """A trial that could not be scored, as a FAILED child run: its claim's (one whose process
    died holding it, when the trial killed its worker), else a new one."""
    record = TrialRecord.of(trial, split if split.key else None, sweep.cv)
    if held is None and record.key is not None:
        left = tracker.trial_claims(record.key, sweep.parent_run_id)
        running = [r for r in left if r.info.status == Status.RUNNING]
        if running:
            held = claims.Held(running[0].info.run_id, running[0].info.start_time)
    run_id = _record(tracker, sweep, record, held, error=error)
    return Outcome.failed(trial, error, run_id)


def _record(
    tracker: Tracker,
    sweep: SweepRef,
    record: TrialRecord,
    held: claims.Held | None,
    score: TrialScore | None = None,
    error: BaseException | None = None,
) -> str:
    """The trial's end on its claim's run (a new run when it had no claim), written whole."""
    with uninterrupted():
        if held is None:
            return tracker.log_trial(sweep.parent_run_id, sweep.sweep_id, record, score, error)
        tracker.close_trial(held.run_id, record, score, error)
        return held.run_id


def recorded_outcomes(
    tracker: Tracker, plan: Plan, splits: Mapping[str, StoredSplit]
) -> tuple[list[Outcome], int]:
    """Each trial of a plan as its sweep's runs recorded it, and how many trials were logged
    FINISHED more than once (counted once). A trial without a run of this sweep was reused from
    an earlier one (the same lookup as `run_trial`'s) or never ran."""
    assert plan.parent_run_id is not None, "the sweep's run was opened"
    by_index: dict[int, Run] = {}
    finished_runs: Counter[int] = Counter()
    # A finished run wins over a failed or killed one of the same trial.
    runs = tracker.trial_runs(plan.parent_run_id)
    for run in sorted(runs, key=lambda r: r.info.status == Status.FINISHED):
        index = int(run.data.tags.get("trial_index", -1))
        by_index[index] = run
        finished_runs[index] += run.info.status == Status.FINISHED
    finished: dict[str, Finished] = {}
    outcomes = []
    for trial in plan.trials:
        found = by_index.get(trial.index)
        split = splits.get(trial.group)
        if found is not None and found.info.status == Status.FINISHED:
            metrics, folds = dict(found.data.metrics), fold_scores(found)
            stopped = STOPPED_AFTER_TAG in found.data.tags
            outcomes.append(
                Outcome.finished(trial, metrics, found.info.run_id, folds, stopped=stopped)
            )
        elif found is not None:
            error = found.data.tags.get("error.message", found.info.status)
            outcomes.append(
                Outcome(trial, Status.FAILED, dict(found.data.metrics), error, found.info.run_id)
            )
        elif split is None:
            outcomes.append(Outcome.not_run(trial, "its preprocess step did not finish"))
        else:
            if split.key not in finished:
                unsettled = [t for t in plan.trials_of(trial.group) if t.index not in by_index]
                cv = plan.settings.eval.cv
                finished[split.key] = finished_trials(tracker, split, False, unsettled, cv)
            earlier = reused(trial, split, finished[split.key], plan.settings.eval.cv)
            outcomes.append(earlier or Outcome.not_run(trial, "no run was logged"))
    return outcomes, sum(1 for n in finished_runs.values() if n > 1)


def run_trials(
    tracker: Tracker,
    sweep: SweepRef,
    trials: Sequence[Trial],
    split_of: Mapping[str, StoredSplit],
    rerun: bool,
    on_outcome: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Several trials in this process (an Argo pod's chunk): the lookup once per split; a trial
    another process holds is come back to after the rest (then waited for); `on_outcome` hears
    of each as soon as it is settled."""
    finished: dict[str, Finished] = {}
    outcomes: list[Outcome] = []
    held_elsewhere: list[Trial] = []
    for wait, queue in ((False, trials), (True, held_elsewhere)):
        for trial in queue:
            split = split_of[trial.group]
            if split.key not in finished:
                of_split = [t for t in trials if split_of[t.group].key == split.key]
                finished[split.key] = finished_trials(tracker, split, rerun, of_split, sweep.cv)
            outcome = run_trial(tracker, sweep, trial, split, finished[split.key], wait=wait)
            if outcome.status == Status.RUNNING:
                held_elsewhere.append(trial)
                continue
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
    return outcomes
