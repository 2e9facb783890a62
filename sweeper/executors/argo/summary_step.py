"""The last pod of an Argo sweep (its exit handler): close the sweep's MLflow run with its summary.

    python -m sweeper.executors.argo.summary_step --plan s3://b/sweeps/sweeps/<sweep_id>/plan.json

Runs whether or not trials failed: reads the trials' child runs back from MLflow, concludes the
sweep's run (results table and plots, the best trial's model, summary metrics; see
sweeper.conclusion), writes results.json and prints the ranked table with the MLflow compare
link. Exits non-zero when any trial did not finish.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sweeper.conclusion.conclude import conclude_sweep
from sweeper.core import storage, trust
from sweeper.core.faults import Fault
from sweeper.core.outcomes import SweepResult
from sweeper.core.records import Plan, Status
from sweeper.core.settings import SearchKind, TrustSettings
from sweeper.display.table import print_results
from sweeper.executors.argo.rounds import halving_outcomes
from sweeper.tracking.tracker import Tracker
from sweeper.trial.lifecycle import recorded_outcomes
from sweeper.trial.splits import recorded_splits


def summarise(plan_url: str, trusting: TrustSettings | None = None) -> SweepResult:
    """`trusting`: what the pod was told to trust (its command line), not what the plan read
    from storage says (core.trust.pod_arguments)."""
    plan = Plan.from_json(storage.read_bytes(plan_url)).with_trust(trusting or TrustSettings())
    assert plan.parent_run_id is not None, "the plan step opens the sweep's run"
    settings = plan.settings
    tracker = Tracker(settings.mlflow.tracking_uri, settings.mlflow.experiment)
    result = SweepResult(plan, plan.parent_run_id)
    result.splits = recorded_splits(plan)
    if settings.search.kind == SearchKind.halving:  # a configuration's outcome: its last rung's
        result.outcomes, twice = halving_outcomes(tracker, plan, result.splits)
    else:
        result.outcomes, twice = recorded_outcomes(tracker, plan, result.splits)
    status = Status.FINISHED if result.n_failed == 0 else Status.FAILED
    end = conclude_sweep(tracker, result, status, settings.register_best)
    result.experiment_id, result.notes = end.experiment_id, list(end.notes)
    if twice:  # claims make this rare (see tracking.claims): said, not hidden
        result.notes.append(f"{twice} trial(s) were logged FINISHED more than once; counted once")
    storage.write_record(settings.storage.root, plan.sweep_id, storage.RESULTS, result.to_json())
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.executors.argo.summary_step", description=__doc__
    )
    parser.add_argument("--plan", required=True, help="URL of the sweep's plan.json")
    trust.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = summarise(args.plan, trust.from_arguments(args))
    except FileNotFoundError:  # the plan step refused the input (its log says why)
        print(f"error: no plan at {args.plan}: the plan step did not finish", file=sys.stderr)
        return 1
    except Fault as err:  # the store or the disk: the next try (a retry, a resubmit) resumes
        print(f"error: {err}", file=sys.stderr)
        return 1
    print_results(result)
    return 1 if result.n_failed else 0


if __name__ == "__main__":
    sys.exit(main())
