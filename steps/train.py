"""The trial step: trials of a stored plan, each through the one trial lifecycle.

    python -m steps.train --plan s3://b/sweeps/sweeps/<sweep_id>/chunks/7.json

fits, scores and logs each trial as a child run of the sweep's run (a trial some sweep already
finished on the same split is reused, not trained) and prints one JSON line per trial: every
trial of the plan (an Argo chunk is a plan of its own), or those `--trials 3,4,5` names, and
leaves the fitted model of its best trial in the sweep's storage (sweeper.trial.kept). Without
a plan, one model on one stored split:

    python -m steps.train --split s3://b/sweeps/preprocess/<key> \
        --model '{"_target_": "sklearn.linear_model.Lasso", "alpha": 0.1}' \
        --tracking-uri http://mlflow:5000 --experiment sweeper --parent-run-id <id> \
        --sweep-id <id> --name "lasso alpha=0.1" --params '{"model": "lasso", ...}' [--cv 5]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from sweeper.core import storage, trust
from sweeper.core.faults import Fault
from sweeper.core.outcomes import Outcome
from sweeper.core.records import Plan, StoredSplit, Trial
from sweeper.core.settings import TrustSettings
from sweeper.safe_text import shown
from sweeper.tracking.tracker import Tracker
from sweeper.trial import kept
from sweeper.trial.lifecycle import SweepRef, run_trial, run_trials
from sweeper.trial.splits import recorded_split


def train_planned(
    plan_url: str, indices: Sequence[int] | None = None, trusting: TrustSettings | None = None
) -> list[Outcome]:
    """Trials of a stored plan (those with these indices, or all), each logged as a child run
    (or reused). `trusting`: what the pod was told to trust (its command line), not what the
    plan read from storage says (core.trust.pod_arguments)."""
    plan = Plan.from_json(storage.read_bytes(plan_url)).with_trust(trusting or TrustSettings())
    assert plan.parent_run_id is not None, "the plan step opens the sweep's run"
    tracker = Tracker(plan.settings.mlflow.tracking_uri, plan.settings.mlflow.experiment)
    wanted = None if indices is None else set(indices)
    trials = [t for t in plan.trials if wanted is None or t.index in wanted]
    splits = {group: recorded_split(plan, group) for group in {t.group for t in trials}}
    settings = plan.settings
    outcomes = run_trials(tracker, SweepRef.of(plan), trials, splits, settings.sweep.rerun, _report)
    kept.write(settings.storage.root)  # the chunk's best, for the summary to log (trial.kept)
    return outcomes


def _report(outcome: Outcome) -> None:
    if outcome.reused:
        print(json.dumps({"trial": outcome.trial.name, "reused": True}))
    elif outcome.ok:
        print(json.dumps({"trial": outcome.trial.name, **outcome.metrics}))
    else:
        print(shown(f"FAILED {outcome.trial.name}: {outcome.error}"), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.train", description=__doc__)
    parser.add_argument("--plan", help="URL of a stored plan (or chunk): train its trials")
    parser.add_argument("--trials", help="comma-separated trial indices (default: all)")
    parser.add_argument("--split", help="URL of a stored split")
    parser.add_argument("--model", help="model config as JSON (with _target_)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment")
    parser.add_argument("--parent-run-id")
    parser.add_argument("--sweep-id")
    parser.add_argument("--name", help="run name, e.g. 'lasso alpha=0.1'")
    parser.add_argument("--params", default="{}", help="MLflow params as a JSON object")
    parser.add_argument(
        "--cv", type=int, default=0, help="CV folds the split was preprocessed with (0: none)"
    )
    trust.add_arguments(parser)
    args = parser.parse_args(argv)

    if args.plan:
        indices = [int(i) for i in args.trials.split(",")] if args.trials else None
        try:
            outcomes = train_planned(args.plan, indices, trust.from_arguments(args))
        except Fault as err:  # the store, not a trial: a retry of the pod resumes (claims)
            print(f"error: {err}", file=sys.stderr)
            return 1
        return 0 if all(o.ok for o in outcomes) else 1
    needed = ("split", "model", "tracking_uri", "experiment", "parent_run_id", "sweep_id", "name")
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        parser.error(f"without --plan these are required: {' '.join(missing)}")
    params = json.loads(args.params)
    trial = Trial(
        index=0,
        name=args.name,
        model_name=str(params.get("model", "")),
        model=json.loads(args.model),
        group="",
        overrides=(),
        shared_params=params,  # beside its model's own values
    )
    tracker = Tracker(args.tracking_uri, args.experiment)
    # A split given by URL alone: the run records no trial key, so no later sweep reuses it.
    split = StoredSplit(url=args.split, key="", reused=True)
    modules = tuple(args.trust_module)
    sweep = SweepRef(args.sweep_id, args.parent_run_id, trusted_modules=modules, cv=args.cv)
    outcome = run_trial(tracker, sweep, trial, split)
    _report(outcome)
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
