"""Whether a sweep has anything to train: looked up in the sweeping process before any worker.

A sweep whose every trial some sweep already finished on the same stored split (a re-run of the
same command) is answered in this process (`pool.InProcess`): its outcomes come from MLflow, its
run gets its table and plots, and no worker starts, so nothing waits for the fork server's
imports or imports scikit-learn. The lookup costs a first run nothing it would notice: a split
not stored yet ends it before MLflow is imported, and it runs while the fork server is still
importing on the other core. Data read from a remote path (S3, HTTP) is not looked up here:
hashing it would read it twice, here and in the preprocess task.
"""

from __future__ import annotations

from sweeper.core import storage
from sweeper.core.metrics import ProblemType
from sweeper.core.records import Plan, StoredSplit
from sweeper.core.settings import SearchKind
from sweeper.errors import DataError
from sweeper.executors.local import worker
from sweeper.search.halving import Halving, on_split, replay
from sweeper.trial import lifecycle
from sweeper.trial.lifecycle import Finished


def finished_before(plan: Plan) -> dict[str, tuple[StoredSplit, Finished]] | None:
    """When every trial of `plan` finished before on its group's stored split: each group's
    split and what the lookup found on it (one lookup per split, not made again); else None."""
    settings = plan.settings
    remote = any(not storage.is_local(str(g.data.get("path") or "")) for g in plan.groups)
    if settings.sweep.rerun or not plan.trials or remote:
        return None
    from steps.preprocess import stored_split

    splits = {}
    for group in plan.groups:
        try:
            split = stored_split(
                group.data, group.preprocess, group.seed, settings.storage.root, settings.eval.cv
            )
        except DataError:  # said by the preprocess task, as for any sweep
            return None
        if split is None:
            return None
        splits[group.id] = split
    tracker = worker.tracker(settings)
    looked_up = {}
    for group in plan.groups:
        split = splits[group.id]
        trials = plan.trials_of(group.id)
        cv = settings.eval.cv
        if settings.search.kind == SearchKind.halving:
            ranking = settings.ranking(ProblemType(split.task))
            search = on_split(trials, settings.search, ranking, split, cv)
            finished = lifecycle.finished_trials(tracker, split, False, search.every_trial(), cv)
            if not _halved_before(search, split, finished, plan):
                return None
        else:
            finished = lifecycle.finished_trials(tracker, split, False, trials, cv)
            if lifecycle.to_train(trials, split, finished, cv):
                return None
        looked_up[group.id] = (split, finished)
    return looked_up


def _halved_before(search: Halving, split: StoredSplit, finished: Finished, plan: Plan) -> bool:
    """search=halving: whether every rung the halving would reach is finished already (its
    decisions replayed on the runs found)."""
    eval_ = plan.settings.eval
    untold, _ = replay(
        search, lambda trial: lifecycle.reused(trial, split, finished, eval_.cv, eval_.early_stop)
    )
    return not untold and search.done
