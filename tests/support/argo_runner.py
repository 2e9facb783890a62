"""Runs a rendered Argo Workflow manifest the way the controller would, with local processes.

No cluster runs here, so this walks the manifest itself: templates are looked up by name, DAG tasks
run in dependency order, `withParam` fans out over the JSON a previous step wrote and
`withSequence` over its numbers, a task whose `when` is false is skipped (one that failed with
`continueOn.failed` lets its dependants run), templates may call themselves, Argo's `{{…}}`
variables are substituted, and each container's command and args run as a process (optionally
through a wrapper such as `buildah run`), the items of a fan-out several at a time (at most
`spec.parallelism` pods at once). An unknown variable, template or secret is an error, as it
would be in Argo.
"""

from __future__ import annotations

import graphlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VARIABLE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")


@dataclass
class PodRun:
    template: str
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    outputs: dict[str, str] = field(default_factory=dict)  # its output parameters


@dataclass
class ArgoRunner:
    manifest: dict[str, Any]
    env: Mapping[str, str]  # what every pod's environment starts from
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # Secret → keys
    # (argv, pod env, folder for the pod's /tmp) → the command that runs the pod here, e.g.
    # through `buildah run`; by default the argv runs with `python` as this interpreter.
    wrap: Callable[[list[str], dict[str, str], str], list[str]] | None = None
    pods: list[PodRun] = field(default_factory=list)
    at_once: int = 3  # pods run side by side (two cores here); spec.parallelism caps it too
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Templates each of whose pods runs twice at once: what Argo's retry of a pod that is still
    # running (a node that stopped answering) gives.
    twice: frozenset[str] = frozenset()
    # WorkflowTemplates by name: what a workflowTemplateRef of the manifest names
    workflow_templates: Mapping[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        spec = self.manifest["spec"]
        if self.manifest["kind"] == "CronWorkflow":
            spec = spec["workflowSpec"]
        spec = _referenced(spec, self.workflow_templates)
        self.spec = spec
        arguments = spec.get("arguments", {}).get("parameters", [])
        self.parameters = {f"workflow.parameters.{p['name']}": str(p["value"]) for p in arguments}
        self.slots = threading.Semaphore(min(self.at_once, spec.get("parallelism") or 1_000))
        self.templates = {t["name"]: t for t in spec["templates"]}
        meta = self.manifest["metadata"]
        self.workflow_name = meta.get("name") or f"{meta['generateName']}x1y2z"
        if self.manifest["kind"] == "CronWorkflow":
            self.workflow_name = f"{meta['name']}-1764300000"  # as Argo names scheduled runs
        elif self.manifest["kind"] == "WorkflowTemplate":  # `argo submit --from` it
            self.workflow_name = f"{meta['name']}-x1y2z"

    def run(self) -> str:
        """The workflow's phase, after its entrypoint and its exit handler have run."""
        phase, _ = self._template(self.spec["entrypoint"], {})
        if "onExit" in self.spec:
            self._template(self.spec["onExit"], {}, {"workflow.status": phase})
        return phase

    def _template(
        self, name: str, inputs: dict[str, str], extra: Mapping[str, str] | None = None
    ) -> tuple[str, dict[str, str]]:
        template = self.templates[name]
        declared = {p["name"] for p in template.get("inputs", {}).get("parameters", [])}
        assert set(inputs) == declared, (
            f"{name}: given {sorted(inputs)}, declares {sorted(declared)}"
        )
        scope = {"workflow.name": self.workflow_name, **self.parameters, **(extra or {})}
        scope.update({f"inputs.parameters.{k}": v for k, v in inputs.items()})
        if "dag" in template:
            return self._dag(template, scope)
        return self._container(template, scope)

    def _dag(self, template: dict[str, Any], scope: dict[str, str]) -> tuple[str, dict[str, str]]:
        tasks = {t["name"]: t for t in template["dag"]["tasks"]}
        needs = {name: _dependencies(task) for name, task in tasks.items()}
        phases: dict[str, str] = {}

        def settled(name: str) -> bool:  # a failed task with continueOn.failed lets on
            if phases[name] in ("Succeeded", "Skipped"):
                return True
            return phases[name] == "Failed" and bool(
                tasks[name].get("continueOn", {}).get("failed")
            )

        for name in graphlib.TopologicalSorter(needs).static_order():
            task = tasks[name]
            if not all(settled(d) for d in needs[name]):
                phases[name] = "Omitted"
                continue
            if "when" in task and not _true(substitute(task["when"], scope)):
                phases[name] = "Skipped"
                continue
            items = _items(task, scope)

            def run(item: Any, task: dict[str, Any] = task) -> tuple[str, dict[str, str]]:
                item_scope = {**scope, **_item_scope(item)}
                arguments = {
                    p["name"]: substitute(str(p["value"]), item_scope)
                    for p in task.get("arguments", {}).get("parameters", [])
                }
                return self._template(task["template"], arguments)

            if len(items) > 1:  # a fan-out: its items side by side, as Argo runs them
                with ThreadPoolExecutor(len(items)) as pool:
                    results = list(pool.map(run, items))
            else:
                results = [run(item) for item in items]
            for _, outputs in results:
                scope.update(
                    {f"tasks.{name}.outputs.parameters.{k}": v for k, v in outputs.items()}
                )
            ok = all(phase in ("Succeeded", "Skipped") for phase, _ in results)
            phases[name] = "Succeeded" if ok else "Failed"
            scope[f"tasks.{name}.status"] = phases[name]
        ok = all(settled(name) for name in phases)
        return ("Succeeded" if ok else "Failed"), {}

    def _container(
        self, template: dict[str, Any], scope: dict[str, str]
    ) -> tuple[str, dict[str, str]]:
        copies = 2 if template["name"] in self.twice else 1
        with ThreadPoolExecutor(copies) as pool:
            results = list(pool.map(lambda _: self._pod(template, scope), range(copies)))
        return next((r for r in results if r[0] == "Succeeded"), results[0])

    def _pod(self, template: dict[str, Any], scope: dict[str, str]) -> tuple[str, dict[str, str]]:
        container = template["container"]
        outputs = template.get("outputs", {}).get("parameters", [])
        argv = [substitute(a, scope) for a in container["command"] + container.get("args", [])]
        pod_env: dict[str, str] = {}
        for secret in container.get("envFrom", []):
            pod_env.update(self.secrets[secret["secretRef"]["name"]])
        for var in container.get("env", []):
            if "valueFrom" in var:  # a Secret's key, as the kubelet gives it
                ref = var["valueFrom"]["secretKeyRef"]
                pod_env[var["name"]] = self.secrets[ref["name"]][ref["key"]]
            else:
                pod_env[var["name"]] = substitute(var["value"], scope)
        with tempfile.TemporaryDirectory() as pod_tmp:
            os.chmod(pod_tmp, 0o777)  # the image runs as an unprivileged user

            # The pod's /tmp is its own: a fresh folder for each pod.
            def local(path: str) -> str:
                return path.replace("/tmp/", f"{pod_tmp}/", 1) if path.startswith("/tmp/") else path

            if self.wrap:
                command, env = self.wrap(argv, pod_env, pod_tmp), dict(os.environ)
            else:
                python = sys.executable if argv[0] == "python" else argv[0]
                command, env = [python, *map(local, argv[1:])], {**self.env, **pod_env}
            with self.slots:
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
            failed = done.returncode != 0
            # Argo saves a failed pod's outputs too: those it wrote, or their defaults.
            values = {
                p["name"]: _output(p, local)
                for p in outputs
                if not failed
                or "default" in p["valueFrom"]
                or Path(local(p["valueFrom"]["path"])).exists()
            }
            with self.lock:
                self.pods.append(
                    PodRun(
                        template["name"], argv, done.returncode, done.stdout, done.stderr, values
                    )
                )
        return ("Failed" if failed else "Succeeded"), values


def _output(parameter: dict[str, Any], local: Callable[[str], str]) -> str:
    """An output parameter's file, or its `valueFrom.default` when the pod wrote none."""
    path = Path(local(parameter["valueFrom"]["path"]))
    if not path.exists() and "default" in parameter["valueFrom"]:
        return str(parameter["valueFrom"]["default"])
    return path.read_text()


def _referenced(
    spec: dict[str, Any], workflow_templates: Mapping[str, dict[str, Any]]
) -> dict[str, Any]:
    """A workflow spec with its workflowTemplateRef resolved as Argo does: the template's
    spec, the workflow's own fields over it, and its arguments over the template's by name."""
    ref = spec.get("workflowTemplateRef")
    if ref is None:
        return spec
    base = workflow_templates[ref["name"]]["spec"]
    given = {p["name"]: p for p in spec.get("arguments", {}).get("parameters", [])}
    parameters = [given.get(p["name"], p) for p in base.get("arguments", {}).get("parameters", [])]
    own = {k: v for k, v in spec.items() if k not in ("workflowTemplateRef", "arguments")}
    return {**base, **own, "arguments": {"parameters": parameters}}


def substitute(text: str, scope: Mapping[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in scope:
            raise KeyError(f"unknown Argo variable {{{{{key}}}}} in {text!r}")
        return scope[key]

    return VARIABLE.sub(value, text)


def _items(task: dict[str, Any], scope: Mapping[str, str]) -> list[Any]:
    if "withParam" in task:
        items: list[Any] = json.loads(substitute(task["withParam"], scope))
        return items
    if "withItems" in task:
        return list(task["withItems"])
    if "withSequence" in task:
        sequence = {k: int(substitute(str(v), scope)) for k, v in task["withSequence"].items()}
        start = sequence.get("start", 0)
        end = sequence["end"] + 1 if "end" in sequence else start + sequence["count"]
        return [str(n) for n in range(start, end)]
    return [None]


def _true(condition: str) -> bool:
    """The `when` conditions the manifests use: `A > B` and `A == B` of numbers."""
    match = re.fullmatch(r"\s*(-?\d+)\s*(>|==)\s*(-?\d+)\s*", condition)
    assert match, f"unsupported when: {condition!r}"
    left, op, right = int(match.group(1)), match.group(2), int(match.group(3))
    return left > right if op == ">" else left == right


def _item_scope(item: Any) -> dict[str, str]:
    if item is None:
        return {}
    scope = {"item": item if isinstance(item, str) else json.dumps(item)}
    if isinstance(item, dict):
        scope.update(
            {f"item.{k}": v if isinstance(v, str) else json.dumps(v) for k, v in item.items()}
        )
    return scope


def _dependencies(task: dict[str, Any]) -> set[str]:
    if "depends" in task:
        return {name.strip() for name in task["depends"].split("&&")}
    return set(task.get("dependencies", []))


def base_env(**extra: str) -> dict[str, str]:
    """A pod's environment here: this machine's PATH and Python, none of the test's secrets."""
    keep = ("PATH", "HOME", "LANG", "PYTHONPATH", "VIRTUAL_ENV", "TMPDIR")
    return {**{k: os.environ[k] for k in keep if k in os.environ}, **extra}
