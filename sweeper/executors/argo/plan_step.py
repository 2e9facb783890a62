"""The first pod of an Argo sweep: definition → plan → the sweep's MLflow run → the fan-out.

    python -m sweeper.executors.argo.plan_step --sweep-id sweeper-x7k2q --outputs /tmp/outputs \
        --multirun -- model=rf,lasso data=csv data.path=s3://b/sales.csv data.target=sales

writes the plan to `<storage.root>/sweeps/<sweep-id>/plan.json`, opens the sweep's MLflow run, and
writes `groups.json` into --outputs: one item per preprocess group, each with its trial chunks.
An optimiser's batch names its trials instead (no expansion), each as a list of overrides:

    python -m sweeper.executors.argo.plan_step --sweep-id sweeper-x7k2q --outputs /tmp/outputs \
        --jobs '[["model=lasso", "model.alpha=0.31"], ["model=lasso", "model.alpha=2.5"]]' \
        --name-key model.alpha --sweep-param study=lasso
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeper.core import storage
from sweeper.core.records import Plan, Trial
from sweeper.core.splits import announce_split, run_params
from sweeper.core.tracking import Tracker
from sweeper.errors import SweeperError
from sweeper.planning.definition import Definition, plan_from_definition
from sweeper.planning.task import misfits


def plan_sweep(definition: Definition, sweep_id: str) -> Plan:
    """The plan, recorded under storage.root with the sweep's run opened once its input is
    sound: model values accepted and every group's split stored (the preprocess pods then find
    it stored), so bad input is refused in one line and leaves no run, as locally."""
    from steps.preprocess import preprocess
    from sweeper.core.fitting import model_errors

    plan = plan_from_definition(definition, sweep_id)
    settings = plan.settings
    errors = model_errors(plan.trials)
    if errors:
        raise SweeperError(errors[0])
    storage.check_root(settings.storage.root)
    splits = {}
    for group in plan.groups:
        split = preprocess(group.data, group.preprocess, group.seed, settings.storage.root)
        trials = plan.trials_of(group.id)
        refused = announce_split(group.id, split, settings.eval.cv) or misfits(trials, split)
        if refused:
            raise SweeperError(refused)
        splits[group.id] = split
    tracker = Tracker(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    params = run_params(plan, splits)  # what preprocessing did, the task
    plan = plan.with_parent(tracker.start_sweep(plan.sweep_id, params))
    storage.write_record(settings.storage.root, plan.sweep_id, storage.PLAN, plan.to_json())
    return plan


def fan_out(plan: Plan, trials_per_pod: int) -> list[dict[str, Any]]:
    """Argo's `withParam` items: per group, chunks of trials that share a model's pod resources."""
    items = []
    for group in plan.groups:
        chunks: list[dict[str, str]] = []
        by_model: dict[str, list[int]] = {}
        for trial in plan.trials_of(group.id):
            by_model.setdefault(trial.model_name, []).append(trial.index)
        for model, indices in by_model.items():
            resources = _pod_resources(next(t for t in plan.trials if t.model_name == model))
            for start in range(0, len(indices), trials_per_pod):
                chunk = indices[start : start + trials_per_pod]
                chunks.append({"trials": ",".join(map(str, chunk)), **resources})
        items.append({"group": group.id, "chunks": chunks})
    return items


def _pod_resources(trial: Trial) -> dict[str, str]:
    requests = trial.resources.get("requests") or {}
    limits = trial.resources.get("limits") or {}
    return {
        "cpu": str(requests.get("cpu", "1")),
        "memory": str(requests.get("memory", "1Gi")),
        "memory_limit": str(limits.get("memory", requests.get("memory", "1Gi"))),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sweeper.executors.argo.plan_step",
                                     description=__doc__)  # fmt: skip
    parser.add_argument("--sweep-id", required=True)
    parser.add_argument("--outputs", required=True, help="folder for Argo output parameters")
    parser.add_argument("--trials-per-pod", type=int, default=1)
    Definition.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        definition = Definition.from_args(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        plan = plan_sweep(definition, args.sweep_id)
    except SweeperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outputs = Path(args.outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "groups.json").write_text(json.dumps(fan_out(plan, max(1, args.trials_per_pod))))
    (outputs / "parent_run_id").write_text(plan.parent_run_id or "")
    print(f"sweep {plan.sweep_id}: {len(plan.trials)} trials in {len(plan.groups)} group(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
