"""One suite, every executor: the same sweeps give the same MLflow results locally and on Argo.

In the spirit of Hydra's `LauncherTestSuite`: each test runs against both executors through
`execute`, which types the command a user would (local) or renders the manifest and executes it
pod by pod as processes (Argo). The expected scores are computed here from the stored split with
scikit-learn directly, not read back from the code under test.
"""

from __future__ import annotations

import io
import itertools
import json
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sklearn.datasets import load_diabetes
from sklearn.linear_model import Lasso
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import Pipeline

from support.argo import render
from support.argo_runner import ArgoRunner, base_env
from support.by_hand import standard_recipe, training_rows
from support.mlflow_view import SweepRuns, sweeps
from support.servers import S3Server, data_file, run_sweeper
from sweeper.core.records import TARGET_COLUMN

EXECUTORS = ("local", "argo")


@dataclass
class Executed:
    sweep: SweepRuns | None  # None: no sweep's run was opened
    ok: bool  # the command (local) or the workflow (Argo) succeeded
    store: str  # storage.root, an s3:// URL
    said: str  # what the command (local) or the plan pod (Argo) wrote to stderr


Execute = Callable[[list[str]], Executed]


@pytest.fixture(params=EXECUTORS)
def execute(
    request: pytest.FixtureRequest, workdir: Path, s3_server: S3Server, mlflow_server: str
) -> Execute:
    """Runs `python -m sweeper ARGS -m` on one executor; each call is a new sweep of one
    experiment and one store of this test."""
    return executor(str(request.param), workdir, s3_server, mlflow_server)


def executor(backend: str, workdir: Path, s3_server: S3Server, mlflow_server: str) -> Execute:
    """`execute` on this backend, with an experiment and a store of its own."""
    bucket = f"conf-{backend}-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    store = f"s3://{bucket}/store"
    common = [
        f"storage.root={store}",
        f"mlflow.tracking_uri={mlflow_server}",
        f"mlflow.experiment={bucket}",
    ]

    def run(args: list[str]) -> Executed:
        if backend == "local":
            done = run_sweeper([*args, *common, "-m"], cwd=workdir, env=s3_server.env)
            assert "Traceback" not in done.stderr, done.stderr[-3000:]
            ok, said = done.returncode == 0, done.stderr
        else:
            endpoint = f"{{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}"
            pods = [f"argo.env={endpoint}", "argo.secrets=[s3]", "argo.trials_per_pod=2"]
            manifest = render(workdir, [*args, *common, *pods, "-m"])
            keys = {k: v for k, v in s3_server.env.items() if "KEY" in k}
            runner = ArgoRunner(manifest, env=base_env(), secrets={"s3": keys})
            ok = runner.run() == "Succeeded"
            said = next((p.stderr for p in runner.pods if p.template == "plan"), "")
            for pod in runner.pods:
                assert "Traceback" not in pod.stderr, pod.stderr[-3000:]
        found = MlflowClient(mlflow_server).get_experiment_by_name(bucket)
        runs = sweeps(mlflow_server, bucket) if found is not None else []
        return Executed(runs[-1] if runs else None, ok, store, said)

    return run


def carseats(s3: S3Server) -> str:
    """carseats.csv in a bucket of its own, on S3 (pods read their data from URLs)."""
    bucket = f"conf-data-{secrets.token_hex(3)}"
    s3.fs().mkdir(bucket)
    s3.fs().pipe(f"{bucket}/in/carseats.csv", data_file("carseats.csv").read_bytes())
    return f"s3://{bucket}/in/carseats.csv"


def expected_scores(s3: S3Server, store: str, alpha: float) -> dict[str, float]:
    """A lasso scored here: 5-fold CV of the preprocessing and the model together on the raw
    training rows (shuffled with the sweep's seed, 42), as scikit-learn's `cross_val_score` does
    it; and, fitted on the sweep's stored training rows, on its stored test rows."""
    fs = s3.fs()
    [split] = fs.ls(store.removeprefix("s3://") + "/preprocess")
    train, test = (
        pd.read_parquet(io.BytesIO(fs.cat(f"{split}/{name}.parquet"))) for name in ("train", "test")
    )
    X_train, X_test = (t.drop(columns=TARGET_COLUMN) for t in (train, test))
    model = Lasso(alpha=alpha, max_iter=10000, random_state=42)
    diabetes = load_diabetes(as_frame=True).frame  # the sweep's default data
    raw, y_raw = training_rows(diabetes, "target", seed=42)
    pipeline = Pipeline([("preprocess", standard_recipe(raw)), ("model", model)])
    folds = KFold(5, shuffle=True, random_state=42)
    cv = -cross_val_score(pipeline, raw, y_raw, cv=folds, scoring="neg_mean_squared_error")
    model.fit(X_train, train[TARGET_COLUMN])
    mse = float(mean_squared_error(test[TARGET_COLUMN], model.predict(X_test)))
    return {"mse": mse, "cv_mse": float(cv.mean()), "cv_mse_std": float(cv.std())}


