"""hydra/sweeper=optuna through the project's launcher: each batch of trials Optuna asks for is one
shared-preprocess fan-out, the whole study one sweep in MLflow, and the study resumes from storage.

The plugin (hydra-optuna-sweeper, the `optuna` extra) must be installed: `make install` does it.
Batches on Argo: tests/test_argo.py::test_optuna_batch_executed_as_a_workflow.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from mlflow.entities import Run

from support.mlflow_view import sweeps
from support.servers import run_sweeper

SEARCH = "model.alpha=tag(log,interval(0.0001,10))"  # the space of conf/hparams_search/lasso_optuna


def study(storage: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage)


def complete(found: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in found.trials if t.state == optuna.trial.TrialState.COMPLETE]


def best_child(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.data.metrics["cv_mse"])


def unbarred(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    """The trials asked for as soon as one was told, while one asked before that was still
    running: none in batches, where a batch is asked once the batch before is all told."""
    found = []
    for trial in trials:
        told = [t for t in trials if t.datetime_complete <= trial.datetime_start]
        if not told:
            continue  # the first trials
        last = max(t.datetime_complete for t in told)
        if any(
            t.datetime_start < last < t.datetime_complete
            and t.datetime_complete > trial.datetime_start
            for t in trials
        ):
            found.append(trial)
    return found


def test_study_is_one_sweep_and_resumes(workdir: Path) -> None:
    storage = f"sqlite:///{workdir / 'optuna.db'}"
    first = run_sweeper(
        [
            "hydra/sweeper=optuna",
            "model=lasso",
            SEARCH,
            "hydra.sweeper.n_trials=6",
            "hydra.sweeper.n_jobs=3",
            "hydra.sweeper.sampler.seed=7",
            "hydra.sweeper.study_name=lasso",
            "hydra.sweeper.storage=sqlite:///optuna.db",
            "-m",
        ],
        cwd=workdir,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    found = study(storage, "lasso")
    assert len(complete(found)) == 6
    assert unbarred(complete(found)) == []  # Hydra's Optuna sweeper: in batches

    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 6  # two batches, one parent run
    assert {r.info.status for r in [sweep.parent, *sweep.children]} == {"FINISHED"}
    best = best_child(sweep.children)
    # Optuna minimised each trial's CV MSE (the test rows played no part in the search).
    assert best.data.metrics["cv_mse"] == found.best_value
    assert float(best.data.params["model.alpha"]) == found.best_params["model.alpha"]
    # Names show 4 significant digits; the run's param (above) has the exact value.
    assert best.info.run_name == f"lasso alpha={found.best_params['model.alpha']:.4g}"
    assert sweep.parent.data.metrics["best_cv_mse"] == found.best_value
    assert sweep.parent.data.metrics["n_trials"] == 6
    assert sweep.parent.data.params["study"] == "lasso"
    assert sweep.parent.data.params["n_trials"] == "6"
    # Every value Optuna tried is a child run, with the CV MSE Optuna was told.
    assert sorted((t.params["model.alpha"], t.value) for t in complete(found)) == sorted(
        (float(r.data.params["model.alpha"]), r.data.metrics["cv_mse"]) for r in sweep.children
    )
    # One line per batch, the ranked table once; the split preprocessed once, then reused.
    assert "Batch 1/2 of sweep " + sweep.sweep_id in first.stdout
    assert first.stdout.count("ranked by CV MSE") == 1
    log = first.stdout + first.stderr
    assert log.count("Preprocess ") == 2 and log.count(": stored ") == 1, log
    assert len(list((workdir / "sweeper-store" / "preprocess").iterdir())) == 1
    results = json.loads(
        (workdir / "sweeper-store" / "sweeps" / sweep.sweep_id / "results.json").read_text()
    )
    assert len(results["trials"]) == 6

    # The conf example resumes the same study (its name and storage) with 3 more trials.
    resumed = run_sweeper(
        [
            "hydra/sweeper=optuna",
            "hparams_search=lasso_optuna",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.n_jobs=3",
        ],
        cwd=workdir,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    found = study(storage, "lasso")
    assert len(complete(found)) == 6 + 3
    first_sweep, second = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert first_sweep.parent.info.run_id == sweep.parent.info.run_id
    assert len(second.children) == 3 and second.parent.data.params["study"] == "lasso"
    children = first_sweep.children + second.children
    assert best_child(children).data.metrics["cv_mse"] == found.best_value
    assert second.parent.data.metrics["best_cv_mse"] == min(t.value for t in complete(found)[6:])
    log = resumed.stdout + resumed.stderr
    assert log.count("Preprocess ") == 1 and ": reused " in log and ": stored " not in log


def test_a_failing_batch_ends_the_sweep_run_failed(workdir: Path) -> None:
    result = run_sweeper(
        # More neighbours than training rows: values a fit cannot use, found by fitting.
        [
            "hydra/sweeper=optuna",
            "model=knn",
            "model.weights=uniform",
            "model.n_neighbors=int(interval(1000,2000))",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 1  # Optuna gives up after the first batch (max_failure_rate 0)
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert [r.info.status for r in sweep.children] == ["FAILED", "FAILED"]
    assert sweep.parent.info.status == "FAILED"
    assert sweep.parent.data.metrics["n_failed"] == 2


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["eval.early_stop=true"],
            "hydra.sweeper.pruner and eval.early_stop both stop a trial's CV early: choose one",
        ),
        (
            [
                "backend=argo",
                "argo.server=https://argo.example:2746",
                "storage.root=s3://bucket/sweeps",
                "mlflow.tracking_uri=http://mlflow.ml.svc:5000",
            ],
            "hydra.sweeper.pruner needs backend=local (backend=argo runs an optimiser's "
            "trials in batches, each in full)",
        ),
        (
            ["hydra.sweeper.pruner={_target_:optuna.pruners.SuccessiveHalvingPruner}"],
            "hydra.sweeper.pruner: SuccessiveHalvingPruner keeps its rungs in the study's own "
            "trials, which a worker's copy cannot update: use median, percentile or wilcoxon "
            "(or search=halving for successive halving)",
        ),
    ],
)
def test_a_pruner_refuses_what_it_cannot_do(workdir: Path, args: list[str], said: str) -> None:
    result = run_sweeper(
        [
            "hydra/sweeper=optuna_async",
            *([] if any("pruner" in a for a in args) else ["hydra/sweeper/pruner=wilcoxon"]),
            "model=lasso",
            "model.alpha=interval(0.1,1)",
            *args,
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == said
    assert not (workdir / "multirun").exists()


@pytest.mark.parametrize(
    ("override", "setting"),
    [("argo.render_to=x.yaml", "argo.render_to"), ("argo.template=true", "argo.template")],
)
def test_render_to_and_a_template_are_refused(workdir: Path, override: str, setting: str) -> None:
    result = run_sweeper(
        [
            "hydra/sweeper=optuna",
            "model=lasso",
            "model.alpha=interval(0.1,1)",
            "backend=argo",
            override,
            "storage.root=s3://bucket/sweeps",
            "mlflow.tracking_uri=http://mlflow.ml.svc:5000",
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 1
    assert (
        f"{setting} cannot feed trial results back to an optimising sweeper "
        "(hydra/sweeper=optuna); leave it out to submit and watch each batch"
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert not (workdir / "x.yaml").exists()


def test_a_first_batch_of_refused_values_leaves_no_run(workdir: Path) -> None:
    result = run_sweeper(
        [
            "hydra/sweeper=optuna",
            "model=lasso",
            "model.alpha=interval(-2,-1)",
            "hydra.sweeper.n_trials=4",
            "hydra.sweeper.n_jobs=2",
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 1
    assert "InvalidParameterError: The 'alpha' parameter of Lasso must be" in result.stderr
    assert "Traceback" not in result.stderr
    assert sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper") == []


def test_async_asks_as_workers_free_up_and_reports_each_fold(workdir: Path) -> None:
    """hydra/sweeper=optuna_async on 2 workers, SVR and lasso trials mixed. Hydra's sweeper asks
    for a batch once every trial asked before it is told; this one asks whenever a trial ends,
    while the other worker's is still pending (Optuna's own ask and tell times say which). Each
    trial is told its CV folds as intermediate values first, one step per fold."""
    done = run_sweeper(
        [
            "hydra/sweeper=optuna_async",
            "model=choice(lasso,svr)",
            "+model.tol=tag(log,interval(0.00001,0.01))",
            "hydra.sweeper.n_trials=8",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.sampler.seed=1",
            "hydra.sweeper.study_name=mixed",
            "hydra.sweeper.storage=sqlite:///optuna.db",
            "local.workers=2",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[1/8] " in done.stdout and "Batch " not in done.stdout  # one stream, no batches
    found = study(f"sqlite:///{workdir / 'optuna.db'}", "mixed")
    trials = complete(found)
    assert len(trials) == 8 and found.trials == trials
    assert {t.params["model"] for t in trials} == {"lasso", "svr"}
    assert len(unbarred(trials)) == 6  # every trial after the first two
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 8
    runs = {(r.data.params["model"], r.data.params["model.tol"]): r for r in sweep.children}
    for trial in trials:
        run = runs[(trial.params["model"], str(trial.params["+model.tol"]))]
        assert trial.value == run.data.metrics["cv_mse"]
        folds = json.loads(run.data.tags["cv_folds"])["mse"]
        assert [trial.intermediate_values[step] for step in range(5)] == folds


def test_a_pruner_stops_a_trials_cv_between_folds(workdir: Path) -> None:
    """hydra/sweeper/pruner=median: after each fold the worker asks the study's pruner (on
    every trial told so far), and a pruned trial stops there: PRUNED in Optuna with the folds it
    had, `stopped` in MLflow after as many, never the best."""
    done = run_sweeper(
        [
            "hydra/sweeper=optuna_async",
            "hydra/sweeper/pruner=median",
            "hydra.sweeper.pruner.n_startup_trials=3",
            "model=lasso",
            "model.alpha=tag(log,interval(0.001,100))",
            "hydra.sweeper.n_trials=16",
            "hydra.sweeper.n_jobs=2",
            "hydra.sweeper.sampler.seed=3",
            "hydra.sweeper.study_name=pruned",
            "hydra.sweeper.storage=sqlite:///optuna.db",
            "local.workers=2",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = study(f"sqlite:///{workdir / 'optuna.db'}", "pruned")
    pruned = [t for t in found.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned and len(complete(found)) + len(pruned) == 16
    assert all(len(t.intermediate_values) < 5 for t in pruned)
    assert all(len(t.intermediate_values) == 5 for t in complete(found))
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    runs = {float(r.data.params["model.alpha"]): r for r in sweep.children}
    for trial in found.trials:
        run = runs[trial.params["model.alpha"]]
        folds = json.loads(run.data.tags["cv_folds"])["mse"]
        assert [trial.intermediate_values[step] for step in range(len(folds))] == folds
        stopped = run.data.tags.get("cv.stopped_after")
        assert stopped == (None if trial in complete(found) else str(len(folds)))
    assert f"Stopped early: {len(pruned)} of 16 before their last fold" in done.stdout
    assert sweep.parent.data.metrics["best_cv_mse"] == found.best_value
