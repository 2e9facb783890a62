"""The last step of a sweep run elsewhere: close the sweep's MLflow run with its summary.

    python -m steps.summary --plan s3://b/sweeps/sweeps/<sweep_id>/plan.json

Runs whether or not trials failed (an Argo exit handler): reads the trials' child runs back from
MLflow, logs `best_mse`, `n_trials`, `n_failed`, the results table and plots on the parent run and
the best trial's model on its run (see sweeper.conclude), ends it, writes results.json and prints
the ranked table with the MLflow compare link. Exits non-zero when any trial did not finish.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from steps.records import StoredSplit
from sweeper import storage
from sweeper.outcome import Outcome, SweepResult
from sweeper.plan import Plan


def summarise(plan_url: str) -> SweepResult:
    from sweeper.conclude import conclude_sweep
    from sweeper.tracking import PARENT_TAG, Tracker

    plan = Plan.from_json(storage.read_bytes(plan_url).decode())
    assert plan.parent_run_id is not None, "the plan step opens the sweep's run"
    tracker = Tracker(plan.settings.tracking_uri, plan.settings.experiment)
    runs = tracker.client.search_runs(
        [tracker.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{plan.parent_run_id}'",
        max_results=50_000,
    )
    # A retried pod may have logged a trial twice: a finished run wins.
    by_index = {}
    for run in sorted(runs, key=lambda r: r.info.status == "FINISHED"):
        by_index[int(run.data.tags.get("trial_index", -1))] = run
    result = SweepResult(plan, plan.parent_run_id, tracker.tracking_uri)
    finished_before: dict[str, dict] = {}  # split key → trials an earlier sweep finished
    for trial in plan.trials:
        run = by_index.get(trial.index)
        if run is None:
            result.outcomes.append(_earlier(tracker, plan, trial, finished_before))
        elif run.info.status == "FINISHED":
            result.outcomes.append(Outcome.finished(trial, run.data.metrics, run.info.run_id))
        else:
            error = run.data.tags.get("error.message", run.info.status)
            result.outcomes.append(
                Outcome(trial, "FAILED", run.data.metrics, error, run.info.run_id)
            )
    result.splits = _recorded_splits(plan)
    status = "FINISHED" if result.n_failed == 0 else "FAILED"
    end = conclude_sweep(tracker, result, status, plan.settings.register_best)
    result.experiment_id, result.notes = end.experiment_id, list(end.notes)
    storage.write_record(
        plan.settings.storage_root, plan.sweep_id, "results.json", result.to_json()
    )
    return result


def _recorded_splits(plan: Plan) -> dict[str, StoredSplit]:
    """The splits the preprocess pods stored (a group whose pod failed has none)."""
    from steps.preprocess import recorded_split

    splits = {}
    for group in plan.groups:
        try:
            record = recorded_split(plan, group.id)
        except FileNotFoundError:
            continue
        splits[group.id] = StoredSplit(**record)
    return splits


def _earlier(tracker: Any, plan: Plan, trial: Any, cache: dict[str, dict]) -> Outcome:
    """A trial without a run in this sweep: reused from an earlier one, or never run."""
    from steps.preprocess import recorded_split
    from sweeper.plan import trial_key

    try:
        split_key = recorded_split(plan, trial.group)["key"]
    except FileNotFoundError:
        return Outcome.not_run(trial, "its preprocess step did not finish")
    if split_key not in cache:
        cache[split_key] = tracker.finished_trials(split_key)
    found = cache[split_key].get(trial_key(split_key, trial.model))
    if found is None:
        return Outcome.not_run(trial, "no run was logged")
    return Outcome.reused_from(trial, found[1], found[0])


def main(argv: Sequence[str] | None = None) -> int:
    from sweeper.results import print_results

    parser = argparse.ArgumentParser(prog="python -m steps.summary", description=__doc__)
    parser.add_argument("--plan", required=True, help="URL of the sweep's plan.json")
    args = parser.parse_args(argv)
    result = summarise(args.plan)
    print_results(result)
    return 1 if result.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
