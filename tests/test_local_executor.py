"""The local executor in this process: its crash isolation and a study's batches as one sweep.

Real worker processes (the fork server), a real SQLite store; only the command line is left out,
so these tests see the scheduler's and the sweep's own objects."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

import pytest

from support.in_process import batch, hydra_configs, local_settings
from support.mlflow_view import sweeps
from sweeper.core.outcomes import SweepResult
from sweeper.core.records import Status
from sweeper.executors.local.pool import WorkerDied
from sweeper.executors.local.scheduler import Scheduler
from sweeper.launching.study import Study
from sweeper.launching.sweep import SweepSession
from sweeper.planning.plan import build_plan

CRASHING = "model._target_=support.crashing.CrashingLasso"  # alpha=13 kills its process


@pytest.fixture(autouse=True)
def configs() -> object:
    with hydra_configs():
        yield


def counting_pools(made: list[int]) -> Callable[[int], Executor]:
    """A Scheduler's pool maker that notes the number of workers of each pool it makes."""
    from sweeper.executors.local.pool import new_pool

    def new(workers: int) -> Executor:
        made.append(workers)
        return new_pool(workers)

    return new


def test_a_dying_worker_is_found_and_fails_alone(tmp_path: Path) -> None:
    settings = local_settings(tmp_path)
    crashing = [CRASHING, "trust.modules=[support]"]  # the tests' own package, trusted
    trials = [["model=lasso", *crashing, f"model.alpha={a}", *settings] for a in (0.1, 13, 1, 2)]
    plan = build_plan(batch(trials).jobs())
    pools: list[int] = []
    scheduler = Scheduler(SweepResult(plan, ""), 2, counting_pools(pools))
    scheduler.open()
    outcomes = scheduler.run(plan)
    scheduler.close(Status.FAILED)

    by_alpha = {o.trial.model["alpha"]: o for o in outcomes}
    assert {a: o.status for a, o in by_alpha.items()} == {
        0.1: Status.FINISHED,
        13: Status.FAILED,
        1: Status.FINISHED,
        2: Status.FINISHED,
    }
    assert by_alpha[13].error is not None and by_alpha[13].error.startswith(
        f"{WorkerDied.__name__}: its worker process died ("
    )
    # The shared pool broke once and was replaced; the suspect ran alone in a pool of one.
    assert pools[0] == 2 and pools.count(1) >= 1 and pools.count(2) == 2
    assert not Path(scheduler.markers).exists()  # the marker folder is gone with the sweep
    [sweep] = sweeps(plan.settings.mlflow.tracking_uri, "sweeper")
    assert sweep.by_name()["lasso alpha=13"].data.tags["error.type"] == "WorkerDied"
    assert sweep.parent.info.status == "FAILED"


def test_a_sweep_holds_one_copy_of_each_trial_and_workers_share_the_servers_imports(
    tmp_path: Path,
) -> None:
    """What keeps 100,000 trials small (bench/scale.py measures how small): each outcome holds
    the plan's own Trial, not the copy its worker sent back, and the workers are forked from a
    fork server whose imports are frozen, out of the collector's reach."""
    from sweeper.executors.local.pool import new_pool

    settings = local_settings(tmp_path)
    trials = [["model=lasso", f"model.alpha={a}", *settings] for a in (0.1, 1, 2)]
    plan = build_plan(batch(trials).jobs())
    scheduler = Scheduler(SweepResult(plan, ""), 2)
    scheduler.open()
    outcomes = scheduler.run(plan)
    scheduler.close(Status.FINISHED)
    assert [o.status for o in outcomes] == [Status.FINISHED] * 3
    by_index = {t.index: t for t in plan.trials}
    assert all(o.trial is by_index[o.trial.index] for o in outcomes)
    pool = new_pool(1)
    try:
        frozen = pool.submit(gc.get_freeze_count).result()
    finally:
        pool.shutdown()
    assert frozen > 100_000  # scikit-learn, pandas and MLflow's objects, not a handful


