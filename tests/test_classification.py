"""Classification sweeps from the same command: a text target and integer class labels, on the
real carseats table; the winner predicts labels of the target's own kind from raw rows."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from support.mlflow_view import SweepRuns, sweeps
from support.servers import data_file, run_sweeper

LABEL_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")


def best_model(workdir: Path, sweep: SweepRuns) -> tuple[str, str]:
    """Where the sweep logged its best trial's pipeline (a folder: the store is SQLite), and the
    run of that trial."""
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    uri = client.get_run(sweep.parent.info.run_id).data.tags["best_model_uri"]
    logged = client.get_logged_model(uri.removeprefix("models:/"))
    return logged.artifact_location.removeprefix("file://"), logged.source_run_id


def raw_test_rows(workdir: Path) -> tuple[pd.DataFrame, pd.Series]:
    [split] = (workdir / "sweeper-store" / "preprocess").iterdir()
    test = pd.read_parquet(split / "test_raw.parquet")
    return test.drop(columns="__target__"), test["__target__"]


def test_a_text_target_is_a_classification_and_its_winner_predicts_its_labels(
    workdir: Path,
) -> None:
    carseats = data_file("carseats.csv")
    done = run_sweeper(
        [
            "data=csv",
            f"data.path={carseats}",
            "data.target=US",
            "model=logistic,knn_classifier",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 3 + 4
    for run in sweep.children:
        for metric in LABEL_METRICS:
            assert run.data.metrics[metric] >= 0 and run.data.metrics[f"cv_{metric}_std"] >= 0
        assert 0.5 < run.data.metrics["cv_accuracy"] <= 1
        assert run.data.params["data.task"] == "classification"
    params = sweep.parent.data.params
    assert (params["data.task"], params["ranked_by"]) == ("classification", "cv_accuracy")
    local, best_run = best_model(workdir, sweep)
    best = next(r for r in sweep.children if r.info.run_id == best_run)
    top = max(r.data.metrics["cv_accuracy"] for r in sweep.children)  # maximised (ties: either)
    assert best.data.metrics["cv_accuracy"] == top
    assert sweep.parent.data.metrics["best_cv_accuracy"] == top
    assert "ranked by CV accuracy (5-fold on the training rows)" in done.stdout

    predicted = mlflow.pyfunc.load_model(local).predict(pd.read_csv(carseats))
    assert set(predicted) <= {"Yes", "No"} and len(predicted) == 400  # the labels, as text
    X_test, y_test = raw_test_rows(workdir)
    on_test = mlflow.pyfunc.load_model(local).predict(X_test)
    accuracy = float(np.mean(np.asarray(on_test) == y_test.to_numpy()))
    assert accuracy == pytest.approx(best.data.metrics["accuracy"], rel=1e-12)
    assert accuracy > y_test.value_counts(normalize=True).max()  # beats the majority class
    pipeline = mlflow.sklearn.load_model(local)
    proba = pipeline.predict_proba(X_test)
    assert proba.shape == (len(X_test), 2) and np.allclose(proba.sum(axis=1), 1)

    # Beside the results table: the winner's per-class report and confusion matrix.
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    folder = Path(client.download_artifacts(sweep.parent.info.run_id, "", str(workdir / "got")))
    report = pd.read_csv(folder / "results" / "classification_report.csv", index_col="class")
    assert report.loc["accuracy", "precision"] == pytest.approx(accuracy)  # sklearn's layout
    assert report.loc["Yes", "support"] + report.loc["No", "support"] == len(y_test)
    assert (folder / "plots" / "confusion_matrix.png").read_bytes().startswith(b"\x89PNG")


def test_integer_labels_with_data_task_classification(workdir: Path) -> None:
    table = pd.read_csv(data_file("carseats.csv"))
    table["Shelf"] = table.pop("ShelveLoc").map({"Bad": 0, "Medium": 1, "Good": 2})
    path = workdir / "shelves.csv"
    table.to_csv(path, index=False)
    done = run_sweeper(
        [
            "data=csv",
            f"data.path={path}",
            "data.target=Shelf",
            "data.task=classification",
            "model=rf_classifier",
            "model.n_estimators=50",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 3  # rf_classifier's three depths
    assert all(set(LABEL_METRICS) <= r.data.metrics.keys() for r in sweep.children)
    local, _ = best_model(workdir, sweep)
    predicted = mlflow.pyfunc.load_model(local).predict(table)
    assert np.issubdtype(np.asarray(predicted).dtype, np.integer)  # labels of its own kind
    assert set(predicted) <= {0, 1, 2}
    X_test, y_test = raw_test_rows(workdir)
    on_test = mlflow.pyfunc.load_model(local).predict(X_test)
    assert (
        np.mean(np.asarray(on_test) == y_test.to_numpy())
        > y_test.value_counts(normalize=True).max()
    )
    # The same column as a number would be a regression: auto reads it so.
    regression = run_sweeper(
        ["data=csv", f"data.path={path}", "data.target=Shelf", "model=ridge", "-m"], cwd=workdir
    )
    assert regression.returncode == 0, regression.stderr[-3000:]
    assert "ranked by CV MSE" in regression.stdout


def test_a_classification_sweep_says_no_warning_a_user_cannot_act_on(workdir: Path) -> None:
    """svc's trials (SVC once warned of its deprecated `probability` at every fit) and the
    winner's logging print no warning of scikit-learn's, pandas' or MLflow's."""
    carseats = data_file("carseats.csv")
    args = ["data=csv", f"data.path={carseats}", "data.target=US", "model=svc,logistic", "-m"]
    done = run_sweeper(args, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stdout + done.stderr
    assert "Warning" not in said and "warnings.warn" not in said, said[-3000:]
