"""`python -m sweeper … -m` end to end on this machine: what a user runs, what MLflow shows."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from support.mlflow_view import sweeps
from support.servers import data_file, run_sweeper
from support.store import baseline_mse, split_dirs


def test_default_demo_sweep_logs_parent_and_children_and_reuses_preprocess(
    empty_workdir: Path,
) -> None:
    workdir = empty_workdir
    first = run_sweeper(["model=rf,lasso", "-m"], cwd=workdir)
    assert first.returncode == 0, first.stderr
    assert (workdir / "mlflow.db").exists()  # MLflow's default: SQLite in the working directory
    [stored] = split_dirs(workdir / "sweeper-store")
    baseline = baseline_mse(stored)

    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 9
    assert {r.data.params["model"] for r in sweep.children} == {"rf", "lasso"}
    for run in sweep.children:
        metrics = run.data.metrics
        assert run.info.status == "FINISHED"
        assert run.data.tags["sweep_id"] == sweep.sweep_id
        assert math.isfinite(metrics["mse"]) and metrics["mse"] < baseline
        assert metrics["rmse"] == pytest.approx(math.sqrt(metrics["mse"]))
        assert {"mae", "r2", "fit_seconds"} <= metrics.keys()
        # Cross-validated on the training rows (eval.cv=5 by default), every metric.
        for metric in ("mse", "rmse", "mae", "r2"):
            assert math.isfinite(metrics[f"cv_{metric}"]) and metrics[f"cv_{metric}_std"] > 0
    lasso = sweep.by_name()["lasso alpha=0.1"]
    assert lasso.data.params["model.alpha"] == "0.1"
    assert lasso.data.params["data.name"] == "diabetes"
    assert (
        sweep.by_name()["rf n_estimators=50 max_depth=null"].data.params["model.max_depth"]
        == "null"
    )
    parent = sweep.parent.data.metrics
    assert parent["n_trials"] == 9 and parent["n_failed"] == 0
    # Chosen by CV on the training rows; its test MSE is reported, not chosen on.
    best = min(sweep.children, key=lambda r: r.data.metrics["cv_mse"])
    assert parent["best_cv_mse"] == best.data.metrics["cv_mse"]
    assert parent["best_mse"] == best.data.metrics["mse"]
    assert sweep.parent.data.params["ranked_by"] == "cv_mse"
    assert f"Best: {best.info.run_name} (cv_mse" in first.stdout
    assert sweep.parent.info.status == "FINISHED"
    assert "lasso alpha=0.1" in first.stdout  # the ranked table

    # Hydra's per-job folders, each with the trial's own config.
    configs = sorted(workdir.glob("multirun/*/*/*/.hydra/config.yaml"))
    assert len(configs) == 9
    assert any(
        "n_estimators: 50" in c.read_text() and "max_depth: 4" in c.read_text() for c in configs
    )

    meta_written = (stored / "meta.json").stat().st_mtime_ns
    second = run_sweeper(["model=rf,lasso", "-m"], cwd=workdir)
    assert second.returncode == 0, second.stderr
    assert split_dirs(workdir / "sweeper-store") == [stored]
    assert (stored / "meta.json").stat().st_mtime_ns == meta_written
    assert "Preprocess" in second.stdout and "reused" in second.stdout
    # The same trials on the same split: nothing is trained again.
    first_sweep, second_sweep = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(first_sweep.children) == 9 and second_sweep.children == []
    assert second.stdout.count("│ reused") == 9
    assert second_sweep.parent.data.metrics["n_reused"] == 9
    assert second_sweep.parent.data.metrics["best_mse"] == parent["best_mse"]

    rerun = run_sweeper(["model=rf,lasso", "sweep.rerun=true", "-m"], cwd=workdir)
    assert rerun.returncode == 0, rerun.stderr
    third = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")[-1]
    # Trained again: same split and seed, so the same scores.
    assert {r.info.run_name: r.data.metrics["mse"] for r in third.children} == {
        r.info.run_name: r.data.metrics["mse"] for r in first_sweep.children
    }


def test_command_line_values_give_exactly_those_trials(workdir: Path, mlflow_server: str) -> None:
    result = run_sweeper(
        [
            "model=lasso",
            "model.alpha=0.01,0.1,1",
            f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=exact",
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    [sweep] = sweeps(mlflow_server, "exact")
    assert sorted(r.data.params["model.alpha"] for r in sweep.children) == ["0.01", "0.1", "1"]
    assert sorted(r.info.run_name for r in sweep.children) == [
        "lasso alpha=0.01",
        "lasso alpha=0.1",
        "lasso alpha=1",
    ]


def test_a_model_value_applies_to_the_models_that_have_it(workdir: Path) -> None:
    result = run_sweeper(["model=rf,lasso", "model.alpha=0.5", "-m"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    models = sorted(r.data.params["model"] for r in sweep.children)
    assert models == ["lasso"] + ["rf"] * 6
    [lasso] = [r for r in sweep.children if r.data.params["model"] == "lasso"]
    assert lasso.data.params["model.alpha"] == "0.5"


@pytest.mark.parametrize(
    ("file", "target", "models", "trials"),
    [("carseats.csv", "Sales", "rf,lasso", 9), ("txhousing.csv", "sales", "gbr,ridge", 7)],
)
def test_real_tables_sweep(
    workdir: Path, mlflow_server: str, file: str, target: str, models: str, trials: int
) -> None:
    experiment = f"real-{file}"
    result = run_sweeper(
        [
            "data=csv",
            f"data.path={data_file(file)}",
            f"data.target={target}",
            f"model={models}",
            f"mlflow.tracking_uri={mlflow_server}",
            f"mlflow.experiment={experiment}",
            "-m",
        ],
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr
    [stored] = split_dirs(workdir / "sweeper-store")
    baseline = baseline_mse(stored)
    [sweep] = sweeps(mlflow_server, experiment)
    assert len(sweep.children) == trials
    assert all(r.data.metrics["mse"] < baseline for r in sweep.children)
    assert {r.data.params["data.target"] for r in sweep.children} == {target}

    source = pd.read_csv(data_file(file))
    test = pd.read_parquet(stored / "test.parquet")
    kept = source[target].notna().sum()  # rows with a missing target are dropped
    assert len(pd.read_parquet(stored / "train.parquet")) + len(test) == kept
    assert not test.isna().any().any()  # missing feature values were imputed
    if file == "carseats.csv":  # string columns become one-hot columns
        assert {"ShelveLoc_Good", "Urban_Yes", "US_No"} <= set(test.columns)


def test_parquet_input_scores_like_its_csv(workdir: Path) -> None:
    csv = data_file("carseats.csv")
    parquet = workdir / "carseats.parquet"
    pd.read_csv(csv).to_parquet(parquet)
    mses = []
    for path in (csv, parquet):
        result = run_sweeper(
            ["data=csv", f"data.path={path}", "data.target=Sales", "model=ridge", "-m"],
            cwd=workdir,
        )
        assert result.returncode == 0, result.stderr
        latest = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")[-1]
        mses.append(sorted(r.data.metrics["mse"] for r in latest.children))
    assert mses[0] == pytest.approx(mses[1])


def test_changed_data_at_the_same_path_is_preprocessed_again(workdir: Path) -> None:
    path = workdir / "sales.csv"
    table = pd.read_csv(data_file("carseats.csv"))
    table.to_csv(path, index=False)
    args = [
        "data=csv",
        f"data.path={path}",
        "data.target=Sales",
        "data.drop=[Population]",
        "model=lasso",
        "model.alpha=0.1",
        "-m",
    ]
    assert run_sweeper(args, cwd=workdir).returncode == 0
    table.head(300).to_csv(path, index=False)
    assert run_sweeper(args, cwd=workdir).returncode == 0
    stored = split_dirs(workdir / "sweeper-store")
    assert len(stored) == 2
    sizes = sorted(
        len(pd.read_parquet(d / "train.parquet")) + len(pd.read_parquet(d / "test.parquet"))
        for d in stored
    )
    assert sizes == [300, 400]
    assert all("Population" not in pd.read_parquet(d / "test.parquet").columns for d in stored)


# Values scikit-learn accepts, but a fit cannot use: more neighbours than training rows.
FAILS_AT_FIT = ["model=knn", "model.weights=uniform"]


def test_a_failing_trial_does_not_stop_the_others(workdir: Path) -> None:
    result = run_sweeper([*FAILS_AT_FIT, "model.n_neighbors=5,1000,10", "-m"], cwd=workdir)
    assert result.returncode == 1
    assert "knn n_neighbors=1000" in result.stdout and "Expected n_neighbors" in result.stdout
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    status = {r.info.run_name: r.info.status for r in sweep.children}
    assert status == {
        "knn n_neighbors=5": "FINISHED",
        "knn n_neighbors=1000": "FAILED",
        "knn n_neighbors=10": "FINISHED",
    }
    failed = sweep.by_name()["knn n_neighbors=1000"]
    assert failed.data.tags["error.type"] == "ValueError"
    assert sweep.parent.data.metrics["n_failed"] == 1


def test_a_large_sweep_prints_a_bounded_log_and_one_record_per_trial(workdir: Path) -> None:
    """Past 200 trials a sweep logs its progress, its first 20 failures and its last trial, not
    a line per trial; past sweep.job_folders trials, Hydra's per-job folders are one line each
    in jobs.jsonl. Every trial is still a run in MLflow. (knn fails past 309 neighbours: the
    training rows.)"""
    args = [*FAILS_AT_FIT, "model.n_neighbors=range(100,400)", "eval.cv=0"]
    result = run_sweeper([*args, "sweep.job_folders=100", "-m"], cwd=workdir)
    assert result.returncode == 1  # 90 trials failed
    lines = (result.stdout + result.stderr).splitlines()
    assert len(lines) < 100, "\n".join(lines)
    trial_lines = [line for line in lines if "] [" in line and "/300] knn" in line]
    assert len(trial_lines) == 21, trial_lines  # 20 failures, the last trial
    assert all("FAILED" in line for line in trial_lines[:20])
    assert trial_lines[-1].split("] ")[-2].endswith("[300/300")
    assert sum("More trials failed" in line for line in lines) == 1
    assert sum(line.startswith("FAILED: knn") for line in lines) == 20  # the table's list
    assert "… and 70 more not scored: results/results.csv under the sweep's run" in result.stdout
    assert sum("A line per trial is printed for sweeps of up to 200" in line for line in lines) == 1
    [sweep_dir] = workdir.glob("multirun/*/*")
    assert not list(sweep_dir.glob("*/.hydra"))
    jobs = [json.loads(line) for line in (sweep_dir / "jobs.jsonl").read_text().splitlines()]
    assert sorted(job["num"] for job in jobs) == list(range(300))
    first = {*FAILS_AT_FIT, "model.n_neighbors=100", "eval.cv=0", "sweep.job_folders=100"}
    assert first in [set(job["overrides"]) for job in jobs]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    status = Counter(r.info.status for r in sweep.children)
    assert status == {"FINISHED": 210, "FAILED": 90}


def test_single_run_is_a_sweep_of_one(workdir: Path) -> None:
    result = run_sweeper(["model=ridge", "model.alpha=3"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    [run] = sweep.children
    assert run.data.params["model.alpha"] == "3"


def test_hydra_conventions_still_work(empty_workdir: Path) -> None:
    workdir = empty_workdir
    job = run_sweeper(["model=lasso", "model.alpha=0.5", "--cfg", "job"], cwd=workdir)
    assert job.returncode == 0
    assert "_target_: sklearn.linear_model.Lasso" in job.stdout and "alpha: 0.5" in job.stdout
    help_text = run_sweeper(["--help"], cwd=workdir).stdout
    models = sorted(p.stem for p in (Path(__file__).parent.parent / "conf" / "model").iterdir())
    assert f"model: {', '.join(models)}" in help_text
    assert not (workdir / "mlflow.db").exists()  # neither ran anything


def test_overrides_after_the_multirun_flag_count(workdir: Path) -> None:
    result = run_sweeper(["model=lasso", "-m", "model.alpha=0.5,2"], cwd=workdir)
    assert result.returncode == 0, result.stderr
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert sorted(sweep.by_name()) == ["lasso alpha=0.5", "lasso alpha=2"]


def test_a_grid_axis_from_the_command_line_and_trials_by_value(workdir: Path) -> None:
    rf = run_sweeper(["model=rf", "model.n_estimators=10", "-m"], cwd=workdir)
    assert rf.returncode == 0, rf.stderr
    spelled = run_sweeper(["model=lasso", "model.alpha=1.0", "-m"], cwd=workdir)
    by_value = run_sweeper(["model=lasso", "model.alpha=1", "-m"], cwd=workdir)
    assert spelled.returncode == 0 and by_value.returncode == 0, by_value.stderr
    first, lasso, again = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    # n_estimators replaced only its own axis: rf's three depths stay.
    assert sorted(first.by_name()) == [f"rf max_depth={d}" for d in (4, 8, "null")]
    assert {r.data.params["model.n_estimators"] for r in first.children} == {"10"}
    # alpha=1 is the trial alpha=1.0 finished: reused, not trained again.
    assert [r.info.run_name for r in lasso.children] == ["lasso"]
    assert again.children == [] and again.parent.data.metrics["n_reused"] == 1
