"""The sweep's winning model is one a team can call: a Pipeline that predicts from raw rows as
they are read from the data's own file (text columns, missing values, the target and dropped
columns still in them), logged and registered as such."""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import sklearn.base
from mlflow.tracking import MlflowClient

from support.argo import render
from support.argo_runner import ArgoRunner, base_env
from support.mlflow_view import sweeps
from support.servers import PROJECT, S3Server, data_file, free_port, run_sweeper, serving

NAME = "seats-regressor"


def awkward_table(folder: Path) -> Path:
    """carseats.csv with gaps (missing incomes, shelf locations and, in 13 rows, sales) and a
    text column of 60 levels (a store id)."""
    table = pd.read_csv(data_file("carseats.csv"))
    table.loc[::7, "Income"] = np.nan
    table.loc[::11, "ShelveLoc"] = np.nan
    table.loc[::31, "Sales"] = np.nan
    table["Store"] = [f"store-{i % 60}" for i in range(len(table))]
    path = folder / "seats.csv"
    table.to_csv(path, index=False)
    return path


def served(model: str, rows: pd.DataFrame, workdir: Path) -> list[float]:
    """`rows`' predictions from `mlflow models serve` of the model folder, asked as a client
    would: JSON, with null for every blank."""
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", model]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    url = f"http://127.0.0.1:{port}"
    cells = rows.astype(object).where(rows.notna(), None)
    body = {"dataframe_split": {"columns": list(rows.columns), "data": cells.values.tolist()}}
    request = urllib.request.Request(
        f"{url}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    log = workdir / "scoring-server.log"
    # MLflow starts `uvicorn` by name: from this environment, as an activated one would.
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "PATH": path}
    with (
        serving(command, f"{url}/ping", log, env=env),
        urllib.request.urlopen(request, timeout=30) as got,
    ):
        return list(json.loads(got.read())["predictions"])


