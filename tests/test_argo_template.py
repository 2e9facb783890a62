"""argo.template=true: the sweep as a WorkflowTemplate a platform keeps in Git, and with
argo.schedule a CronWorkflow that runs it by reference; both checked against Argo's schema and
the Pod Security "restricted" profile (support.argo.render_all)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest

from support.argo import REMOTE, SCHEMA, check_structure, render, render_all, validate
from support.argo_runner import ArgoRunner, base_env
from support.mlflow_view import sweeps
from support.servers import S3Server
from sweeper.planning.definition import Definition


@pytest.fixture(scope="module")
def argo_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def _definition_arguments(manifest: dict[str, Any]) -> list[str]:
    plan = next(t for t in manifest["spec"]["templates"] if t["name"] == "plan")
    args: list[str] = plan["container"]["args"]
    return args[args.index("--definition") + 1 :][:1]


def test_a_template_carries_the_definition_as_its_parameters_default(
    workdir: Path, argo_schema: dict[str, Any]
) -> None:
    args = ["model=rf,lasso", *REMOTE, "mlflow.experiment=nightly", "-m"]
    [template] = render_all(workdir, [*args, "argo.template=true"])
    validate(template, argo_schema)
    check_structure(template)
    assert template["kind"] == "WorkflowTemplate"
    assert template["metadata"]["name"] == "sweeper-nightly"
    assert _definition_arguments(template) == ["{{workflow.parameters.definition}}"]
    [parameter] = template["spec"]["arguments"]["parameters"]
    assert parameter["name"] == "definition"
    # Its default is the definition the same command submits as a Workflow.
    workflow = render(workdir, args)
    assert parameter["value"] == _definition_arguments(workflow)[0]
    decoded = Definition.decoded(parameter["value"])
    assert decoded.overrides == Definition.decoded(_definition_arguments(workflow)[0]).overrides
    # A run's name is Argo's: no sweep-id label fixed in the template.
    assert "sweeper/sweep-id" not in template["spec"]["podMetadata"]["labels"]


def test_a_scheduled_template_is_run_by_a_cron_workflow_that_references_it(
    workdir: Path, argo_schema: dict[str, Any]
) -> None:
    template, cron = render_all(
        workdir,
        [
            "model=lasso",
            *REMOTE,
            "argo.template=true",
            "argo.schedule=0 2 * * *",
            "mlflow.experiment='Nightly Sales!'",
            "-m",
        ],
    )
    validate(template, argo_schema)
    validate(cron, argo_schema)
    assert [template["kind"], cron["kind"]] == ["WorkflowTemplate", "CronWorkflow"]
    spec = cron["spec"]
    assert spec["workflowSpec"]["workflowTemplateRef"] == {"name": template["metadata"]["name"]}
    assert "templates" not in spec["workflowSpec"]  # the sweep is the template's alone
    assert spec["schedules"] == ["0 2 * * *"] and spec["concurrencyPolicy"] == "Forbid"
    assert cron["metadata"]["namespace"] == template["metadata"]["namespace"]


def test_the_cron_runs_the_template_and_a_run_may_give_another_definition(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    """Executed: the nightly CronWorkflow's run resolves its workflowTemplateRef and sweeps the
    template's default definition; a Workflow a person submits from the template with another
    definition (`argo submit --from workflowtemplate/… -p definition=…`) sweeps that one."""
    bucket = f"argo-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    remote = [
        f"storage.root=s3://{bucket}/store",
        f"mlflow.tracking_uri={mlflow_server}",
        "mlflow.experiment=argo-template",
        f"argo.env={{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}",
        "argo.secrets=[s3]",
    ]
    nightly_args = ["argo.template=true", "argo.schedule=0 2 * * *", "-m"]
    template, cron = render_all(workdir, ["model=lasso", "model.alpha=1,2", *remote, *nightly_args])
    name = template["metadata"]["name"]
    credentials = {"s3": {k: v for k, v in s3_server.env.items() if "KEY" in k}}
    templates = {name: template}
    nightly = ArgoRunner(cron, env=base_env(), secrets=credentials, workflow_templates=templates)
    assert nightly.run() == "Succeeded"
    [sweep] = sweeps(mlflow_server, "argo-template")
    assert sweep.parent.data.tags["sweep_id"] == nightly.workflow_name
    # The image that ran it, said on the run (a tag, not a digest: none is pinned here).
    assert sweep.parent.data.tags["provenance.image"] == "sweeper:latest"
    assert "provenance.image_digest" not in sweep.parent.data.tags
    assert sorted(r.info.run_name for r in sweep.children) == ["lasso alpha=1", "lasso alpha=2"]

    other = _definition_arguments(
        render(workdir, ["model=lasso", "model.alpha=3,4", *remote, "-m"])
    )
    submitted = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": f"{name}-"},
        "spec": {
            "workflowTemplateRef": {"name": name},
            "arguments": {"parameters": [{"name": "definition", "value": other[0]}]},
        },
    }
    by_hand = ArgoRunner(
        submitted, env=base_env(), secrets=credentials, workflow_templates=templates
    )
    assert by_hand.run() == "Succeeded"
    _, second = sweeps(mlflow_server, "argo-template")
    assert sorted(r.info.run_name for r in second.children) == ["lasso alpha=3", "lasso alpha=4"]
