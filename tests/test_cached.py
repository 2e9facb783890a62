"""A sweep whose every trial is already finished answers from MLflow: nothing is fitted, checked
or logged again, no worker starts, and it needs no scikit-learn (a stand-in package that refuses
to load takes its place for the second command, in the sweeping process and the fork server)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from mlflow.tracking import MlflowClient

from support.mlflow_view import sweeps
from support.servers import data_file, run_sweeper


def test_a_cached_sweep_answers_without_scikit_learn(workdir: Path, tmp_path: Path) -> None:
    seats = [
        "data=csv",
        f"data.path={data_file('carseats.csv')}",
        "data.target=Sales",
        "model=ridge,lasso",
        "-m",
    ]
    first = run_sweeper(seats, cwd=workdir)
    assert first.returncode == 0, first.stderr[-3000:]
    refusing = tmp_path / "refusing" / "sklearn"
    refusing.mkdir(parents=True)
    (refusing / "__init__.py").write_text("raise ImportError('scikit-learn was imported')\n")
    path = os.pathsep.join(p for p in (str(refusing.parent), os.environ.get("PYTHONPATH")) if p)

    again = run_sweeper(seats, cwd=workdir, env={"PYTHONPATH": path})

    assert again.returncode == 0, again.stderr[-3000:]
    assert "scikit-learn was imported" not in again.stdout + again.stderr
    assert "6 trials, 1 preprocess group(s), finished before, no workers" in again.stdout
    assert re.search(r"preprocess group\(s\), \d+ workers;", first.stdout)  # it trained
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    trained, cached = sweeps(uri, "sweeper")
    assert cached.children == []  # no run of its own: every trial is the first sweep's
    assert cached.parent.data.metrics["n_reused"] == len(trained.children) == 6
    assert cached.parent.info.status == "FINISHED"
    for metric in ("best_cv_mse", "best_mse"):
        assert cached.parent.data.metrics[metric] == trained.parent.data.metrics[metric]
    # The winner's model is the one the first sweep logged, linked again.
    client = MlflowClient(uri)
    assert (
        client.get_run(cached.parent.info.run_id).data.tags["best_model_uri"]
        == client.get_run(trained.parent.info.run_id).data.tags["best_model_uri"]
    )
    assert again.stdout.count("│ reused") == 6
