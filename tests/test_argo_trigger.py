"""Executed: new data lands in a bucket, the Sensor's trigger submits the sweep's
WorkflowTemplate with it, the workflow runs to its end (pods as processes, S3 on moto's server,
MLflow's tracking server), its summary promotes or keeps the champion, and the exit hook tells
a webhook on loopback of a new champion or a failure."""

from __future__ import annotations

import contextlib
import secrets
from pathlib import Path

import pandas as pd
import pytest
import requests
from mlflow import MlflowClient

from support.argo import ExecutingArgo, render_all
from support.argo_runner import base_env
from support.fake_argo import load_swagger, serve
from support.mlflow_view import sweeps
from support.sensor_runner import SensorRunner, minio_event
from support.servers import SHARED_DATA, S3Server, free_port
from support.webhook import webhook
from sweeper.executors.argo import notify_step


def test_new_data_in_the_bucket_runs_the_sweep_and_the_same_data_again_trains_nothing(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    bucket = f"landing-{secrets.token_hex(3)}"
    fs = s3_server.fs()
    fs.mkdir(bucket)
    experiment, registered = f"triggered-{bucket}", f"seats-{bucket}"
    template, source, sensor = render_all(
        workdir,
        [
            "model=lasso",
            "model.alpha=1,2",
            "argo.trials_per_pod=1",
            "data=csv",
            f"data.path=s3://{bucket}/incoming/seed.csv",
            "data.target=Sales",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={mlflow_server}",
            f"mlflow.experiment={experiment}",
            f"mlflow.register_best={registered}",
            f"argo.trigger=s3://{bucket}/incoming/",
            *s3_server.pod_overrides(),
            "argo.notify=webhook",
            "-m",
        ],
    )
    name = template["metadata"]["name"]
    [event] = source["spec"]["minio"]

    def landed(key: str, table: pd.DataFrame) -> dict[str, object]:
        """`table` put at `key`, and the event the EventSource delivers for it."""
        with fs.open(f"{bucket}/{key}", "wb") as out:
            table.to_csv(out, index=False)
        info = fs.info(f"{bucket}/{key}")
        return minio_event(bucket, key, info["size"], info["ETag"])

    seats = pd.read_csv(SHARED_DATA / "carseats.csv")
    with webhook() as hook:
        fake = ExecutingArgo(
            load_swagger(SHARED_DATA.parent),
            pod_env=base_env(),
            pod_secrets={
                "s3": {k: v for k, v in s3_server.env.items() if "KEY" in k},
                "webhook": {"url": hook.url},
            },
        )
        with contextlib.contextmanager(serve)(fake) as argo:
            fake.templates[name] = template  # applied with kubectl, as a platform's GitOps does

            namespace = template["metadata"]["namespace"]

            def submit(workflow: dict[str, object]) -> str:
                made = requests.post(
                    f"{argo.url}/api/v1/workflows/{namespace}",
                    json={"namespace": namespace, "workflow": workflow},
                    headers={"Authorization": f"Bearer {argo.token}"},
                    timeout=30,
                )
                made.raise_for_status()
                return str(made.json()["metadata"]["name"])

            sensor_pod = SensorRunner(sensor, submit)
            source_name = source["metadata"]["name"]

            def run(key: str, table: pd.DataFrame) -> str:
                [started] = sensor_pod.deliver(source_name, event, landed(key, table))
                return started

            # Tonight's data lands (a space in its key: URL-encoded in the event).
            first = run("incoming/sales 2026-12-05.csv", seats)
            assert fake.phases[first].result(timeout=600) == "Succeeded"
            # The same bytes again under another key: nothing to train.
            second = run("incoming/sales 2026-12-06.csv", seats)
            assert fake.phases[second].result(timeout=600) == "Succeeded"
            # A table without the target, run by a person from the template as `argo submit
            # --from workflowtemplate/NAME -p data-key=…` posts it: refused by the plan step.
            landed("incoming/sales broken.csv", seats.drop(columns=["Sales"]))
            by_hand = requests.post(
                f"{argo.url}/api/v1/workflows/{namespace}/submit",
                json={
                    "namespace": namespace,
                    "resourceKind": "workflowtemplate",
                    "resourceName": name,
                    "submitOptions": {"parameters": ["data-key=incoming/sales broken.csv"]},
                },
                headers={"Authorization": f"Bearer {argo.token}"},
                timeout=30,
            )
            by_hand.raise_for_status()
            broken = by_hand.json()["metadata"]["name"]
            assert fake.phases[broken].result(timeout=600) == "Failed"
            # An object removed is not new data: the Sensor ignores it. (Objects outside the
            # prefix never reach it: the EventSource filters them.)
            gone = landed("incoming/sales 2026-12-05.csv", seats)
            gone["notification"][0]["eventName"] = "s3:ObjectRemoved:Delete"  # type: ignore[index]
            assert sensor_pod.deliver(source_name, event, gone) == []

        runners = fake.runners
        first_pods = [p.template for p in runners[first].pods]
        assert first_pods.count("train") == 2  # a pod each, side by side
        assert first_pods[-2:] == ["summary", "notify"]
        assert [p.template for p in runners[second].pods] == [
            "plan",
            "preprocess",
            "summary",
            "notify",
        ]
        [plan] = [p for p in runners[second].pods if p.template == "plan"]
        assert (
            plan.argv[plan.argv.index("--data-key") + 1] == "incoming%2Fsales+2026-12-06.csv"
        )  # as Go QueryEscapes it
        assert "2 trials in 1 group(s); 0 to train in 0 pod(s), 2 finished before" in plan.stdout
        assert "lasso alpha=2" in runners[second].pods[-2].stdout  # its summary ranks them
        # What each summary emitted as metrics: the best score, trials trained (the second night
        # trained none), and whether the sweep failed.
        emitted = [
            next(p.outputs for p in runners[w].pods if p.template == "summary")
            for w in (first, second, broken)
        ]
        assert [(e["finished"], e["failed"], e["sweep_failed"]) for e in emitted] == [
            ("2", "0", "0"),
            ("0", "0", "0"),
            ("0", "0", "1"),
        ]
        assert emitted[0]["metric"] == "cv_mse" and emitted[2]["best_score"] == "NaN"
        [refused] = [p for p in runners[broken].pods if p.template == "plan"]
        assert refused.returncode != 0 and "Sales" in refused.stderr

        # The webhook heard of the first night's new champion and of the failure, not of the
        # night that changed nothing.
        promoted, failed = hook.received
    client = MlflowClient(mlflow_server)
    one, two = sweeps(mlflow_server, experiment)
    assert one.parent.data.tags["sweep_id"] == first and two.parent.data.tags["sweep_id"] == second
    # The first read the object that landed (its dataset input's source); the second the same
    # bytes, so the split stored from the first (the same digest).
    [seen] = client.get_run(one.parent.info.run_id).inputs.dataset_inputs
    assert seen.dataset.source == f'{{"uri": "s3://{bucket}/incoming/sales 2026-12-05.csv"}}'
    [again] = client.get_run(two.parent.info.run_id).inputs.dataset_inputs
    assert again.dataset.digest == seen.dataset.digest
    # Every trial FINISHED once, in the first sweep; the second reused them and ranks them.
    assert sorted(r.info.status for r in one.children) == ["FINISHED"] * 2
    assert two.children == [] and two.parent.data.metrics["n_reused"] == 2
    assert two.parent.data.metrics["best_cv_mse"] == one.parent.data.metrics["best_cv_mse"]
    assert two.parent.info.status == "FINISHED" and two.parent.data.tags["best_model_uri"]
    champion = client.get_model_version_by_alias(registered, "champion")
    assert champion.version == "1"
    best = min(one.children, key=lambda r: r.data.metrics["cv_mse"])
    assert champion.run_id == best.info.run_id
    assert two.parent.data.tags["registry"].startswith(f"Registry: kept {registered} version 1")

    assert promoted["workflow"] == first and promoted["status"] == "Succeeded"
    assert promoted["promoted"] is True and promoted["failed"] == 0 and promoted["finished"] == 2
    assert promoted["best"].startswith(f"{best.info.run_name} (cv_mse ")
    assert float(emitted[0]["best_score"]) == best.data.metrics["cv_mse"]
    assert promoted["registry"] == one.parent.data.tags["registry"]
    experiment_id = one.parent.info.experiment_id
    assert promoted["run"] == (
        f"{mlflow_server}/#/experiments/{experiment_id}/runs/{one.parent.info.run_id}"
    )
    assert failed == {"workflow": broken, "status": "Failed"}


def test_a_webhook_out_of_reach_fails_the_hook_and_names_only_its_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The URL is the webhook's credential (its token in the path): never in a log."""
    plan = tmp_path / "sweeps" / "sweeper-x" / "plan.json"  # no summary's notice beside it
    monkeypatch.setenv("SWEEPER_NOTIFY_URL", f"http://127.0.0.1:{free_port()}/hooks/T0K3N")
    args = ["--plan", str(plan), "--workflow", "sweeper-x", "--status", "Error"]
    assert notify_step.main(args) == 1
    said = capsys.readouterr()
    assert said.err == "error: could not notify the webhook at 127.0.0.1: ConnectionError\n"
    assert "T0K3N" not in said.out + said.err


def test_a_failed_summary_is_told_as_a_failure_and_fails_the_hook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workflow's status is its steps'; a summary that failed after them (its store was
    out) is a failed sweep: told so, and the hook fails, so the workflow does too."""
    plan = tmp_path / "sweeps" / "sweeper-y" / "plan.json"
    with webhook() as hook:
        monkeypatch.setenv("SWEEPER_NOTIFY_URL", hook.url)
        args = ["--plan", str(plan), "--workflow", "sweeper-y", "--status", "Succeeded"]
        assert notify_step.main([*args, "--summary", "Failed"]) == 1
        assert hook.received == [{"workflow": "sweeper-y", "status": "Failed"}]
        # Both succeeded and no new champion (no notice says so): nothing sent.
        assert notify_step.main([*args, "--summary", "Succeeded"]) == 0
        assert len(hook.received) == 1
