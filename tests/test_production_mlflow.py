"""A sweep against the MLflow a team runs in production: PostgreSQL behind `mlflow server`,
artifacts proxied to S3, basic-auth with the credentials in the environment (docs/mlflow.md,
"Production MLflow"). A local sweep and an executed Argo workflow each log every trial once, and
the best model lands in the bucket."""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.argo import render
from support.argo_runner import ArgoRunner, base_env
from support.mlflow_view import SweepRuns, sweeps
from support.production import ProductionMlflow
from support.servers import S3Server, run_sweeper


@pytest.fixture
def as_client(production_mlflow: ProductionMlflow) -> Iterator[None]:
    """This process reads the server back as a user would: credentials from the environment."""
    before = {k: os.environ.get(k) for k in production_mlflow.env}
    os.environ.update(production_mlflow.env)
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def assert_each_trial_once(sweep: SweepRuns, trials: int) -> None:
    keys = Counter(r.data.tags["trial_key"] for r in sweep.children if r.info.status == "FINISHED")
    assert len(keys) == trials and set(keys.values()) == {1}, keys
    assert len(sweep.children) == trials
    assert sweep.parent.info.status == "FINISHED"


def models_in_bucket(s3_server: S3Server, bucket: str) -> list[str]:
    return [path for path in s3_server.fs().find(bucket) if path.endswith("/MLmodel")]


def test_a_local_sweep_against_production_mlflow(
    workdir: Path, production_mlflow: ProductionMlflow, s3_server: S3Server, as_client: None
) -> None:
    experiment = f"local-{secrets.token_hex(3)}"
    args = [
        "model=lasso,ridge",
        "model.alpha=0.1,1,10",
        f"mlflow.experiment={experiment}",
        f"mlflow.tracking_uri={production_mlflow.uri}",
        "-m",
    ]
    wrong = {**production_mlflow.env, "MLFLOW_TRACKING_PASSWORD": "not-it"}
    refused = run_sweeper(args, cwd=workdir, env=wrong)  # the server says no, in one line
    assert refused.returncode == 1
    assert f"MLflow at {production_mlflow.uri} cannot be used" in refused.stderr
    assert "Traceback" not in refused.stderr

    swept = run_sweeper(args, cwd=workdir, env=production_mlflow.env)
    assert swept.returncode == 0, swept.stderr[-3000:]
    [sweep] = sweeps(production_mlflow.uri, experiment)
    assert_each_trial_once(sweep, 6)
    assert sweep.parent.data.tags["best_model_uri"]
    assert models_in_bucket(s3_server, production_mlflow.bucket)  # proxied to S3 by the server


def test_an_argo_workflow_against_production_mlflow(
    workdir: Path, production_mlflow: ProductionMlflow, s3_server: S3Server, as_client: None
) -> None:
    bucket = f"prod-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    experiment = f"argo-{bucket}"
    before = set(models_in_bucket(s3_server, production_mlflow.bucket))
    manifest = render(
        workdir,
        [
            "model=lasso",
            "model.alpha=0.1,1,3,10,30,100",
            "argo.trials_per_pod=2",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={production_mlflow.uri}",
            f"mlflow.experiment={experiment}",
            *s3_server.pod_overrides(),
            "argo.secrets=[s3,mlflow]",
            "-m",
        ],
    )
    assert production_mlflow.env["MLFLOW_TRACKING_PASSWORD"] not in str(manifest)
    credentials = {**s3_server.pod_secrets(), "mlflow": production_mlflow.env}
    runner = ArgoRunner(manifest, env=base_env(), secrets=credentials)
    assert runner.run() == "Succeeded", [p.stderr[-2000:] for p in runner.pods if p.returncode]
    assert [p.template for p in runner.pods].count("train") == 3  # side by side

    [sweep] = sweeps(production_mlflow.uri, experiment)
    assert_each_trial_once(sweep, 6)
    assert sweep.parent.data.tags["best_model_uri"]
    assert set(models_in_bucket(s3_server, production_mlflow.bucket)) - before