GRID = ["model=lasso", "model.alpha=0.05,0.5,2"]


def test_a_grid_gives_one_finished_run_per_trial(
    execute: Execute, s3_server: S3Server, mlflow_server: str
) -> None:
    done = execute(GRID)
    assert done.ok
    runs = done.sweep.by_name()
    assert sorted(runs) == ["lasso alpha=0.05", "lasso alpha=0.5", "lasso alpha=2"]
    for alpha in (0.05, 0.5, 2):
        run = runs[f"lasso alpha={alpha}"]
        assert run.info.status == "FINISHED"
        assert run.data.params["model.class"] == "sklearn.linear_model.Lasso"
        expected = expected_scores(s3_server, done.store, alpha)
        for key, value in expected.items():
            assert run.data.metrics[key] == pytest.approx(value), key
    parent = done.sweep.parent
    assert parent.info.status == "FINISHED"
    # Which data the sweep saw, as MLflow's lineage: the bundled set, its columns' types.
    [seen] = MlflowClient(mlflow_server).get_run(parent.info.run_id).inputs.dataset_inputs
    assert seen.dataset.name == "diabetes" and seen.dataset.source_type == "code"
    assert json.loads(seen.dataset.source) == {"uri": "sklearn.datasets.load_diabetes"}
    schema = json.loads(seen.dataset.schema)["mlflow_colspec"]
    assert {c["name"]: c["type"] for c in schema}["bmi"] == "double" and len(schema) == 11
    assert parent.data.metrics["n_trials"] == 3 and parent.data.metrics["n_failed"] == 0
    # The winner is the lowest CV MSE; its test MSE is what the sweep reports of it.
    best = min(runs.values(), key=lambda r: r.data.metrics["cv_mse"])
    assert parent.data.metrics["best_cv_mse"] == best.data.metrics["cv_mse"]
    assert parent.data.metrics["best_mse"] == best.data.metrics["mse"]
    client = MlflowClient(mlflow_server)
    assert (
        parent.data.tags["best_model_uri"]
        == client.get_run(best.info.run_id).data.tags["best_model_uri"]
    )
    listed = client.list_artifacts(parent.info.run_id, "results")
    assert sorted(Path(a.path).name for a in listed) == [
        "configs.csv",
        "report.html",
        "results.csv",
        "results.html",
    ]


def test_a_failing_trial_fails_alone_and_the_sweep_says_so(execute: Execute) -> None:
    # Values scikit-learn accepts, but a fit cannot use: more neighbours than training rows.
    done = execute(["model=knn", "model.weights=uniform", "model.n_neighbors=5,1000"])
    assert not done.ok
    runs = done.sweep.by_name()
    assert {name: r.info.status for name, r in runs.items()} == {
        "knn n_neighbors=5": "FINISHED",
        "knn n_neighbors=1000": "FAILED",
    }
    failed = runs["knn n_neighbors=1000"].data.tags
    assert failed["error.type"] == "ValueError"
    assert "Expected n_neighbors <= n_samples_fit" in failed["error.message"]
    assert done.sweep.parent.info.status == "FAILED"
    assert done.sweep.parent.data.metrics["n_failed"] == 1


def test_a_finished_trial_is_reused_by_the_next_sweep(execute: Execute) -> None:
    first = execute(GRID)
    again = execute([*GRID[:1], "model.alpha=0.5,3"])  # one trial done before, one new
    assert first.ok and again.ok
    assert [r.info.run_name for r in again.sweep.children] == ["lasso alpha=3"]
    assert again.sweep.parent.data.metrics["n_reused"] == 1
    assert again.sweep.parent.data.metrics["n_trials"] == 2


def test_data_from_a_url_with_a_text_column(execute: Execute, s3_server: S3Server) -> None:
    url = carseats(s3_server)
    done = execute(
        ["data=csv", f"data.path={url}", "data.target=Sales", "model=ridge", "model.alpha=1"]
    )
    assert done.ok
    [run] = done.sweep.children
    assert run.data.params["data.path"] == url and run.data.params["data.target"] == "Sales"
    # ShelveLoc, Urban and US are one-hot encoded: r2 well above what the numbers alone give.
    assert 0.8 < run.data.metrics["r2"] < 1.0


