"""A round of an Argo sweep's successive halving (search=halving): what its train pods train.

    python -m sweeper.executors.argo.promote_step --plan s3://b/sweeps/sweeps/<id>/plan.json \
        --group 3f2a9c1d0b7e --round 1 --outputs /tmp/outputs

replays the group's halving on the runs logged so far (see sweeper.executors.argo.rounds), writes
the trials it waits for as chunks (`chunks/<group>-<round>-<n>.json`), and writes into --outputs
the round's fan-out (`pods`, as the plan step's), `to_train`, the chunks' `prefix` and the `next`
round's number. A round with nothing to train is the group's last.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sweeper.core import storage
from sweeper.core.faults import Fault
from sweeper.core.records import Plan
from sweeper.executors.argo import chunks
from sweeper.executors.argo.rounds import promote
from sweeper.tracking.tracker import Tracker
from sweeper.trial.splits import recorded_split


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.executors.argo.promote_step", description=__doc__
    )
    parser.add_argument("--plan", required=True, help="URL of the sweep's plan.json")
    parser.add_argument("--group", required=True, help="the preprocess group's id")
    parser.add_argument("--round", type=int, required=True, help="0 first")
    parser.add_argument("--outputs", required=True, help="folder for Argo output parameters")
    chunks.add_trials_per_pod(parser)
    args = parser.parse_args(argv)
    try:
        plan = Plan.from_json(storage.read_bytes(args.plan))
        settings = plan.settings
        tracker = Tracker(settings.mlflow.tracking_uri, settings.mlflow.experiment)
        split = recorded_split(plan, args.group)
        item = promote(tracker, plan, args.group, split, args.round, args.trials_per_pod)
    except Fault as err:  # the store: a retry of the pod decides the same again
        print(f"error: {err}", file=sys.stderr)
        return 1
    outputs = Path(args.outputs)
    outputs.mkdir(parents=True, exist_ok=True)
    for name in ("pods", "to_train", "prefix", "next"):
        value = item[name]
        (outputs / name).write_text(
            value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        )
    trials = item["to_train"]
    said = f"{trials} trial(s) to train in {sum(r['count'] for r in item['pods'])} pod(s)"
    print(f"group {args.group}, round {args.round}: {said if trials else 'nothing left to train'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
