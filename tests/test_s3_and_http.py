"""Data and storage behind URLs: s3:// against moto's S3 server, http:// from a loopback server."""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.mlflow_view import sweeps
from support.servers import S3Server, data_file, free_port, run_sweeper, serving
from sweeper.core.records import TARGET_COLUMN


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    name = f"sweeps-{secrets.token_hex(4)}"
    s3_server.fs().mkdir(name)
    return name


def test_s3_data_and_storage(
    workdir: Path, s3_server: S3Server, bucket: str, mlflow_server: str
) -> None:
    fs = s3_server.fs()
    fs.put(str(data_file("carseats.csv")), f"{bucket}/in/carseats.csv")
    args = [
        "data=csv",
        f"data.path=s3://{bucket}/in/carseats.csv",
        "data.target=Sales",
        f"storage.root=s3://{bucket}/store",
        "model=rf,lasso",
        f"mlflow.tracking_uri={mlflow_server}",
        "mlflow.experiment=s3",
        "-m",
    ]
    first = run_sweeper(args, cwd=workdir, env=s3_server.env)
    assert first.returncode == 0, first.stderr

    [key] = fs.ls(f"{bucket}/store/preprocess")
    folds = [f"fold-{i}-{part}.parquet" for i in range(5) for part in ("fit", "held_out")]
    assert sorted(Path(p).name for p in fs.ls(key)) == sorted(
        [
            *folds,  # eval.cv=5: each fold preprocessed apart
            "meta.json",
            "test.parquet",
            "test_raw.parquet",
            "train.parquet",
            "transformer.skops",
        ]
    )
    train = pd.read_parquet(io.BytesIO(fs.cat(f"{key}/train.parquet")))[TARGET_COLUMN]
    test = pd.read_parquet(io.BytesIO(fs.cat(f"{key}/test.parquet")))[TARGET_COLUMN]
    baseline = float(np.mean((test - train.mean()) ** 2))

    [sweep] = sweeps(mlflow_server, "s3")
    assert len(sweep.children) == 9
    assert all(r.data.metrics["mse"] < baseline for r in sweep.children)
    assert {r.data.params["data.path"] for r in sweep.children} == {
        f"s3://{bucket}/in/carseats.csv"
    }
    records = fs.ls(f"{bucket}/store/sweeps/{sweep.sweep_id}")
    assert sorted(Path(p).name for p in records) == ["plan.json", "results.json"]
    results = json.loads(fs.cat(f"{bucket}/store/sweeps/{sweep.sweep_id}/results.json"))
    assert results["trials"][0]["metrics"]["mse"] == sweep.parent.data.metrics["best_mse"]

    written = fs.info(f"{key}/meta.json")["LastModified"]
    second = run_sweeper(args, cwd=workdir, env=s3_server.env)
    assert second.returncode == 0, second.stderr
    assert "reused" in second.stdout + second.stderr
    assert fs.ls(f"{bucket}/store/preprocess") == [key]
    assert fs.info(f"{key}/meta.json")["LastModified"] == written


@contextlib.contextmanager
def http_server(folder: Path, log: Path) -> Iterator[str]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(folder),
    ]
    url = f"http://127.0.0.1:{port}"
    with serving(command, url, log):
        yield url


def test_http_data(workdir: Path, tmp_path: Path) -> None:
    with http_server(data_file("carseats.csv").parent, tmp_path / "http.log") as url:
        result = run_sweeper(
            ["data=csv", f"data.path={url}/carseats.csv", "data.target=Sales", "model=ridge", "-m"],
            cwd=workdir,
        )
    assert result.returncode == 0, result.stderr
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert len(sweep.children) == 3


def test_missing_s3_object_is_named(workdir: Path, s3_server: S3Server, bucket: str) -> None:
    result = run_sweeper(
        ["data=csv", f"data.path=s3://{bucket}/nope.csv", "data.target=y", "model=ridge", "-m"],
        cwd=workdir,
        env=s3_server.env,
    )
    assert result.returncode != 0
    assert f"data.path s3://{bucket}/nope.csv does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_steps_are_plain_commands(tmp_path: Path, mlflow_server: str) -> None:
    """What an Argo pod runs: preprocess, then train, each a process of its own."""
    from sweeper.tracking.tracker import Tracker

    parent = Tracker(mlflow_server, "steps").start_sweep("steps-sweep", {})
    data = {"path": str(data_file("carseats.csv")), "target": "Sales", "drop": ["Population"]}
    pre = subprocess.run(
        [
            sys.executable,
            "-m",
            "steps.preprocess",
            "--data",
            json.dumps(data),
            "--storage-root",
            str(tmp_path / "store"),
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    split = json.loads(pre.stdout)
    assert split["url"] == str(tmp_path / "store" / "preprocess" / split["key"])
    name = "lasso alpha=0.1; echo $(touch pwned) 'quoted'"  # reaches the step verbatim
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "steps.train",
            "--split",
            split["url"],
            "--model",
            json.dumps({"_target_": "sklearn.linear_model.Lasso", "alpha": 0.1}),
            "--tracking-uri",
            mlflow_server,
            "--experiment",
            "steps",
            "--parent-run-id",
            parent,
            "--sweep-id",
            "steps-sweep",
            "--name",
            name,
            "--params",
            json.dumps({"model": "lasso"}),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr
    printed = json.loads(train.stdout)
    [sweep] = sweeps(mlflow_server, "steps")
    [child] = sweep.children
    assert child.info.run_name == name
    assert child.data.metrics["mse"] == pytest.approx(printed["mse"])
    assert child.data.tags["sweep_id"] == "steps-sweep"
    assert not (tmp_path / "pwned").exists()

    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "steps.preprocess",
            "--data",
            json.dumps({**data, "target": "x"}),
            "--storage-root",
            str(tmp_path / "store"),
        ],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: data.target 'x' is not a column")
