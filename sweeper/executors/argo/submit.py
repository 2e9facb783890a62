"""Talking to the Argo Server: submit a Workflow and watch it, or create/update a CronWorkflow.

Through Hera's `WorkflowsService` (the Argo Server REST API). Transient failures (connection
errors, 5xx) are retried a bounded number of times; a refused token ends in one line naming the
server. The token is sent, never printed.
"""

from __future__ import annotations

import os

from hera.exceptions import AlreadyExists
from hera.workflows import CronWorkflow, Workflow, WorkflowsService
from hera.workflows.models import (
    CreateCronWorkflowRequest,
    UpdateCronWorkflowRequest,
    WorkflowCreateRequest,
)
from hera.workflows.models import CronWorkflow as CronWorkflowModel
from hera.workflows.models import Workflow as WorkflowModel

from sweeper.core.settings import ArgoSettings
from sweeper.errors import SweeperError
from sweeper.executors.argo.server import Caller
from sweeper.executors.argo.watch import Watch


def submit(workflow: Workflow | CronWorkflow, argo: ArgoSettings) -> int:
    if not argo.server:
        raise SweeperError("backend=argo needs argo.server=https://… (or argo.render_to=FILE)")
    server = str(argo.server).rstrip("/")
    namespace = str(argo.namespace)
    service = WorkflowsService(
        host=server,
        token=argo.token or os.environ.get("ARGO_TOKEN") or None,
        verify_ssl=bool(argo.verify_ssl),
        namespace=namespace,
    )
    call = Caller(server)
    if isinstance(workflow, CronWorkflow):
        return _create_or_update_cron(service, call, workflow, namespace)
    model = workflow.build()
    assert isinstance(model, WorkflowModel)
    request = WorkflowCreateRequest(workflow=model)
    created = call(lambda: service.create_workflow(request, namespace=namespace))
    name = str(created.metadata.name)
    print(f"Workflow {name} submitted to {server} (namespace {namespace})")
    print(f"  {server}/workflows/{namespace}/{name}")
    if not argo.wait:
        return 0
    return Watch(service, call, name, namespace).until_done(
        float(argo.watch_timeout), float(argo.poll_seconds)
    )


def _create_or_update_cron(
    service: WorkflowsService, call: Caller, cron: CronWorkflow, namespace: str
) -> int:
    model = cron.build()
    assert isinstance(model, CronWorkflowModel) and cron.name is not None
    name = cron.name
    try:
        call(
            lambda: service.create_cron_workflow(
                CreateCronWorkflowRequest(cron_workflow=model), namespace=namespace
            )
        )
        action = "created"
    except AlreadyExists:
        current = call(lambda: service.get_cron_workflow(name, namespace=namespace))
        model.metadata.resource_version = current.metadata.resource_version
        call(
            lambda: service.update_cron_workflow(
                name, UpdateCronWorkflowRequest(cron_workflow=model, name=name), namespace=namespace
            )
        )
        action = "updated"
    schedules = ", ".join(cron.schedules or [])
    print(f"CronWorkflow {cron.name} {action} in namespace {namespace}: runs at {schedules}")
    return 0
