"""Rendering backend=argo manifests as a user would, and checking them as Argo would."""

from __future__ import annotations

import json
import re
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from support import pod_security
from support.argo_runner import ArgoRunner
from support.fake_argo import FakeArgo
from support.servers import SHARED_DATA, run_sweeper

SCHEMA = SHARED_DATA.parent / "argo" / "schema.json"
EVENTS_SCHEMA = SCHEMA.parent / "events-schema.json"  # Argo Events'
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
TOKEN = "tok-" + "n0t-for-manifests"
SECRET_KEY = "s3cr3t-" + "key-value"


def validate(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    """An Argo Workflows object against schema.json (JSON Schema 2020-12)."""
    _validate(manifest, schema, "workflow", jsonschema.Draft202012Validator)


def validate_events(manifest: dict[str, Any], schema: dict[str, Any]) -> None:
    """An Argo Events object (EventSource, Sensor) against events-schema.json (draft 7)."""
    _validate(manifest, schema, "events", jsonschema.Draft7Validator)


def _validate(manifest: dict[str, Any], schema: dict[str, Any], group: str, validator: Any) -> None:
    ref = {
        "$ref": f"#/definitions/io.argoproj.{group}.v1alpha1.{manifest['kind']}",
        "definitions": schema["definitions"],
    }
    validator(ref).validate(manifest)


def render(workdir: Path, args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The one manifest the command renders (a Workflow or CronWorkflow)."""
    [manifest] = render_all(workdir, args, env)
    return manifest


def render_all(
    workdir: Path, args: list[str], env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every document the command renders (argo.template=true: a WorkflowTemplate, and a
    CronWorkflow with argo.schedule), each admissible and free of credentials."""
    target = workdir / f"manifest-{secrets.token_hex(3)}.yaml"
    flags = [a for a in args if a.startswith("-")]  # Hydra takes them after the overrides
    overrides = [a for a in args if not a.startswith("-")]
    result = run_sweeper(
        [*overrides, "backend=argo", f"argo.render_to={target}", f"argo.token={TOKEN}", *flags],
        cwd=workdir,
        env={"AWS_SECRET_ACCESS_KEY": SECRET_KEY, **(env or {})},
    )
    assert result.returncode == 0, result.stderr
    text = target.read_text()
    assert TOKEN not in text and SECRET_KEY not in text  # no credential in a manifest
    manifests: list[dict[str, Any]] = list(yaml.safe_load_all(text))
    # Every rendered manifest is admitted by a namespace that enforces Pod Security "restricted".
    for manifest in manifests:
        assert pod_security.violations(manifest) == [], pod_security.violations(manifest)
    return manifests


REMOTE = ["storage.root=s3://bucket/sweeps", "mlflow.tracking_uri=http://mlflow.ml.svc:5000"]


def check_structure(manifest: dict[str, Any]) -> None:
    """What the schema cannot see: references resolve, names are DNS-safe, no shell anywhere."""
    spec = manifest["spec"]
    spec = spec.get("workflowSpec", spec)
    names = [t["name"] for t in spec["templates"]]
    assert len(names) == len(set(names))
    assert spec["entrypoint"] in names and spec["onExit"] in names
    for template in spec["templates"]:
        assert DNS_LABEL.match(template["name"])
        for task in template.get("dag", {}).get("tasks", []):
            assert task["template"] in names and DNS_LABEL.match(task["name"])
        if "container" in template:
            argv = template["container"]["command"] + template["container"].get("args", [])
            assert all(isinstance(a, str) for a in argv)
            assert not {"sh", "bash", "/bin/sh", "/bin/bash", "-c"} & set(argv)
    assert DNS_LABEL.match(manifest["metadata"]["name"])


@dataclass
class ExecutingArgo(FakeArgo):
    """The loopback Argo Server (requests checked against swagger.json) that also runs each
    submitted workflow, its pods as processes (ArgoRunner), and reports its phase when done."""

    pod_env: dict[str, str] = field(default_factory=dict)
    pod_secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    runners: dict[str, ArgoRunner] = field(default_factory=dict)
    phases: dict[str, Future[str]] = field(default_factory=dict)
    pool: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def create_workflow(self, ns: str, body: Any, **_: Any) -> tuple[int, Any]:
        status, workflow = super().create_workflow(ns=ns, body=body)
        runner = ArgoRunner(
            json.loads(json.dumps(workflow)),
            env=self.pod_env,
            secrets=self.pod_secrets,
            workflow_templates=self.templates,
        )
        with self.lock:
            self.runners[runner.workflow_name] = runner
            self.phases[runner.workflow_name] = self.pool.submit(runner.run)
        return status, workflow

    def get_workflow(self, ns: str, name: str, **_: Any) -> tuple[int, Any]:
        running = self.phases[name]
        phase = running.result() if running.done() else "Running"
        return 200, {**self.workflows[name], "status": {"phase": phase, "nodes": {}}}
