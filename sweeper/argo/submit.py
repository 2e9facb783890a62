"""Talking to the Argo Server: submit a Workflow and watch it, or create/update a CronWorkflow.

Through Hera's `WorkflowsService` (the Argo Server REST API). Transient failures (connection
errors, 5xx) are retried a bounded number of times; a refused token ends in one line naming the
server. The token is sent, never printed.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

from hera.exceptions import AlreadyExists, Forbidden, HeraException, Unauthorized
from hera.workflows import CronWorkflow, Workflow, WorkflowsService
from hera.workflows.models import (
    CreateCronWorkflowRequest,
    UpdateCronWorkflowRequest,
    WorkflowCreateRequest,
)
from omegaconf import DictConfig
from requests import RequestException

from sweeper.errors import SweeperError
from sweeper.progress import Counts, clock_time, describe

T = TypeVar("T")
DONE = ("Succeeded", "Failed", "Error")
# A retried pod leaves one node per attempt: a trial's state is that of its most advanced one.
PRECEDENCE = ("Succeeded", "Running", "Pending", "Failed", "Error")
ATTEMPTS = 5
LOG_LINES = 20


def submit(workflow: Workflow | CronWorkflow, argo: DictConfig) -> int:
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
    call = _Caller(server)
    if isinstance(workflow, CronWorkflow):
        return _create_or_update_cron(service, call, workflow, namespace)
    request = WorkflowCreateRequest(workflow=workflow.build())
    created = call(lambda: service.create_workflow(request, namespace=namespace))
    name = created.metadata.name
    print(f"Workflow {name} submitted to {server} (namespace {namespace})")
    print(f"  {server}/workflows/{namespace}/{name}")
    if not argo.wait:
        return 0
    return _Watch(service, call, name, namespace).until_done(
        float(argo.watch_timeout), float(argo.poll_seconds)
    )


def _create_or_update_cron(
    service: WorkflowsService, call: _Caller, cron: CronWorkflow, namespace: str
) -> int:
    model = cron.build()
    try:
        call(lambda: service.create_cron_workflow(
            CreateCronWorkflowRequest(cron_workflow=model), namespace=namespace))  # fmt: skip
        action = "created"
    except AlreadyExists:
        current = call(lambda: service.get_cron_workflow(cron.name, namespace=namespace))
        model.metadata.resource_version = current.metadata.resource_version
        call(lambda: service.update_cron_workflow(
            cron.name, UpdateCronWorkflowRequest(cron_workflow=model, name=cron.name),
            namespace=namespace))  # fmt: skip
        action = "updated"
    schedules = ", ".join(cron.schedules or [])
    print(f"CronWorkflow {cron.name} {action} in namespace {namespace}: runs at {schedules}")
    return 0


class _Caller:
    """Calls the server with bounded retries of what may pass (connection errors, 5xx)."""

    def __init__(self, server: str) -> None:
        self.server = server

    def __call__(self, request: Callable[[], T]) -> T:
        for attempt in range(ATTEMPTS):
            try:
                return request()
            except (Unauthorized, Forbidden) as err:
                code = getattr(err, "status_code", "")
                raise SweeperError(
                    f"Argo server {self.server} refused the token (HTTP {code}); "
                    "set ARGO_TOKEN or argo.token to a token allowed in the namespace"
                ) from None
            except AlreadyExists:
                raise
            except (RequestException, HeraException) as err:
                status = getattr(err, "status_code", 500)
                if status < 500 or attempt == ATTEMPTS - 1:
                    raise SweeperError(f"Argo server {self.server}: {_first_line(err)}") from None
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")


class _Watch:
    """Our own poll loop: Hera's wait() returns early while a workflow is still Pending."""

    def __init__(self, service: WorkflowsService, call: _Caller, name: str, ns: str) -> None:
        self.service, self.call, self.name, self.namespace = service, call, name, ns

    def until_done(self, timeout: float, poll: float) -> int:
        started = time.monotonic()
        deadline = started + timeout
        shown: tuple[str, Counts | None] | None = None
        while True:
            workflow = self.call(
                lambda: self.service.get_workflow(self.name, namespace=self.namespace)
            )
            phase = (workflow.status and workflow.status.phase) or "Pending"
            counts = trial_counts(workflow)
            if (phase, counts) != shown:  # a line per change, not per poll
                print(_watch_line(phase, counts, time.monotonic() - started), flush=True)
                shown = (phase, counts)
            if phase in DONE:
                break
            if time.monotonic() > deadline:
                raise SweeperError(
                    f"workflow {self.name} is still {phase} after {timeout:.0f} s; it goes on "
                    f"running: argo watch -n {self.namespace} {self.name}"
                )
            time.sleep(poll)
        for node in self._failed_pods(workflow):
            print(f"failed: {node.display_name} ({_inputs(node)}): {node.message or node.phase}")
            for text in self._log_tail(node):
                print(f"  | {text}")
        return 0 if phase == "Succeeded" else 1

    def _failed_pods(self, workflow: Any) -> list[Any]:
        return [n for n in _nodes(workflow) if n.type == "Pod" and n.phase in ("Failed", "Error")]

    def _log_tail(self, node: Any) -> list[str]:
        """The last lines the failed pod wrote, from the server's log endpoint (NDJSON)."""
        pod = _pod_name(self.name, node)
        url = f"{self.service.host.rstrip('/')}/api/v1/workflows/{self.namespace}/{self.name}/log"
        params = {"podName": pod, "logOptions.container": "main",
                  "logOptions.tailLines": str(LOG_LINES)}  # fmt: skip
        try:
            response = self.service.session.get(
                url, params=params, headers={"Authorization": self.service.token},
                verify=self.service.verify_ssl, timeout=30,
            )  # fmt: skip
        except RequestException as err:
            return [f"(log not available: {_first_line(err)})"]
        if not response.ok:
            return [f"(log not available: HTTP {response.status_code})"]
        lines = []
        for raw in response.text.splitlines():
            if raw.strip():
                entry = json.loads(raw).get("result") or {}
                lines.extend(str(entry.get("content", "")).splitlines())
        return lines[-LOG_LINES:]