def test_a_classification_sweep_logs_the_label_metrics(
    execute: Execute, s3_server: S3Server
) -> None:
    url = carseats(s3_server)
    done = execute(
        ["data=csv", f"data.path={url}", "data.target=US", "model=logistic", "model.C=0.1,1"]
    )
    assert done.ok
    runs = done.sweep.by_name()
    assert sorted(runs) == ["logistic C=0.1", "logistic C=1"]
    for run in runs.values():
        assert run.data.params["data.task"] == "classification"
        for metric in ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"):
            assert metric in run.data.metrics and f"cv_{metric}" in run.data.metrics
    best = max(runs.values(), key=lambda r: r.data.metrics["cv_accuracy"])
    parent = done.sweep.parent
    assert parent.data.params["ranked_by"] == "cv_accuracy"
    assert parent.data.metrics["best_cv_accuracy"] == best.data.metrics["cv_accuracy"]
    assert parent.data.tags["best_model_uri"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["model=lasso", "model.alpha=0.5,-1"],
            "trial 'lasso alpha=-1': InvalidParameterError: The 'alpha' parameter of Lasso",
        ),
        (
            ["data=csv", "data.path=s3://nowhere-{bucket}/x.csv", "data.target=y", "model=lasso"],
            "data.path s3://nowhere-{bucket}/x.csv",
        ),
    ],
    ids=["model value", "missing data"],
)
def test_bad_input_is_refused_before_any_run(execute: Execute, args: list[str], said: str) -> None:
    bucket = secrets.token_hex(3)
    done = execute([a.format(bucket=bucket) for a in args])
    assert not done.ok
    assert said.format(bucket=bucket) in done.said
    assert done.sweep is None  # no sweep's run, so no FAILED run without children


# Ten configurations of two models: rungs of 10, 4 and 2 on growing shares of the rows.
HALVING = ["model=lasso,ridge", "model.alpha=0.003,0.03,0.3,3,30", "search=halving"]


def _rungs(client: MlflowClient, sweep: SweepRuns) -> list[dict[str, float]]:
    """Each rung's configurations and CV MSE, from every trial run the experiment holds: a
    rung below the last has its `rows` param, the last none."""
    runs = client.search_runs([sweep.parent.info.experiment_id], max_results=1000)
    trials = [r for r in runs if "trial_key" in r.data.tags and r.info.status == "FINISHED"]
    keys = Counter(r.data.tags["trial_key"] for r in trials)
    assert set(keys.values()) == {1}, keys  # every rung trial trained once
    amounts = sorted({int(r.data.params["rows"]) for r in trials if "rows" in r.data.params})
    rungs: list[dict[str, float]] = [{} for _ in range(len(amounts) + 1)]
    for run in trials:
        rows = run.data.params.get("rows")
        rung = amounts.index(int(rows)) if rows else len(amounts)
        rungs[rung][run.info.run_name] = run.data.metrics["cv_mse"]
    return rungs


def test_halving_gives_the_same_survivors_and_winner_on_every_executor(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    """The Argo workflow halves in rounds (a promote pod replays the halving on the runs
    MLflow holds); the local pool promotes as trials end. Same survivors, same winner."""
    client = MlflowClient(mlflow_server)
    seen = {}
    for backend in EXECUTORS:
        done = executor(backend, workdir, s3_server, mlflow_server)(HALVING)
        assert done.ok and done.sweep is not None, done.said
        rungs = _rungs(client, done.sweep)
        assert [len(rung) for rung in rungs] == [10, 4, 2]
        # Each rung's survivors: the best ceil(n/3) of the rung below, by the scores logged.
        for below, rung in itertools.pairwise(rungs):
            assert set(rung) == set(sorted(below, key=below.__getitem__)[: len(rung)])
        winner = min(rungs[-1], key=rungs[-1].__getitem__)
        children = done.sweep.by_name()
        assert len(children) == 10  # one run per configuration, its lower rungs under it
        assert children[winner].data.tags["best_model_uri"]
        assert done.sweep.parent.data.metrics["best_cv_mse"] == rungs[-1][winner]
        tags = {name: run.data.tags["halving.rung"] for name, run in children.items()}
        seen[backend] = ([set(rung) for rung in rungs], winner, tags, rungs[-1])
    assert seen["argo"] == seen["local"]
