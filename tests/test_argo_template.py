"""argo.template=true: the sweep as a WorkflowTemplate a platform keeps in Git, and with
argo.schedule a CronWorkflow that runs it by reference; both checked against Argo's schema and
the Pod Security "restricted" profile (support.argo.render_all)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.argo import REMOTE, SCHEMA, check_structure, render, render_all, validate
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