def test_the_best_model_predicts_raw_rows_and_the_registry_holds_it(workdir: Path) -> None:
    path = awkward_table(workdir)
    done = run_sweeper(
        [
            "data=csv",
            f"data.path={path}",
            "data.target=Sales",
            "data.drop=[Urban]",
            "model=ridge,lasso",
            f"mlflow.register_best={NAME}",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    [sweep] = sweeps(uri, "sweeper")
    # What preprocessing did, said on the sweep's run and in the log.
    said = sweep.parent.data.params
    assert said["data.rows_in"] == "400" and said["data.rows_dropped_missing_target"] == "13"
    # Which data: named by its file, its bytes' digest, where it was read, its columns' types.
    assert {r.data.params["data.name"] for r in sweep.children} == {"seats"}
    [seen] = MlflowClient(uri).get_run(sweep.parent.info.run_id).inputs.dataset_inputs
    assert seen.dataset.name == "seats" and seen.dataset.source_type == "local"
    assert seen.dataset.digest == hashlib.sha256(path.read_bytes()).hexdigest()[:36]
    assert json.loads(seen.dataset.source) == {"uri": str(path.resolve())}  # absolute
    types = {c["name"]: c["type"] for c in json.loads(seen.dataset.schema)["mlflow_colspec"]}
    assert types["Income"] == "double" and types["Age"] == "long" and types["Store"] == "string"
    assert [t.key for t in seen.tags] == ["mlflow.data.context"]
    assert int(said["data.rows_train"]) + int(said["data.rows_test"]) == 387
    assert said["data.columns_in"] == "10"  # 12 columns less the target and Urban
    # 7 numeric; ShelveLoc's 3 levels and US's 2; Store's 19 most frequent and one for the rest.
    assert said["data.features_out"] == str(7 + 3 + 2 + 20)
    log = done.stdout + done.stderr
    assert "400 rows in, 13 dropped (missing target)" in log
    assert "column 'Store' has 60 levels" in log and "preprocess.max_categories=20" in log
    best = min(sweep.children, key=lambda r: r.data.metrics["cv_mse"])
    client = MlflowClient(uri)
    logged = client.get_logged_model(
        client.get_run(best.info.run_id).data.tags["best_model_uri"].removeprefix("models:/")
    )
    local = logged.artifact_location.removeprefix("file://")

    # As a user calls it: the file read again, every column and row in it.
    raw = pd.read_csv(path)
    predicted = mlflow.pyfunc.load_model(local).predict(raw)
    assert predicted.shape == (400,) and np.isfinite(predicted).all()
    inputs = mlflow.models.Model.load(local).signature.inputs.input_names()
    assert inputs == [c for c in raw.columns if c not in ("Sales", "Urban")]
    assert "Hint: Inferred schema contains integer column" not in log

    # Blanks where the file has none, in whole-number (Price, Age) and text (US) columns: the
    # pipeline imputes them, through pyfunc and through MLflow's scoring server alike.
    pipeline = mlflow.sklearn.load_model(local)
    gappy = raw.head(4).astype({"Price": "float64", "Age": "float64", "US": object})
    gappy.loc[0, "Price"] = np.nan
    gappy.loc[1, ["Age", "US"]] = [np.nan, None]
    gappy.loc[2, ["Price", "ShelveLoc"]] = [np.nan, None]
    expected = pipeline.predict(gappy)
    assert np.isfinite(expected).all()
    np.testing.assert_allclose(mlflow.pyfunc.load_model(local).predict(gappy), expected)
    assert served(local, gappy, workdir) == pytest.approx(list(expected), rel=1e-9)
    # Its score on the stored test rows is the trial's logged test score.
    [split] = (workdir / "sweeper-store" / "preprocess").iterdir()
    test = pd.read_parquet(split / "test_raw.parquet")
    y = test.pop("__target__")
    mse = float(np.mean((mlflow.pyfunc.load_model(local).predict(test) - y) ** 2))
    assert mse == pytest.approx(best.data.metrics["mse"], rel=1e-12)
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    assert type(pipeline.steps[-1][1]).__name__ == best.data.params["model.class"].rsplit(".")[-1]

    # The registered version is the same pipeline: the same predictions from the same rows.
    [version] = client.search_model_versions(f"name = '{NAME}'")
    assert version.run_id == best.info.run_id
    # Where it came from, on the sweep's run and on the version: this checkout's commit, the
    # project's version, the definition's hash (no image: it ran here, not in a pod).
    source = {k: v for k, v in sweep.parent.data.tags.items() if k.startswith("provenance.")}
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=PROJECT, capture_output=True, text=True, check=True
    )
    commit = os.environ.get("SWEEPER_GIT_COMMIT") or head.stdout.strip()  # as built, or this
    assert source["provenance.git_commit"] == commit
    assert source["provenance.version"] == importlib.metadata.version("sweeper")
    assert re.fullmatch(r"[0-9a-f]{64}", source["provenance.definition_hash"])
    assert "provenance.image" not in source
    assert {k: version.tags[k] for k in source} == source
    assert version.description.startswith(f"{best.info.run_name} from sweep ")
    assert f"commit {commit}" in version.description
    mlflow.set_tracking_uri(uri)
    try:
        registered = mlflow.pyfunc.load_model(f"models:/{NAME}/1").predict(raw)
    finally:
        mlflow.set_tracking_uri("")  # later sweeps of this process must not inherit it
    np.testing.assert_array_equal(registered, predicted)


def test_a_champion_that_cannot_score_tonights_data_is_replaced_in_one_line(
    workdir: Path,
) -> None:
    path = awkward_table(workdir)
    seats = ["data=csv", f"data.path={path}", "data.target=Sales"]
    ridge = ["model=ridge", "model.alpha=1", f"mlflow.register_best={NAME}", "-m"]
    first = run_sweeper([*seats, *ridge], cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    # Another table, other columns: the champion cannot score it; the challenger is registered.
    second = run_sweeper(ridge, cwd=workdir)
    assert second.returncode == 0, second.stderr[-3000:]
    [line] = [x for x in second.stdout.splitlines() if x.startswith("Registry:")]
    assert re.fullmatch(
        rf"Registry: {NAME} version 2 is the champion \(mse [0-9.]+; version 1 cannot score this "
        r"data: \w+\)",
        line,
    ), line


@pytest.mark.unit
def test_a_score_that_is_not_a_number_fails_the_trial_instead_of_ranking() -> None:
    """evaluate's scores of predictions that overflowed: refused, so the trial is FAILED."""
    import numpy as np
    from sklearn.dummy import DummyRegressor

    from sweeper.core.metrics import ProblemType
    from sweeper.trial.fitting import evaluate

    X, y = np.zeros((4, 1)), np.array([1.0, 2.0, 3.0, 4.0])
    fitted = DummyRegressor(strategy="constant", constant=1e200).fit(X, y)
    with pytest.raises(ValueError, match=r"mse=inf.*cannot be scored"):
        evaluate(fitted, X, y, ProblemType.regression)
    assert evaluate(DummyRegressor().fit(X, y), X, y, ProblemType.regression)["mse"] == 1.25


def test_the_winner_is_the_model_its_trial_fitted_not_a_refit(workdir: Path) -> None:
    """Forests without a seed: fitted again, a forest scores differently; the logged winner
    scores exactly what its trial logged, so it is the very model the trial fitted (kept by its
    worker), and the sweep's store keeps no model files once it is logged."""
    done = run_sweeper([*UNSEEDED_FORESTS, "-m"], cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    [split] = (workdir / "sweeper-store" / "preprocess").iterdir()
    tables = {name: pd.read_parquet(split / name) for name in ("train.parquet", "test_raw.parquet")}
    assert_winner_not_refit(uri, "sweeper", tables)
    assert not list((workdir / "sweeper-store" / "sweeps").glob("*/models/*"))


def test_on_argo_the_summary_logs_the_model_a_train_pod_kept(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    bucket = f"kept-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    manifest = render(
        workdir,
        [
            *UNSEEDED_FORESTS,
            f"storage.root=s3://{bucket}/store",
            "argo.trials_per_pod=2",
            f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=argo-kept",
            f"argo.env={{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}",
            "argo.secrets=[s3]",
            "-m",
        ],
    )
    credentials = {k: v for k, v in s3_server.env.items() if "KEY" in k}
    runner = ArgoRunner(manifest, env=base_env(), secrets={"s3": credentials})
    assert runner.run() == "Succeeded", [p.stderr[-2000:] for p in runner.pods if p.returncode]
    fs = s3_server.fs()
    [split] = fs.ls(f"{bucket}/store/preprocess")
    tables = {
        name: pd.read_parquet(io.BytesIO(fs.cat(f"{split}/{name}")))
        for name in ("train.parquet", "test_raw.parquet")
    }
    assert_winner_not_refit(mlflow_server, "argo-kept", tables)
    assert not fs.glob(f"{bucket}/store/sweeps/*/models/*")


# Forests without a seed: a refit would not score what the trial scored.
UNSEEDED_FORESTS = [
    "model=rf",
    "model.random_state=null",
    "model.n_estimators=5",
    "model.max_depth=2,3,4",
    "eval.cv=0",
]


def assert_winner_not_refit(uri: str, experiment: str, tables: dict[str, pd.DataFrame]) -> None:
    [sweep] = sweeps(uri, experiment)
    best = min(sweep.children, key=lambda r: r.data.metrics["mse"])
    model_uri = MlflowClient(uri).get_run(best.info.run_id).data.tags["best_model_uri"]
    mlflow.set_tracking_uri(uri)
    try:
        pipeline = mlflow.sklearn.load_model(model_uri)
    finally:
        mlflow.set_tracking_uri("")
    test, train = tables["test_raw.parquet"].copy(), tables["train.parquet"]
    y = test.pop("__target__")
    assert float(np.mean((pipeline.predict(test) - y) ** 2)) == best.data.metrics["mse"]
    refit = sklearn.base.clone(pipeline.steps[-1][1])
    refit.fit(train.drop(columns="__target__").to_numpy("float64"), train["__target__"])
    transformed = pipeline.steps[0][1].transform(test)
    assert float(np.mean((refit.predict(transformed) - y) ** 2)) != best.data.metrics["mse"]
