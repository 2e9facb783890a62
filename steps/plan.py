"""The first step of a sweep run elsewhere (an Argo workflow): definition → plan → parent run.

    python -m steps.plan --sweep-id sweeper-x7k2q --outputs /tmp/outputs --multirun \
        -- model=rf,lasso data=csv data.path=s3://b/sales.csv data.target=sales

writes the plan to `<storage.root>/sweeps/<sweep-id>/plan.json`, opens the sweep's MLflow run, and
writes `groups.json` into --outputs: one item per preprocess group, each with its trial chunks.

An optimiser's batch names its trials instead (no expansion), each as a list of overrides:

    python -m steps.plan --sweep-id sweeper-x7k2q --outputs /tmp/outputs \
        --jobs '[["model=lasso", "model.alpha=0.31"], ["model=lasso", "model.alpha=2.5"]]' \
        --name-key model.alpha --sweep-param study=lasso
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sweeper.errors import SweeperError
from sweeper.plan import Plan


def plan_sweep(
    overrides: Sequence[str],
    multirun: bool,
    sweep_id: str,
    jobs: Sequence[Sequence[str]] | None = None,
    name_keys: Sequence[str] = (),
    sweep_params: dict[str, str] | None = None,
) -> Plan:
    from sweeper import storage
    from sweeper.definition import plan_from_definition
    from sweeper.storage import write_record
    from sweeper.tracking import Tracker

    plan = plan_from_definition(overrides, multirun, sweep_id, jobs, name_keys)
    plan = dataclasses.replace(plan, sweep_params={**plan.sweep_params, **(sweep_params or {})})
    storage.check_root(plan.settings.storage_root)
    tracker = Tracker(plan.settings.tracking_uri, plan.settings.experiment)
    parent = tracker.start_sweep(plan.sweep_id, plan.sweep_params)
    plan = dataclasses.replace(plan, parent_run_id=parent)
    write_record(plan.settings.storage_root, plan.sweep_id, "plan.json", plan.to_json())
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


def _pod_resources(trial: Any) -> dict[str, str]:
    requests = trial.resources.get("requests") or {}
    limits = trial.resources.get("limits") or {}
    return {
        "cpu": str(requests.get("cpu", "1")),
        "memory": str(requests.get("memory", "1Gi")),
        "memory_limit": str(limits.get("memory", requests.get("memory", "1Gi"))),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m steps.plan", description=__doc__)
    parser.add_argument("--sweep-id", required=True)
    parser.add_argument("--outputs", required=True, help="folder for Argo output parameters")
    parser.add_argument("--multirun", action="store_true", help="expand sweeps and model grids")
    parser.add_argument("--trials-per-pod", type=int, default=1)
    parser.add_argument("--jobs", type=_jobs, help="JSON: each trial's list of overrides")
    parser.add_argument("--name-key", action="append", default=[], help="shown in trial names")
    parser.add_argument("--sweep-param", action="append", default=[], type=_key_value,
                        help="KEY=VALUE: a param of the sweep's run")  # fmt: skip
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    if args.jobs is not None and (args.overrides or args.multirun):
        parser.error("--jobs lists the trials: no overrides or --multirun with it")
    try:
        plan = plan_sweep(args.overrides, args.multirun, args.sweep_id, args.jobs,
                          args.name_key, dict(args.sweep_param))  # fmt: skip
    except SweeperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outputs = Path(args.outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "groups.json").write_text(json.dumps(fan_out(plan, max(1, args.trials_per_pod))))
    (outputs / "parent_run_id").write_text(plan.parent_run_id or "")
    print(f"sweep {plan.sweep_id}: {len(plan.trials)} trials in {len(plan.groups)} group(s)")
    return 0


def _jobs(text: str) -> list[list[str]]:
    jobs = json.loads(text)
    if not isinstance(jobs, list) or not all(
        isinstance(job, list) and all(isinstance(o, str) for o in job) for job in jobs
    ):
        raise ValueError("--jobs must be a JSON list of lists of overrides")
    return jobs


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=VALUE")
    return key, value


if __name__ == "__main__":
    sys.exit(main())
