"""An Argo Server on loopback for contract tests: the endpoints the client uses, as swagger.json
specifies them, with every request body validated against that spec.

A test scripts what the server answers: the phases (and nodes) a workflow goes through on
successive GETs, pod logs, failures to inject, which token it accepts.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema

from support import pod_security
from support.loopback import loopback

V1 = "io.argoproj.workflow.v1alpha1."
WORKFLOW = r"/api/v1/workflows/(?P<ns>[^/]+)/(?P<name>[^/]+)"
CRON = r"/api/v1/cron-workflows/(?P<ns>[^/]+)"
TEMPLATE = r"/api/v1/workflow-templates/(?P<ns>[^/]+)"
# (method, path, the swagger definition of the request body, handler)
ROUTES = [
    ("POST", r"/api/v1/workflows/(?P<ns>[^/]+)", V1 + "WorkflowCreateRequest", "create_workflow"),
    ("POST", r"/api/v1/workflows/(?P<ns>[^/]+)/submit", V1 + "WorkflowSubmitRequest", "submit"),
    ("GET", WORKFLOW + "/log", None, "workflow_logs"),
    ("GET", WORKFLOW, None, "get_workflow"),
    ("POST", CRON, V1 + "CreateCronWorkflowRequest", "create_cron"),
    ("GET", CRON + "/(?P<name>[^/]+)", None, "get_cron"),
    ("PUT", CRON + "/(?P<name>[^/]+)", V1 + "UpdateCronWorkflowRequest", "update_cron"),
    ("POST", TEMPLATE, V1 + "WorkflowTemplateCreateRequest", "create_template"),
    ("GET", TEMPLATE + "/(?P<name>[^/]+)", None, "get_template"),
    ("PUT", TEMPLATE + "/(?P<name>[^/]+)", V1 + "WorkflowTemplateUpdateRequest", "update_template"),
]


@dataclass
class FakeArgo:
    swagger: dict[str, Any]
    token: str = "good-token"
    # phases (with nodes) returned by successive GETs of the workflow; the last one repeats
    script: list[tuple[str | None, dict[str, Any]]] = field(default_factory=list)
    pod_logs: dict[str, str] = field(default_factory=dict)  # pod name → its log
    fail_next: dict[str, int] = field(default_factory=dict)  # route → 503s to answer first
    crons: dict[str, dict[str, Any]] = field(default_factory=dict)
    templates: dict[str, dict[str, Any]] = field(default_factory=dict)  # WorkflowTemplates
    workflows: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    def validate(self, definition: str, body: Any) -> None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": self.swagger["definitions"]}
        jsonschema.Draft4Validator(schema).validate(body)

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: Any
    ) -> tuple[int, Any]:
        for route_method, pattern, definition, action in ROUTES:
            match = re.fullmatch(pattern, path)
            if route_method != method or not match:
                continue
            self.requests.append((method, action))
            if headers.get("Authorization") != f"Bearer {self.token}":
                return 401, {"code": 16, "message": "token not valid"}
            if self.fail_next.get(action, 0) > 0:
                self.fail_next[action] -= 1
                return 503, {"code": 14, "message": "the server is overloaded"}
            if definition:
                try:
                    self.validate(definition, body)
                except jsonschema.ValidationError as err:
                    return 400, {"code": 3, "message": f"invalid body: {err.message}"}
            return getattr(self, action)(query=query, body=body, **match.groupdict())
        return 404, {"code": 5, "message": f"no route {method} {path}"}

    def create_workflow(self, ns: str, body: Any, **_: Any) -> tuple[int, Any]:
        workflow = body["workflow"]
        refused = _restricted(workflow)
        if refused:
            return refused
        meta = workflow["metadata"]
        if "name" not in meta:  # Argo's name: generateName and five random characters
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        meta.update(namespace=ns, uid="uid-1", resourceVersion="1")
        self.workflows[meta["name"]] = workflow
        return 200, workflow

    def submit(self, ns: str, body: Any, **_: Any) -> tuple[int, Any]:
        """`argo submit --from workflowtemplate/NAME -p k=v`: a Workflow that runs the template
        by reference, the parameters given as its arguments (as Argo's server makes it)."""
        kind, name = body.get("resourceKind", ""), body.get("resourceName", "")
        if kind.lower() not in ("workflowtemplate", "workflowtemplates", "wftmpl"):
            return 400, {"code": 3, "message": f"resourceKind {kind} is not supported"}
        if name not in self.templates:
            return 404, {"code": 5, "message": f'workflowtemplates.argoproj.io "{name}" not found'}
        given = body.get("submitOptions", {}).get("parameters", [])
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {
                "generateName": f"{name}-",
                "labels": {"workflows.argoproj.io/workflow-template": name},
            },
            "spec": {
                "workflowTemplateRef": {"name": name},
                "arguments": {
                    "parameters": [
                        {"name": k, "value": v} for k, v in (p.split("=", 1) for p in given)
                    ]
                },
            },
        }
        return self.create_workflow(ns=ns, body={"workflow": workflow})

    def get_workflow(self, ns: str, name: str, **_: Any) -> tuple[int, Any]:
        if name not in self.workflows:
            return 404, {"code": 5, "message": "not found"}
        phase, nodes = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        nodes = json.loads(json.dumps(nodes).replace("WF", name))  # scripts say WF for the name
        status = {"nodes": nodes} if phase is None else {"phase": phase, "nodes": nodes}
        return 200, {**self.workflows[name], "status": status}

    def workflow_logs(self, name: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        pod = query["podName"][0]
        lines = self.pod_logs.get(pod.replace(name, "WF"), "").splitlines()
        tail = int(query.get("logOptions.tailLines", ["1000"])[0])
        stream = [{"result": {"content": line, "podName": pod}} for line in lines[-tail:]]
        return 200, "\n".join(json.dumps(entry) for entry in stream)

    def create_cron(self, ns: str, body: Any, **_: Any) -> tuple[int, Any]:
        return _created(self.crons, "cronworkflows", ns, body["cronWorkflow"])

    def get_cron(self, ns: str, name: str, **_: Any) -> tuple[int, Any]:
        return _got(self.crons, name)

    def update_cron(self, ns: str, name: str, body: Any, **_: Any) -> tuple[int, Any]:
        return _updated(self.crons, name, body["cronWorkflow"])

    def create_template(self, ns: str, body: Any, **_: Any) -> tuple[int, Any]:
        return _created(self.templates, "workflowtemplates", ns, body["template"])

    def get_template(self, ns: str, name: str, **_: Any) -> tuple[int, Any]:
        return _got(self.templates, name)

    def update_template(self, ns: str, name: str, body: Any, **_: Any) -> tuple[int, Any]:
        return _updated(self.templates, name, body["template"])


# A CronWorkflow's and a WorkflowTemplate's life on the server: created once (a second create
# is refused), read, and updated only from the version last read.
def _created(
    store: dict[str, dict[str, Any]], resource: str, ns: str, manifest: dict[str, Any]
) -> tuple[int, Any]:
    refused = _restricted(manifest)
    if refused:
        return refused
    name = manifest["metadata"]["name"]
    if name in store:
        return 409, {"code": 6, "message": f'{resource} "{name}" already exists'}
    manifest["metadata"].update(namespace=ns, resourceVersion="1")
    store[name] = manifest
    return 200, manifest


def _got(store: dict[str, dict[str, Any]], name: str) -> tuple[int, Any]:
    if name not in store:
        return 404, {"code": 5, "message": "not found"}
    return 200, store[name]


def _updated(
    store: dict[str, dict[str, Any]], name: str, manifest: dict[str, Any]
) -> tuple[int, Any]:
    if manifest["metadata"].get("resourceVersion") != store[name]["metadata"]["resourceVersion"]:
        return 409, {"code": 10, "message": "the object has been modified"}
    refused = _restricted(manifest)
    if refused:
        return refused
    manifest["metadata"]["resourceVersion"] = str(int(manifest["metadata"]["resourceVersion"]) + 1)
    store[name] = manifest
    return 200, manifest


def serve(fake: FakeArgo) -> Iterator[FakeArgo]:
    class Handler(BaseHTTPRequestHandler):
        def _respond(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, payload = fake.handle(
                self.command, parts.path, parse_qs(parts.query), self.headers, body
            )
            data = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _respond

        def log_message(self, *args: Any) -> None:
            pass

    with loopback(Handler) as url:
        fake.url = url
        yield fake


def load_swagger(shared: Path) -> dict[str, Any]:
    return json.loads((shared / "argo" / "swagger.json").read_text())


def _restricted(manifest: dict[str, Any]) -> tuple[int, Any] | None:
    """What a namespace enforcing Pod Security "restricted" answers a manifest whose pods break
    it (a cluster refuses the pods; refusing the manifest at once is the stricter stand-in)."""
    problems = pod_security.violations(manifest)
    if not problems:
        return None
    return 403, {
        "code": 7,
        "message": f'pods would violate PodSecurity "restricted:latest": {"; ".join(problems)}',
    }
