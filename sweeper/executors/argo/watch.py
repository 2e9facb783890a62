"""Watching a submitted workflow until it ends: trial counts from its nodes, failed pods' logs."""

from __future__ import annotations

import json
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from requests import RequestException

from sweeper.display.progress import Counts, clock_time, describe
from sweeper.errors import SweeperError
from sweeper.executors.argo.server import Caller
from sweeper.safe_text import first_line

if TYPE_CHECKING:
    from hera.workflows import WorkflowsService
    from hera.workflows.models import NodeStatus
    from hera.workflows.models import Workflow as WorkflowModel

DONE = ("Succeeded", "Failed", "Error")
# A retried pod leaves one node per attempt: a trial's state is that of its most advanced one.
PRECEDENCE = ("Succeeded", "Running", "Pending", "Failed", "Error")
LOG_LINES = 20


class Watch:
    """Our own poll loop: Hera's wait() returns early while a workflow is still Pending."""

    def __init__(self, service: WorkflowsService, call: Caller, name: str, ns: str) -> None:
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

    def _failed_pods(self, workflow: WorkflowModel) -> list[NodeStatus]:
        return [n for n in _nodes(workflow) if n.type == "Pod" and n.phase in ("Failed", "Error")]

    def _log_tail(self, node: NodeStatus) -> list[str]:
        """The last lines the failed pod wrote, from the server's log endpoint (NDJSON)."""
        pod = _pod_name(self.name, node)
        url = f"{self.service.host.rstrip('/')}/api/v1/workflows/{self.namespace}/{self.name}/log"
        params = {
            "podName": pod,
            "logOptions.container": "main",
            "logOptions.tailLines": str(LOG_LINES),
        }
        try:
            response = self.service.session.get(
                url,
                params=params,
                headers={"Authorization": self.service.token},
                verify=self.service.verify_ssl,
                timeout=30,
            )
        except RequestException as err:
            return [f"(log not available: {first_line(err)})"]
        if not response.ok:
            return [f"(log not available: HTTP {response.status_code})"]
        lines = []
        for raw in response.text.splitlines():
            if raw.strip():
                entry = json.loads(raw).get("result") or {}
                lines.extend(str(entry.get("content", "")).splitlines())
        return lines[-LOG_LINES:]


def trial_counts(workflow: WorkflowModel) -> Counts | None:
    """Trials by state from the node phases: the plan node's `groups` output gives the total
    and each chunk's number of trials (None before it exists); each train pod's phase holds for
    the trials of its chunk (its `chunk` input); a halving round's promote node adds its
    round's trials and chunks as it decides them. Trials some sweep finished before count as
    done; pods that do not exist yet, or are Pending, leave their trials queued."""
    groups = None
    rounds: list[dict[str, Any]] = []  # search=halving: each round's promote output
    phases: dict[str, str] = {}  # chunk number → the phase of its furthest attempt
    for node in _nodes(workflow):
        if node.template_name == "train" and node.type == "Pod":
            phase = node.phase if node.phase in PRECEDENCE else "Pending"
            chunk = _parameter(node, "chunk")
            known = phases.get(chunk) if chunk is not None else None
            if chunk is not None and (
                known is None or PRECEDENCE.index(phase) < PRECEDENCE.index(known)
            ):
                phases[chunk] = phase
        if node.template_name == "plan" and node.outputs and node.outputs.parameters:
            groups = json.loads(_parameter(node, "groups", outputs=True) or "[]")
        # (A retried step has a Retry node too, with its pod's outputs: counted once.)
        if node.template_name == "promote" and node.type == "Pod" and node.outputs:
            rounds.append(
                {
                    "to_train": int(_parameter(node, "to_train", outputs=True) or 0),
                    "finished": 0,
                    "pods": json.loads(_parameter(node, "pods", outputs=True) or "[]"),
                    "prefix": _parameter(node, "prefix", outputs=True) or "",
                }
            )
    if groups is None:
        return None
    groups = [*groups, *rounds]
    sizes = {
        f"{g.get('prefix', '')}{run['first'] + i}": n
        for g in groups
        for run in g["pods"]
        for i, n in enumerate(run["trials"])
    }
    tally: Counter[str] = Counter()
    for chunk, phase in phases.items():
        tally[phase] += sizes.get(chunk, 0)
    finished = sum(g["finished"] for g in groups)
    return Counts(
        finished + sum(g["to_train"] for g in groups),
        done=finished + tally["Succeeded"],
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


def _nodes(workflow: WorkflowModel) -> list[NodeStatus]:
    return list(((workflow.status and workflow.status.nodes) or {}).values())


def _parameter(node: NodeStatus, name: str, outputs: bool = False) -> str | None:
    holder = node.outputs if outputs else node.inputs
    for parameter in (holder and holder.parameters) or []:
        if parameter.name == name:
            return str(parameter.value) if parameter.value is not None else None
    return None


def _inputs(node: NodeStatus) -> str:
    params = (node.inputs and node.inputs.parameters) or []
    shown = [f"{p.name}={p.value}" for p in params if p.name in ("chunk", "group")]
    return " ".join([node.template_name or "", *shown]).strip()


def _pod_name(workflow_name: str, node: NodeStatus) -> str:
    """Argo's pod names (v2): <workflow>-<template>-<the node id's hash>."""
    suffix = node.id.rsplit("-", 1)[-1]
    return f"{workflow_name}-{node.template_name}-{suffix}"