def trial_counts(workflow: Any) -> Counts | None:
    """Trials by state from the node phases: the plan node's `groups` output gives the total
    (None before it exists), each train pod's phase holds for the trials of its `trials` input.
    Pods that do not exist yet, or are Pending, leave their trials queued."""
    total = None
    phases: dict[str, str] = {}
    for node in _nodes(workflow):
        if node.template_name == "train" and node.type == "Pod":
            phase = node.phase if node.phase in PRECEDENCE else "Pending"
            for trial in filter(None, str(_parameter(node, "trials") or "").split(",")):
                known = phases.get(trial)
                if known is None or PRECEDENCE.index(phase) < PRECEDENCE.index(known):
                    phases[trial] = phase
        if node.template_name == "plan" and node.outputs and node.outputs.parameters:
            groups = json.loads(_parameter(node, "groups", outputs=True) or "[]")
            total = sum(len(c["trials"].split(",")) for g in groups for c in g["chunks"])
    if total is None:
        return None
    tally = Counter(phases.values())
    return Counts(
        total,
        done=tally["Succeeded"],
        failed=tally["Failed"] + tally["Error"],
        running=tally["Running"],
    )


def _watch_line(phase: str, counts: Counts | None, elapsed: float) -> str:
    """`Running: 3/9 done, 0 failed, 3 running, 3 queued; 0:01:05 elapsed`, the workflow's
    phase first; `Pending: planning; …` until the plan step has said how many trials there are.
    The best trial so far is not in node phases, so it is left out."""
    if counts is None:
        return f"{phase}: planning; {clock_time(elapsed)} elapsed"
    return f"{phase}: {describe(counts, elapsed)}"


def _nodes(workflow: Any) -> list[Any]:
    return list(((workflow.status and workflow.status.nodes) or {}).values())


def _parameter(node: Any, name: str, outputs: bool = False) -> str | None:
    holder = node.outputs if outputs else node.inputs
    for parameter in (holder and holder.parameters) or []:
        if parameter.name == name:
            return str(parameter.value) if parameter.value is not None else None
    return None


def _inputs(node: Any) -> str:
    params = (node.inputs and node.inputs.parameters) or []
    shown = [f"{p.name}={p.value}" for p in params if p.name in ("trials", "group")]
    return " ".join([node.template_name or "", *shown]).strip()


def _pod_name(workflow_name: str, node: Any) -> str:
    """Argo's pod names (v2): <workflow>-<template>-<the node id's hash>."""
    suffix = node.id.rsplit("-", 1)[-1]
    return f"{workflow_name}-{node.template_name}-{suffix}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
