"""argo.trigger, argo.notify, argo.rbac and the metrics, as rendered: a WorkflowTemplate, an
Argo Events EventSource and Sensor, the accounts the pods need; each checked against its pinned
schema (the Workflows' and Argo Events') and the Pod Security "restricted" profile."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.argo import (
    EVENTS_SCHEMA,
    REMOTE,
    SCHEMA,
    check_structure,
    render,
    render_all,
    validate,
    validate_events,
)
from support.servers import run_sweeper

KEY_PATH = "notification.0.s3.object.key"  # the key in what a MinIO EventSource delivers
NIGHTLY = [
    "model=rf,lasso",
    "data=csv",
    "data.path=s3://bucket/incoming/seed.csv",
    "data.target=Sales",
    *REMOTE,
    "mlflow.experiment=Nightly Sales",
    "argo.trigger=s3://bucket/incoming/",
    "argo.env={AWS_ENDPOINT_URL:'http://minio.storage:9000'}",
    "argo.secrets=[s3]",
]


@pytest.fixture(scope="module")
def schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    return json.loads(SCHEMA.read_text()), json.loads(EVENTS_SCHEMA.read_text())


def test_a_trigger_renders_the_template_an_event_source_a_sensor_and_their_accounts(
    workdir: Path, schemas: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    argo_schema, events_schema = schemas
    extra = [
        "argo.schedule=0 2 * * *",
        "argo.notify=sweeper-webhook",
        "argo.rbac=true",
        "argo.service_account=sweeper-pods",
        "argo.trigger_per_minute=2",
        "-m",
    ]
    documents = render_all(workdir, [*NIGHTLY, *extra])
    kinds = [d["kind"] for d in documents]
    assert kinds == [
        "WorkflowTemplate",
        "CronWorkflow",
        "EventSource",
        "Sensor",
        *(["ServiceAccount", "Role", "RoleBinding"] * 2),
    ]
    template, cron, source, sensor = documents[:4]
    for manifest in (template, cron):
        validate(manifest, argo_schema)
    check_structure(template)
    validate_events(source, events_schema)
    validate_events(sensor, events_schema)
    name = template["metadata"]["name"]
    assert name.startswith("sweeper-nightly-sales-")  # a hash: the experiment had a space

    # The EventSource: MinIO's bucket notifications of objects created under the prefix, read
    # with the pods' Secret; no credential in it (render_all checks that too).
    [(event, watched)] = source["spec"]["minio"].items()
    assert watched["bucket"] == {"name": "bucket"}
    assert watched["filter"] == {"prefix": "incoming/", "suffix": ""}
    assert watched["endpoint"] == "minio.storage:9000" and watched["insecure"] is True
    pods = [source["spec"]["template"], sensor["spec"]["template"]]
    assert all(p["securityContext"]["runAsUser"] == 9731 for p in pods)  # not the root of the image
    assert watched["accessKey"] == {"name": "s3", "key": "AWS_ACCESS_KEY_ID"}
    assert watched["events"] == ["s3:ObjectCreated:*"]

    # The Sensor: that event submits a Workflow from the template, the object's key as its
    # data-key, at most argo.trigger_per_minute a minute.
    [dependency] = sensor["spec"]["dependencies"]
    assert (dependency["eventSourceName"], dependency["eventName"]) == (name, event)
    [trigger] = sensor["spec"]["triggers"]
    assert trigger["rateLimit"] == {"unit": "Minute", "requestsPerUnit": 2}
    action = trigger["template"]["argoWorkflow"]
    workflow = action["source"]["resource"]
    validate(workflow, argo_schema)  # the events schema leaves the resource open
    assert workflow["spec"]["workflowTemplateRef"] == {"name": name}
    [parameter] = action["parameters"]
    assert parameter["src"] == {"dependencyName": dependency["name"], "dataKey": KEY_PATH}
    parameters = workflow["spec"]["arguments"]["parameters"]
    index = int(parameter["dest"].split(".")[-2])
    assert parameter["dest"] == f"spec.arguments.parameters.{index}.value"
    assert parameters[index]["name"] == "data-key"
    # …which the template declares (empty by default) and hands to its plan step.
    declared = {p["name"]: p["value"] for p in template["spec"]["arguments"]["parameters"]}
    assert declared["data-key"] == ""
    plan = next(t for t in template["spec"]["templates"] if t["name"] == "plan")
    args = plan["container"]["args"]
    assert args[args.index("--data-key") + 1] == "{{workflow.parameters.data-key}}"
    assert args[args.index("--data-bucket") + 1] == "s3://bucket"

    # The accounts: the pods' may report step results and nothing else; the Sensor's may
    # create workflows and read this one template. No wildcard, no Secrets.
    accounts = documents[4:]
    roles = {r["metadata"]["name"]: r["rules"] for r in accounts if r["kind"] == "Role"}
    assert set(roles) == {"sweeper-pods", sensor["spec"]["template"]["serviceAccountName"]}
    assert template["spec"]["serviceAccountName"] == "sweeper-pods"
    assert roles["sweeper-pods"] == [
        {
            "apiGroups": ["argoproj.io"],
            "resources": ["workflowtaskresults"],
            "verbs": ["create", "patch"],
        }
    ]
    sensor_role = roles[sensor["spec"]["template"]["serviceAccountName"]]
    assert [(r["resources"], r["verbs"], r.get("resourceNames")) for r in sensor_role] == [
        (["workflows"], ["create", "get", "list"], None),  # argo submit, then its lookup
        (["workflowtemplates"], ["get"], [name]),
    ]
    for rules in roles.values():
        for rule in rules:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"]
            assert "secrets" not in rule["resources"]
    for binding in (b for b in accounts if b["kind"] == "RoleBinding"):
        [subject] = binding["subjects"]
        assert binding["roleRef"]["name"] == subject["name"] == binding["metadata"]["name"]

    # argo.notify: the exit handler is the summary, then the notify pod, whose webhook URL
    # comes from the Secret (no URL in the manifest).
    templates = {t["name"]: t for t in template["spec"]["templates"]}
    assert template["spec"]["onExit"] == "exit"
    tasks = {t["name"]: t for t in templates["exit"]["dag"]["tasks"]}
    assert tasks["summary"]["continueOn"] == {"failed": True, "error": True}
    assert tasks["notify"]["arguments"]["parameters"] == [
        {"name": "status", "value": "{{workflow.status}}"},
        {"name": "summary", "value": "{{tasks.summary.status}}"},
    ]
    [url] = [e for e in templates["notify"]["container"]["env"] if "valueFrom" in e]
    assert url == {
        "name": "SWEEPER_NOTIFY_URL",
        "valueFrom": {"secretKeyRef": {"name": "sweeper-webhook", "key": "url"}},
    }


def test_the_templates_emit_metrics_labelled_by_experiment(
    workdir: Path, schemas: tuple[dict[str, Any], dict[str, Any]]
) -> None:
    """The best score as a gauge labelled by experiment and metric, finished and failed trials
    as counters, the workflow's duration as Argo's realtime gauge: in a plain Workflow too."""
    workflow = render(workdir, ["model=lasso", *REMOTE, "mlflow.experiment=Nightly Sales", "-m"])
    validate(workflow, schemas[0])
    spec = workflow["spec"]
    experiment = workflow["metadata"]["labels"]["sweeper/experiment"]
    assert experiment.startswith("Nightly-Sales-")  # as a label value
    metrics = {m["name"]: m for m in spec["metrics"]["prometheus"]}
    duration = metrics["sweeper_workflow_duration_seconds"]
    assert duration["gauge"] == {"realtime": True, "value": "{{workflow.duration}}"}
    assert set(metrics) == {"sweeper_workflow_duration_seconds"}
    summary = next(t for t in spec["templates"] if t["name"] == "summary")
    emitted = {m["name"]: m for m in summary["metrics"]["prometheus"]}
    labels = {
        name: {label["key"]: label["value"] for label in m["labels"]} for name, m in emitted.items()
    }
    assert labels == {
        "sweeper_best_score": {
            "experiment": experiment,
            "metric": "{{outputs.parameters.metric}}",
        },
        "sweeper_sweep_failed": {"experiment": experiment},
        "sweeper_trials_finished_total": {"experiment": experiment},
        "sweeper_trials_failed_total": {"experiment": experiment},
    }
    assert emitted["sweeper_sweep_failed"]["gauge"] == {
        "realtime": False,
        "value": "{{outputs.parameters.sweep_failed}}",
    }
    assert emitted["sweeper_best_score"]["gauge"]["value"] == "{{outputs.parameters.best_score}}"
    assert emitted["sweeper_trials_failed_total"]["counter"] == {
        "value": "{{outputs.parameters.failed}}"
    }
    # Each value the summary writes as an output parameter, with a default if it could not.
    # (a summary that wrote none failed: sweep_failed's default is 1). The executed values:
    # tests/test_argo_trigger.py.
    outputs = {p["name"]: p["valueFrom"] for p in summary["outputs"]["parameters"]}
    assert set(outputs) == {"best_score", "metric", "finished", "failed", "sweep_failed"}
    assert all(v["path"] == f"/tmp/outputs/{k}" for k, v in outputs.items())
    assert outputs["sweep_failed"]["default"] == "1" and outputs["failed"]["default"] == "0"
    assert {m["labels"][0]["value"] for m in metrics.values()} == {experiment}


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            ["argo.trigger=bucket/incoming/"],
            "argo.trigger=bucket/incoming/ must be a bucket and prefix, e.g. s3://bucket/incoming/",
        ),
        (
            ["argo.env=null"],
            "argo.trigger needs the bucket's server: argo.trigger_endpoint=host:port, or "
            "AWS_ENDPOINT_URL in argo.env (MinIO's bucket notifications; AWS S3 has none)",
        ),
        (
            ["argo.secrets=[]"],
            "argo.trigger needs argo.secrets=[name]: the Secret whose AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY the EventSource reads the bucket's notifications with",
        ),
        (
            ["argo.rbac=true"],
            "argo.rbac needs argo.service_account=<name>: the ServiceAccount to make for the "
            "sweep's pods (their workflows run as it)",
        ),
        (
            ["argo.render_to=null", "argo.server=http://127.0.0.1:9"],
            "argo.trigger and argo.rbac make objects for kubectl apply: give "
            "argo.render_to=<file> and apply it",
        ),
    ],
)
def test_what_a_trigger_needs_is_said_in_one_line_and_nothing_is_written(
    workdir: Path, change: list[str], error: str
) -> None:
    target = workdir / "nightly.yaml"
    result = run_sweeper(
        [*NIGHTLY, "backend=argo", f"argo.render_to={target}", *change, "-m"], cwd=workdir
    )
    assert result.returncode == 1, result.stdout
    assert result.stderr.splitlines() == [error]
    assert "Traceback" not in result.stderr
    assert not target.exists()