def test_a_long_sweep_ends_on_a_fresh_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past worker.WRITTEN_HERE_PAST outcomes (0 here makes three trials long) the workers that
    trained are shut down before the end and one new worker concludes the sweep: it still logs
    the best model and ends the run."""
    from mlflow.tracking import MlflowClient

    from sweeper.executors.local import worker

    monkeypatch.setattr(worker, "WRITTEN_HERE_PAST", 0)
    settings = local_settings(tmp_path)
    trials = [["model=lasso", f"model.alpha={a}", *settings] for a in (0.1, 1, 2)]
    plan = build_plan(batch(trials).jobs())
    pools: list[int] = []
    scheduler = Scheduler(SweepResult(plan, ""), 2, counting_pools(pools))
    scheduler.open()
    outcomes = scheduler.run(plan)
    trained = scheduler.pool
    scheduler.close(Status.FINISHED)
    assert pools == [2, 1]
    assert scheduler.pool is not trained and getattr(trained, "_processes", None) is None
    [done] = sweeps(plan.settings.mlflow.tracking_uri, "sweeper")
    assert done.parent.info.status == "FINISHED"
    best = scheduler.result.best
    assert best is not None and best in outcomes and best.run_id is not None
    client = MlflowClient(plan.settings.mlflow.tracking_uri)
    best_run = client.get_run(best.run_id)
    assert done.parent.data.tags["best_model_uri"] == best_run.data.tags["best_model_uri"]
    logged = {f.path for f in client.list_artifacts(done.parent.info.run_id, "results")}
    assert "results/results.csv" in logged


@pytest.mark.parametrize("written_here_past", [0, 1_000])
def test_the_tables_report_and_plots_reach_the_sweeps_run_wherever_they_are_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written_here_past: int
) -> None:
    """A large sweep's tables are written by the sweeping process and logged by a worker, a
    small one's by a worker (worker.WRITTEN_HERE_PAST; 0 here makes three trials large): the
    sweep's run gets the same artifacts either way."""
    from mlflow.tracking import MlflowClient

    from sweeper.executors.local import worker

    monkeypatch.setattr(worker, "WRITTEN_HERE_PAST", written_here_past)
    settings = local_settings(tmp_path)
    trials = [["model=lasso", f"model.alpha={a}", *settings] for a in (0.1, 1, 2)]
    plan = build_plan(batch(trials).jobs())
    sweep = SweepSession(plan.settings)
    assert sweep.run(batch(trials)) is not None
    [done] = sweeps(plan.settings.mlflow.tracking_uri, "sweeper")
    client = MlflowClient(plan.settings.mlflow.tracking_uri)
    run_id = done.parent.info.run_id
    logged = {
        f.path for folder in ("results", "plots") for f in client.list_artifacts(run_id, folder)
    }
    assert {"results/results.csv", "results/configs.csv", "results/report.html"} <= logged
    assert any(p.startswith("plots/") and p.endswith("_by_trial.png") for p in logged)
    table = client.download_artifacts(run_id, "results/results.csv", str(tmp_path))
    assert Path(table).read_text().count("lasso alpha=") == 3
    assert done.parent.info.status == "FINISHED"


def test_a_study_is_one_sweep_across_its_batches(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = local_settings(tmp_path)
    study = Study(
        "optuna",
        budget=4,
        batch_size=2,
        name_keys=("model.alpha",),
        params={"n_trials": "4", "models": "lasso", "study": "unit"},
    )
    first = batch([["model=lasso", f"model.alpha={a}", *settings] for a in (0.1, 1)], last=False)
    sweep = SweepSession(build_plan(first.jobs()).settings, study)
    ran = sweep.run(first)
    assert ran is not None and [o.status for o in ran] == [Status.FINISHED] * 2
    parent_run_id = sweep.result.parent_run_id
    [open_sweep] = sweeps(f"sqlite:///{tmp_path}/mlflow.db", "sweeper")
    assert open_sweep.parent.info.status == "RUNNING"  # left open between batches

    second = batch([["model=lasso", f"model.alpha={a}", *settings] for a in (2, 3)], first=2)
    assert sweep.run(second) is not None
    assert sweep.result.parent_run_id == parent_run_id and len(sweep.result.outcomes) == 4

    [done] = sweeps(f"sqlite:///{tmp_path}/mlflow.db", "sweeper")
    assert done.parent.info.status == "FINISHED"
    assert sorted(done.by_name()) == [f"lasso alpha={a}" for a in (0.1, 1, 2, 3)]
    assert done.parent.data.params["study"] == "unit" and done.parent.data.params["n_trials"] == "4"
    assert done.parent.data.metrics["n_trials"] == 4
    record = tmp_path / "store" / "sweeps" / sweep.sweep_id
    assert len(json.loads((record / "plan.json").read_text())["trials"]) == 4
    assert len(json.loads((record / "results.json").read_text())["trials"]) == 4
    printed = capsys.readouterr().out
    assert f"Batch 1/2 of sweep {sweep.sweep_id}: 2 trials, 2 finished" in printed
    assert printed.count("ranked by CV MSE") == 1  # one table, at the end
