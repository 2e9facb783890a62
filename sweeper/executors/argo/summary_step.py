"""The last pod of an Argo sweep (its exit handler): close the sweep's MLflow run with its summary.

    python -m sweeper.executors.argo.summary_step --plan s3://b/sweeps/sweeps/<sweep_id>/plan.json

Runs whether or not trials failed: reads the trials' child runs back from MLflow, concludes the
sweep's run (results table and plots, the best trial's model, summary metrics; see
sweeper.conclusion), writes results.json and notice.json (what an exit hook's notification says:
notify_step) and prints the ranked table with the MLflow compare link. With --outputs, writes its
output parameters there (the best score and the trial counts its metrics emit: see metrics).
Exits non-zero when any trial did not finish.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from sweeper.conclusion.conclude import conclude_sweep
from sweeper.core import storage, trust
from sweeper.core.faults import Fault
from sweeper.core.outcomes import SweepResult
from sweeper.core.records import Plan, Status
from sweeper.core.settings import SearchKind, TrustSettings
from sweeper.display.table import best_scores, print_results, ui_address
from sweeper.executors.argo.metrics import SUMMARY_OUTPUTS
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
    notice = json.dumps(_notice(result))
    storage.write_record(settings.storage.root, plan.sweep_id, storage.NOTICE, notice)
    return result


def _notice(result: SweepResult) -> dict[str, object]:
    """What a notification about this sweep says: its best, its registry decision, its run."""
    best, ranking = result.best, result.ranking
    registry = next((n for n in result.notes if n.startswith("Registry:")), "")
    address, _ = ui_address(result.tracking_uri)
    run = f"/#/experiments/{result.experiment_id}/runs/{result.parent_run_id}"
    return {
        "sweep": result.plan.sweep_id,
        "experiment": result.plan.settings.mlflow.experiment,
        "best": f"{best.trial.name} ({best_scores(best.metrics, ranking)})" if best else None,
        "finished": len(result.outcomes) - result.n_failed,
        "failed": result.n_failed,
        "registry": registry,
        "promoted": " is the champion" in registry,
        "run": f"{address}{run}" if address else None,
    }


def write_outputs(folder: Path, result: SweepResult | None) -> None:
    """The summary's output parameters (metrics.SUMMARY_OUTPUTS): the best score by the
    ranking key, the trials trained to the end (not those reused) and failed, and whether the
    sweep failed; the defaults (a failed sweep) when nothing concluded."""
    values = dict(SUMMARY_OUTPUTS)
    if result is not None:
        best, key = result.best, result.ranking.key
        score = best.metrics.get(key, math.nan) if best else math.nan
        values = {
            "best_score": repr(score) if math.isfinite(score) else "NaN",
            "metric": key,
            "finished": str(sum(o.ok and not o.reused for o in result.outcomes)),
            "failed": str(result.n_failed),
            "sweep_failed": "1" if result.n_failed else "0",
        }
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (folder / name).write_text(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sweeper.executors.argo.summary_step", description=__doc__
    )
    parser.add_argument("--plan", required=True, help="URL of the sweep's plan.json")
    parser.add_argument("--outputs", type=Path, help="folder for Argo output parameters")
    trust.add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        result = summarise(args.plan, trust.from_arguments(args))
    except FileNotFoundError:  # the plan step refused the input (its log says why)
        print(f"error: no plan at {args.plan}: the plan step did not finish", file=sys.stderr)
        return _failed(args.outputs)
    except Fault as err:  # the store or the disk: the next try (a retry, a resubmit) resumes
        print(f"error: {err}", file=sys.stderr)
        return _failed(args.outputs)
    if args.outputs is not None:
        write_outputs(args.outputs, result)
    print_results(result)
    return 1 if result.n_failed else 0


def _failed(outputs: Path | None) -> int:
    if outputs is not None:
        write_outputs(outputs, None)
    return 1


if __name__ == "__main__":
    sys.exit(main())
