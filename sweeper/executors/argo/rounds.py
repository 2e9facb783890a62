"""search=halving on Argo: rungs as rounds of one workflow, decided from what MLflow recorded.

    plan ──► group ──► preprocess ──► round 0 ──► round 1 ──► … (until a round has nothing to train)
                                       └ promote ──► train pods (chunked as a grid's) ──► next round

Each round's `promote` pod replays the group's halving (sweeper.search.halving) on the runs the
sweep has logged so far, and the trials of other sweeps finished on the same split: the halving's
decisions do not depend on the order its trials finished in, so the replay decides exactly what
the local pool decides as they end. What it still waits for is the round's to train, written as
chunks under storage.root; nothing about a configuration passes through Argo.

A trial of a rung below the round that has no run (its pod was lost after its retries) counts as
failed, so the rounds end: after round r every trial of rung r has an outcome. The summary replays
once more, counting every trial still without one as not run, for each configuration's final
outcome.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

from mlflow.entities import Run

from sweeper.core.metrics import ProblemType
from sweeper.core.outcomes import Outcome
from sweeper.core.records import Plan, Status, StoredSplit, Trial, trial_key
from sweeper.executors.argo import chunks
from sweeper.search.halving import Halving, Recorded, halving, halving_rows, replay
from sweeper.tracking.tracker import Tracker, fold_scores
from sweeper.trial.lifecycle import finished_trials, reused

LOST = "its train pod ended without logging it"


def group_halving(plan: Plan, group: str, split: StoredSplit) -> Halving:
    """The group's halving, as the local pool builds it from the same split."""
    settings = plan.settings
    rows, floor = halving_rows(split, settings.eval.cv)
    ranking = settings.ranking(ProblemType(split.task))
    return halving(plan.trials_of(group), settings.search, ranking, rows, floor)


def recorded(
    tracker: Tracker, plan: Plan, group: str, split: StoredSplit, lost_below: float
) -> tuple[Recorded, int]:
    """A rung trial's outcome as recorded: this sweep's run of it (finished, else failed), or
    another sweep's finished on this split (reused, unless sweep.rerun); a trial of a rung below
    `lost_below` without either, as not run. And how many of this sweep's trials were logged
    FINISHED more than once (claims make it rare; counted once)."""
    assert plan.parent_run_id is not None, "the plan step opens the sweep's run"
    cv = plan.settings.eval.cv
    own: dict[str, Run] = {}
    logged: Counter[str] = Counter()
    # A finished run wins over a failed one of the same trial; a RUNNING one is a dead pod's.
    for run in sorted(
        tracker.trial_runs(plan.parent_run_id), key=lambda r: r.info.status == Status.FINISHED
    ):
        key = run.data.tags.get("trial_key")
        if key and run.data.tags.get("split_key") == split.key:
            if run.info.status in (Status.FINISHED, Status.FAILED):
                own[key] = run
            logged[key] += run.info.status == Status.FINISHED
    every = group_halving(plan, group, split).every_trial()
    earlier = finished_trials(tracker, split, plan.settings.sweep.rerun, every, cv)

    def outcome(trial: Trial) -> Outcome | None:
        run = own.get(trial_key(split.key, trial.model, cv, trial.rows))
        if run is not None and run.info.status == Status.FINISHED:
            metrics = dict(run.data.metrics)
            return Outcome.finished(trial, metrics, run.info.run_id, fold_scores(run))
        found = reused(trial, split, earlier, cv)
        if found is not None:
            return found
        if run is not None:
            error = run.data.tags.get("error.message", str(run.info.status))
            return Outcome(trial, Status.FAILED, dict(run.data.metrics), error, run.info.run_id)
        if (trial.rung or 0) < lost_below:
            return Outcome.not_run(trial, LOST)
        return None

    return outcome, sum(1 for n in logged.values() if n > 1)


def promote(
    tracker: Tracker, plan: Plan, group: str, split: StoredSplit, number: int, per_pod: int | str
) -> dict[str, Any]:
    """Round `number` of a group's halving: its trials to train, written as chunks named
    `<group>-<round>-<n>`, and the promote step's output (chunks.fan_out's item for the group,
    with the chunks' `prefix` and the `next` round)."""
    lookup, _ = recorded(tracker, plan, group, split, lost_below=number)
    untold, _ = replay(group_halving(plan, group, split), lookup)
    prefix = f"{group}-{number}-"
    cut = chunks.cut(plan, untold, per_pod, {group: split.report.get("rows_train", 0)})
    chunks.write(plan, cut, prefix)
    (item,) = [i for i in chunks.fan_out(plan, cut) if i["group"] == group]
    return {**item, "finished": 0, "prefix": prefix, "next": number + 1}


def halving_outcomes(
    tracker: Tracker, plan: Plan, splits: Mapping[str, StoredSplit]
) -> tuple[list[Outcome], int]:
    """Each configuration's final outcome (stopped at a rung, finished at the last, or failed),
    in plan order, and how many trials were logged FINISHED more than once."""
    outcomes: list[Outcome] = []
    twice = 0
    for group in plan.groups:
        split = splits.get(group.id)
        if split is None:
            failed = "its preprocess step did not finish"
            outcomes += [Outcome.not_run(t, failed) for t in plan.trials_of(group.id)]
            continue
        lookup, doubled = recorded(tracker, plan, group.id, split, lost_below=math.inf)
        _, decided = replay(group_halving(plan, group.id, split), lookup)
        outcomes += decided
        twice += doubled
    return sorted(outcomes, key=lambda o: o.trial.index), twice
