"""backend=argo at scale: what Argo keeps of a sweep does not grow with its trials. (Trials some
sweep already finished get no pod: tests/test_argo_trigger.py, data landing twice.)"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

from support.argo import REMOTE
from support.mlflow_view import sweeps
from support.servers import S3Server, run_sweeper
from sweeper.planning.definition import Definition

KIB = 1024


def test_a_100000_trial_plan_step_outputs_kilobytes_and_at_most_1000_pods(
    tmp_path: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    """The plan step run for real against the S3 and MLflow servers, on a grid of 100,000
    forests whose estimated cost (up to 100,000 trees each) would ask for a pod per trial."""
    bucket = f"scale-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    experiment = f"scale-{bucket}"
    definition = Definition(
        overrides=(
            "model=rf",
            "model.n_estimators=range(1000,101000)",
            "model.max_depth=4",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={mlflow_server}",
            f"mlflow.experiment={experiment}",
        ),
        multirun=True,
    )
    sweep_id = f"sweeper-scale-{secrets.token_hex(2)}"
    outputs = tmp_path / "outputs"
    planned = run_sweeper(
        [
            "--sweep-id",
            sweep_id,
            "--outputs",
            str(outputs),
            "--trials-per-pod",
            "auto",
            "--definition",
            definition.encoded(),
        ],
        cwd=tmp_path,
        env=s3_server.env,
        module="sweeper.executors.argo.plan_step",
    )
    assert planned.returncode == 0, planned.stderr[-3000:]

    output = (outputs / "groups.json").read_bytes()
    assert len(output) < 64 * KIB  # what Argo keeps in the workflow's status
    [group] = json.loads(output)
    assert group["to_train"] == 100_000
    pods = sum(run["count"] for run in group["pods"])
    assert 500 < pods <= 1000, pods  # capped, not one pod per trial
    numbers = [run["first"] + i for run in group["pods"] for i in range(run["count"])]
    assert numbers == list(range(pods))

    # Each chunk is a plan of its own on storage; together they hold every trial once.
    fs = s3_server.fs()
    listed = fs.ls(f"{bucket}/store/sweeps/{sweep_id}/chunks")
    assert len(listed) == pods
    first, last = (
        json.loads(fs.cat(f"{bucket}/store/sweeps/{sweep_id}/chunks/{n}.json"))
        for n in (0, pods - 1)
    )
    assert first["parent_run_id"] and first["groups"][0]["id"] == group["group"]
    assert first["trials"][0]["model"]["n_estimators"] == 1000
    assert last["trials"][-1]["index"] == 99_999
    assert f"{pods} pod(s)" in planned.stdout and "100000 trials" in planned.stdout

    [sweep] = sweeps(mlflow_server, experiment)  # the sweep's run is open, its trials to come
    assert sweep.sweep_id == sweep_id and sweep.parent.data.params["n_trials"] == "100000"
    assert sweep.children == []


def test_trials_per_pod_is_a_number_or_auto(workdir: Path) -> None:
    """`argo.trials_per_pod` is a number or auto; anything else is one line before writing."""
    bad = run_sweeper(
        [
            "model=lasso",
            *REMOTE,
            "backend=argo",
            "argo.render_to=x.yaml",
            "argo.trials_per_pod=0",
            "-m",
        ],
        cwd=workdir,
    )
    assert bad.returncode == 1
    assert "argo.trials_per_pod=0 must be at least 1, or auto" in bad.stderr
    assert not (workdir / "x.yaml").exists()
