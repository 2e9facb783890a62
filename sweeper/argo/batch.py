"""One batch of an optimiser's trials (`hydra/sweeper=optuna backend=argo`) as an Argo Workflow.

The launcher submits one workflow per batch, watches it, and reads the batch's results back from
the `results.json` its summary step writes under `storage.root`, so the optimiser gets each
trial's test MSE before it asks for the next batch. The manifest lists the batch's trials (each
as its list of overrides, one `--jobs` argument of the plan step) instead of a definition to
expand; everything else is the workflow a grid sweep gets.

Each batch is a sweep of its own (its workflow's name is its sweep id, its plan step opens the
run and its exit handler closes it): a workflow is then whole by itself, ended by Argo even when
the submitting machine goes away, and that machine needs no access to the tracking server. The
runs of one study carry the params `study` (its name), `study.invocation` and `study.batch`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from omegaconf import DictConfig

from sweeper import storage
from sweeper.argo.workflow import check_reachable, compile_sweep
from sweeper.definition import portable
from sweeper.errors import SweeperError
from sweeper.outcome import Outcome
from sweeper.plan import Plan


def check_batches(cfg: DictConfig) -> None:
    """An optimiser needs each batch's results before it asks for the next one."""
    argo = cfg.argo
    for setting, value in (("argo.render_to", argo.render_to), ("argo.schedule", argo.schedule)):
        if value:
            raise SweeperError(
                f"{setting} cannot feed trial results back to an optimising sweeper "
                f"(hydra/sweeper={_sweeper(cfg)}); leave it out to submit and watch each batch"
            )
    if not argo.wait:
        raise SweeperError(
            f"argo.wait=false cannot feed trial results back to an optimising sweeper "
            f"(hydra/sweeper={_sweeper(cfg)}); each batch's workflow is watched until it ends"
        )
    if not argo.server:
        raise SweeperError(f"backend=argo with hydra/sweeper={_sweeper(cfg)} needs "
                           "argo.server=https://…")  # fmt: skip
    check_reachable(cfg)  # before the optimiser creates its study


def run_batch_on_argo(
    plan: Plan, cfg: DictConfig, name_keys: Sequence[str], sweep_params: dict[str, str]
) -> tuple[str, list[Outcome]]:
    """Submit the batch, wait for it; its sweep id (the workflow's name) and its outcomes."""
    from sweeper.argo.submit import submit

    jobs = [portable(trial.overrides) for trial in plan.trials]  # argo.token stays here
    args = ["--jobs", json.dumps(jobs)]
    for key in name_keys:
        args += ["--name-key", key]
    for key, value in sweep_params.items():
        args += ["--sweep-param", f"{key}={value}"]
    workflow = compile_sweep([], False, cfg, batch=args)
    assert workflow.name is not None
    status = submit(workflow, cfg.argo)
    url = storage.join(plan.settings.storage_root, "sweeps", workflow.name, "results.json")
    try:
        record = json.loads(storage.read_bytes(url))
    except FileNotFoundError:
        phase = "failed" if status else "succeeded"
        raise SweeperError(
            f"workflow {workflow.name} {phase} without writing its results ({url})"
        ) from None
    # The pods number the batch's trials from 0, in the order of the manifest.
    rows = {int(row["index"]): row for row in record["trials"]}
    outcomes = []
    for position, trial in enumerate(plan.trials):
        row = rows.get(position)
        if row is None:
            outcomes.append(Outcome.not_run(trial, f"not in the results of {workflow.name}"))
            continue
        outcomes.append(
            Outcome(
                trial,
                str(row["status"]),
                dict(row.get("metrics") or {}),
                error=row.get("error"),
                run_id=row.get("run_id"),
                reused=bool(row.get("reused")),
            )
        )
    return workflow.name, outcomes


def _sweeper(cfg: DictConfig) -> str:
    target = str(cfg.hydra.sweeper.get("_target_", ""))
    return "optuna" if "optuna" in target else target.rsplit(".", 1)[-1]
