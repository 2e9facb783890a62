"""Talking to the Argo Server: submit a Workflow and watch it, or create/update a CronWorkflow or
a WorkflowTemplate.

Through Hera's `WorkflowsService` (the Argo Server REST API). Transient failures (connection
errors, 5xx) are retried a bounded number of times; a refused token ends in one line naming the
server. The token is sent, never printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from hera.exceptions import AlreadyExists
from hera.workflows import CronWorkflow, Workflow, WorkflowsService, WorkflowTemplate
from hera.workflows.models import (
    CreateCronWorkflowRequest,
    UpdateCronWorkflowRequest,
    WorkflowCreateRequest,
    WorkflowTemplateCreateRequest,
    WorkflowTemplateUpdateRequest,
)
from hera.workflows.models import CronWorkflow as CronWorkflowModel
from hera.workflows.models import Workflow as WorkflowModel
from hera.workflows.models import WorkflowTemplate as WorkflowTemplateModel

from sweeper.core.settings import ArgoSettings
from sweeper.errors import SweeperError
from sweeper.executors.argo.server import Caller
from sweeper.executors.argo.watch import Watch


def submit(workflow: Workflow | CronWorkflow, argo: ArgoSettings) -> int:
    if isinstance(workflow, CronWorkflow):
        return apply([workflow], argo)
    service, call = _connect(argo)
    namespace = str(argo.namespace)
    model = workflow.build()
    assert isinstance(model, WorkflowModel)
    request = WorkflowCreateRequest(workflow=model)
    created = call(lambda: service.create_workflow(request, namespace=namespace))
    name = str(created.metadata.name)
    server = _server(argo)
    print(f"Workflow {name} submitted to {server} (namespace {namespace})")
    print(f"  {server}/workflows/{namespace}/{name}")
    if not argo.wait:
        return 0
    return Watch(service, call, name, namespace).until_done(
        float(argo.watch_timeout), float(argo.poll_seconds)
    )


def apply(objects: list[WorkflowTemplate | CronWorkflow], argo: ArgoSettings) -> int:
    """Create each object on the server, or update it when it exists (read first: an update
    names the version it replaces), in order: a template before the cron that runs it."""
    service, call = _connect(argo)
    namespace = str(argo.namespace)
    for made in objects:
        action = _create_or_update(service, call, made, namespace)
        kind = type(made).__name__
        if isinstance(made, CronWorkflow):
            schedules = ", ".join(made.schedules or [])
            print(f"{kind} {made.name} {action} in namespace {namespace}: runs at {schedules}")
        else:
            print(f"{kind} {made.name} {action} in namespace {namespace}")
    return 0


def _server(argo: ArgoSettings) -> str:
    if not argo.server:
        raise SweeperError("backend=argo needs argo.server=https://… (or argo.render_to=FILE)")
    return str(argo.server).rstrip("/")


def _connect(argo: ArgoSettings) -> tuple[WorkflowsService, Caller]:
    server = _server(argo)
    service = WorkflowsService(
        host=server,
        token=argo.token or os.environ.get("ARGO_TOKEN") or None,
        verify_ssl=bool(argo.verify_ssl),
        namespace=str(argo.namespace),
    )
    return service, Caller(server)


def _create_or_update(
    service: WorkflowsService, call: Caller, made: WorkflowTemplate | CronWorkflow, namespace: str
) -> str:
    """ "created" or "updated"."""
    assert made.name is not None
    name, model = made.name, made.build()
    create: Callable[[], Any]
    current: Callable[[], Any]
    update: Callable[[], Any]
    if isinstance(model, CronWorkflowModel):
        metadata = model.metadata
        create = partial(
            service.create_cron_workflow,
            CreateCronWorkflowRequest(cron_workflow=model),
            namespace=namespace,
        )
        current = partial(service.get_cron_workflow, name, namespace=namespace)
        update = partial(
            service.update_cron_workflow,
            name,
            UpdateCronWorkflowRequest(cron_workflow=model, name=name),
            namespace=namespace,
        )
    else:
        assert isinstance(model, WorkflowTemplateModel)
        metadata = model.metadata
        create = partial(
            service.create_workflow_template,
            WorkflowTemplateCreateRequest(template=model),
            namespace=namespace,
        )
        current = partial(service.get_workflow_template, name, namespace=namespace)
        update = partial(
            service.update_workflow_template,
            name,
            WorkflowTemplateUpdateRequest(template=model, name=name),
            namespace=namespace,
        )
    try:
        call(create)
        return "created"
    except AlreadyExists:
        found: Any = call(current)
        metadata.resource_version = found.metadata.resource_version  # the one `update` replaces
        call(update)
        return "updated"
