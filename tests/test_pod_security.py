"""Rendered manifests a platform team admits: Pod Security "restricted" on every pod (checked by
`support.pod_security`, which `render` runs on every manifest the tests render) and the lifecycle
defaults a shared cluster expects."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from support.argo import SCHEMA, render, validate
from support.pod_security import violations
from support.servers import run_sweeper

REMOTE = ["storage.root=s3://bucket/sweeps", "mlflow.tracking_uri=http://mlflow.ml.svc:5000"]


def pods(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    spec = manifest["spec"].get("workflowSpec", manifest["spec"])
    return [t for t in spec["templates"] if "container" in t]


def test_every_pod_is_restricted_and_the_lifecycle_has_defaults(workdir: Path) -> None:
    argo_schema = json.loads(SCHEMA.read_text())
    workflow = render(workdir, ["model=rf,lasso", *REMOTE, "-m"])
    cron = render(workdir, ["model=rf,lasso", *REMOTE, "argo.schedule=0 2 * * *", "-m"])
    for manifest in (workflow, cron):
        validate(manifest, argo_schema)
        spec = manifest["spec"].get("workflowSpec", manifest["spec"])
        assert spec["securityContext"] == {
            "runAsNonRoot": True,
            "runAsUser": 10001,
            "runAsGroup": 10001,
            "fsGroup": 10001,
            "seccompProfile": {"type": "RuntimeDefault"},
        }
        assert spec["podGC"] == {"strategy": "OnPodSuccess"}
        assert spec["ttlStrategy"] == {
            "secondsAfterSuccess": 604800,
            "secondsAfterFailure": 1209600,
        }
        assert (spec["activeDeadlineSeconds"], spec["parallelism"]) == (86400, 20)
        labels = spec["podMetadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == "sweeper"
        assert labels["sweeper/experiment"] == "sweeper"
        assert spec["volumes"] == [{"name": "tmp", "emptyDir": {}}]
        assert [t["name"] for t in pods(manifest)] == ["plan", "preprocess", "train", "summary"]
        for template in pods(manifest):
            container = template["container"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert container["imagePullPolicy"] == "Always"  # sweeper:latest moves
            # A pod lost late is still retried: no cap counted from the first attempt.
            assert "maxDuration" not in template["retryStrategy"]["backoff"]
    assert pods(workflow)[0]["container"]["resources"]["requests"] == {
        "cpu": "500m",
        "memory": "1Gi",
    }
    assert "sweeper/sweep-id" in workflow["spec"]["podMetadata"]["labels"]
    pinned = render(
        workdir, ["model=lasso", *REMOTE, "argo.image=registry.example/sweeper:1.2", "-m"]
    )
    assert {t["container"]["imagePullPolicy"] for t in pods(pinned)} == {"IfNotPresent"}


def test_the_checker_sees_what_the_profile_forbids(workdir: Path) -> None:
    manifest = render(workdir, ["model=lasso", *REMOTE, "-m"])
    assert violations(manifest) == []
    loose = copy.deepcopy(manifest)
    train = next(t for t in loose["spec"]["templates"] if t["name"] == "train")
    del train["container"]["securityContext"]["capabilities"]
    train["container"]["securityContext"]["runAsUser"] = 0
    loose["spec"]["volumes"].append({"name": "host", "hostPath": {"path": "/"}})
    del loose["spec"]["securityContext"]["seccompProfile"]
    found = violations(loose)
    assert "template train: capabilities do not drop ALL" in found
    assert "template train: runs as user 0" in found
    assert not any(v.startswith("template plan: capabilities") for v in found)
    assert "template plan: volume host is ['hostPath']" in found
    assert any("seccompProfile is None" in v for v in found)


def test_root_is_refused(workdir: Path) -> None:
    done = run_sweeper(
        [
            "model=lasso",
            *REMOTE,
            "backend=argo",
            "argo.render_to=x.yaml",
            "argo.run_as_user=0",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 1
    assert "argo.run_as_user and argo.run_as_group must be a user other than root" in done.stderr
    assert not (workdir / "x.yaml").exists()


def test_platform_pass_throughs_and_one_summary_per_experiment(workdir: Path) -> None:
    manifest = render(
        workdir,
        [
            "model=lasso",
            *REMOTE,
            "argo.node_selector={pool: ml}",
            "argo.priority_class=batch",
            "argo.tolerations=[{key: spot, operator: Exists, effect: NoSchedule}]",
            "argo.image_pull_secrets=[registry]",
            "mlflow.experiment=Nightly",
            "-m",
        ],
    )
    spec = manifest["spec"]
    assert spec["nodeSelector"] == {"pool": "ml"} and spec["podPriorityClassName"] == "batch"
    assert spec["tolerations"] == [{"key": "spot", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["imagePullSecrets"] == [{"name": "registry"}]
    validate(manifest, json.loads(SCHEMA.read_text()))
    summary = next(t for t in spec["templates"] if t["name"] == "summary")
    [mutex] = summary["synchronization"]["mutexes"]
    assert mutex["name"].startswith("sweeper-nightly")  # the experiment's, as a DNS label
    assert all("synchronization" not in t for t in spec["templates"] if t is not summary)


def test_a_password_in_the_tracking_uri_is_refused_and_the_cron_hint_is_argo_cron(
    workdir: Path,
) -> None:
    done = run_sweeper(
        [
            "model=lasso",
            "storage.root=s3://bucket/sweeps",
            "backend=argo",
            "mlflow.tracking_uri=http://me:hunter2@mlflow.ml.svc:5000",
            "argo.render_to=x.yaml",
            "-m",
        ],
        cwd=workdir,
    )
    assert done.returncode == 1 and "hunter2" not in done.stdout + done.stderr
    assert (
        "mlflow.tracking_uri=http://mlflow.ml.svc:5000 holds credentials, which a manifest "
        "would carry in plain text: give them as MLFLOW_TRACKING_USERNAME and "
        "MLFLOW_TRACKING_PASSWORD in a Secret named in argo.secrets"
    ) in done.stderr
    cron = run_sweeper(
        [
            "model=lasso",
            *REMOTE,
            "backend=argo",
            "argo.schedule=0 2 * * *",
            "argo.render_to=cron.yaml",
            "-m",
        ],
        cwd=workdir,
    )
    assert cron.returncode == 0, cron.stderr
    assert "(argo cron create it, or kubectl apply -f it)" in cron.stdout
