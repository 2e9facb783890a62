"""The first pod of an Argo sweep: definition → plan → the sweep's MLflow run → the fan-out.

    python -m sweeper.executors.argo.plan_step --sweep-id sweeper-x7k2q --outputs /tmp/outputs \
        --multirun -- model=rf,lasso data=csv data.path=s3://b/sales.csv data.target=sales

writes the plan to `<storage.root>/sweeps/<sweep-id>/plan.json` and the trials left to train as
chunks beside it (`chunks/<n>.json`), opens the sweep's MLflow run, and writes `groups.json` into
--outputs: one item per preprocess group, with how many trials it trains and its runs of chunk
numbers (see sweeper.executors.argo.chunks): a few hundred bytes whatever the trial count.
An optimiser's batch names its trials instead (no expansion), each as a list of overrides:

    python -m sweeper.executors.argo.plan_step --sweep-id sweeper-x7k2q --outputs /tmp/outputs \
        --jobs '[["model=lasso", "model.alpha=0.31"], ["model=lasso", "model.alpha=2.5"]]' \
        --name-key model.alpha --sweep-param study=lasso
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from sweeper.core import overrides, storage
from sweeper.core.provenance import provenance
from sweeper.core.records import Plan, Trial
from sweeper.core.settings import SearchKind
from sweeper.errors import SweeperError
from sweeper.executors.argo import chunks
from sweeper.executors.argo.rounds import group_halving
from sweeper.planning.definition import Definition, plan_from_definition
from sweeper.planning.task import misfits
from sweeper.tracking.tracker import Tracker
from sweeper.trial.lifecycle import finished_trials, to_train
from sweeper.trial.splits import announce_split, run_params


def plan_sweep(definition: Definition, sweep_id: str, trials_per_pod: int | str) -> Planned:
    """The plan, recorded under storage.root with the sweep's run opened once its input is
    sound: model values accepted and every group's split stored (the preprocess pods then find
    it stored), so bad input is refused in one line and leaves no run, as locally. Trials some
    sweep already finished on the same split (one lookup per split) get no pod; the others are
    cut into chunks, each written as a plan of its own."""
    from steps.preprocess import preprocess
    from sweeper.trial.fitting import model_errors

    plan = plan_from_definition(definition, sweep_id)
    settings = plan.settings
    errors = model_errors(plan.trials, settings.trust.modules)
    if errors:
        raise SweeperError(errors[0])
    storage.check_root(settings.storage.root)
    for group in plan.groups:  # composed from config files the submitting side did not read
        path = group.data.get("path")
        if isinstance(path, str) and storage.is_local(path):
            raise SweeperError(
                f"data.path={path} is a local file, which no pod can read; "
                "give a URL, e.g. data.path=s3://bucket/data.csv"
            )
    splits = {}
    for group in plan.groups:
        split = preprocess(
            group.data, group.preprocess, group.seed, settings.storage.root, settings.eval.cv
        )
        trials = plan.trials_of(group.id)
        refused = announce_split(group.id, split, settings.eval.cv) or misfits(trials, split)
        if refused:
            raise SweeperError(refused)
        splits[group.id] = split
    tracker = Tracker(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    left: list[Trial] = []
    for group in plan.groups:
        if settings.search.kind == SearchKind.halving:  # its rounds decide what to train
            print(f"group {group.id}: {group_halving(plan, group.id, splits[group.id]).describe()}")
            continue
        split = splits[group.id]
        trials = plan.trials_of(group.id)
        finished = finished_trials(tracker, split, settings.sweep.rerun, trials, settings.eval.cv)
        left += to_train(trials, split, finished, settings.eval.cv)
    rows = {group: split.report.get("rows_train", 0) for group, split in splits.items()}
    params = run_params(plan, splits)  # what preprocessing did, the task
    inputs = list(splits.values())  # the data, as the run's dataset inputs
    tags = provenance(definition.portable().encoded())  # where it came from
    plan = plan.with_parent(tracker.start_sweep(plan.sweep_id, params, inputs=inputs, tags=tags))
    pods = chunks.cut(plan, left, trials_per_pod, rows)
    chunks.write(plan, pods)
    storage.write_record(settings.storage.root, plan.sweep_id, storage.PLAN, plan.to_json())
    fan_out = chunks.fan_out(plan, pods)
    if settings.search.kind == SearchKind.halving:  # nothing trained yet, nothing known finished
        fan_out = [{**item, "finished": 0} for item in fan_out]
    return Planned(plan, fan_out, len(pods))


def with_data(definition: Definition, bucket: str | None, key: str) -> Definition:
    """The definition reading the object `key` of `bucket` (s3://name) as its data, as a
    triggered run is given it: URL-encoded, as bucket notifications give keys. Quoted for Hydra,
    so that a comma or a space in a key is part of the path, not a sweep over paths."""
    path = unquote_plus(key)
    if not bucket or definition.jobs is not None:
        raise SweeperError("--data-key needs --data-bucket, and a definition of overrides")
    if set(path) & set("'\\$"):
        raise SweeperError(f"data key {path!r} has a quote, backslash or $: not a data.path here")
    url = f"{bucket.rstrip('/')}/{path}"
    kept = [line for line in definition.overrides if overrides.key(line) != "data.path"]
    return dataclasses.replace(definition, overrides=(*kept, f"data.path='{url}'"))


@dataclass(frozen=True)
class Planned:
    plan: Plan
    fan_out: list[dict[str, Any]]  # the plan step's `groups` output (chunks.fan_out)
    pods: int  # train pods it asks for


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.executors.argo.plan_step", description=__doc__
    )
    parser.add_argument("--sweep-id", required=True)
    parser.add_argument("--outputs", required=True, help="folder for Argo output parameters")
    parser.add_argument("--data-bucket", help="argo.trigger's bucket (s3://bucket)")
    parser.add_argument(
        "--data-key", default="", help="the object that landed in it: data.path (URL-encoded)"
    )
    chunks.add_trials_per_pod(parser)
    Definition.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        definition = Definition.from_args(args)
    except ValueError as err:
        parser.error(str(err))
    try:
        if args.data_key:
            definition = with_data(definition, args.data_bucket, args.data_key)
        planned = plan_sweep(definition, args.sweep_id, args.trials_per_pod)
    except SweeperError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    plan = planned.plan
    outputs = Path(args.outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "groups.json").write_text(json.dumps(planned.fan_out, separators=(",", ":")))
    (outputs / "parent_run_id").write_text(plan.parent_run_id or "")
    to_train = sum(g["to_train"] for g in planned.fan_out)
    if plan.settings.search.kind == SearchKind.halving:
        print(
            f"sweep {plan.sweep_id}: {len(plan.trials)} configurations in "
            f"{len(plan.groups)} group(s), halved in rounds (each decides what it trains)"
        )
        return 0
    print(
        f"sweep {plan.sweep_id}: {len(plan.trials)} trials in {len(plan.groups)} group(s); "
        f"{to_train} to train in {planned.pods} pod(s), "
        f"{len(plan.trials) - to_train} finished before"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
