"""Submitting, watching and scheduling through the Argo Server API, against a loopback server
that validates every request body against Argo's own swagger.json."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.fake_argo import FakeArgo, load_swagger, serve
from support.servers import SHARED_DATA, run_sweeper
from sweeper.planning.definition import Definition

SWEEP = [
    "model=rf,lasso",
    "backend=argo",
    "argo.namespace=ml",
    "argo.poll_seconds=0.01",
    "storage.root=s3://bucket/sweeps",
    "mlflow.tracking_uri=http://mlflow.ml.svc:5000",
]
# The plan step's output: chunks 0-2 of three trials each, in one run of one pod size.
GROUPS = [
    {
        "group": "g1",
        "to_train": 9,
        "finished": 0,
        "pods": [
            {
                "first": 0,
                "count": 3,
                "trials": [3, 3, 3],
                "cpu": "1",
                "memory": "1Gi",
                "memory_limit": "2Gi",
            }
        ],
    }
]


@pytest.fixture(scope="module")
def swagger() -> dict[str, Any]:
    return load_swagger(SHARED_DATA.parent)


@pytest.fixture
def argo(swagger: dict[str, Any]) -> Iterator[FakeArgo]:
    yield from serve(FakeArgo(swagger))


def node(template: str, phase: str, suffix: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"WF-{suffix}",
        "name": f"WF.{template}",
        "displayName": f"{template}({suffix})",
        "type": "Pod",
        "templateName": template,
        "phase": phase,
        **extra,
    }


def plan_node(phase: str = "Succeeded") -> dict[str, Any]:
    outputs = {"parameters": [{"name": "groups", "value": json.dumps(GROUPS)}]}
    return node("plan", phase, "100", outputs=outputs)


def train_node(phase: str, suffix: str, chunk: str, message: str = "") -> dict[str, Any]:
    inputs = {"parameters": [{"name": "chunk", "value": chunk}]}
    return node("train", phase, suffix, inputs=inputs, message=message)


def sweeper(args: list[str], argo: FakeArgo, workdir: Path, token: str = "good-token") -> Any:
    return run_sweeper(
        [*SWEEP, f"argo.server={argo.url}", *args], cwd=workdir, env={"ARGO_TOKEN": token}
    )


def by_id(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {n["id"]: n for n in nodes}


def test_submit_retries_then_watches_through_pending(argo: FakeArgo, workdir: Path) -> None:
    argo.fail_next["create_workflow"] = 2  # 503 twice, then accepted
    argo.script = [
        (None, {}),
        ("Pending", {}),
        (
            "Running",
            by_id(plan_node(), train_node("Running", "1", "0"), train_node("Succeeded", "2", "1")),
        ),
        (
            "Succeeded",
            by_id(
                plan_node(),
                *(train_node("Succeeded", s, c) for s, c in (("1", "0"), ("2", "1"), ("3", "2"))),
            ),
        ),
    ]
    result = sweeper(["-m"], argo, workdir)
    assert result.returncode == 0, result.stderr
    assert [a for _, a in argo.requests].count("create_workflow") == 3
    [submitted] = argo.workflows.values()
    assert f"Workflow {submitted['metadata']['name']} submitted" in result.stdout
    lines = result.stdout.splitlines()
    # A line per change of the counts, each with the time since the workflow was submitted.
    counts = [m[1] for m in map(re.compile(r"(.*); \d+:\d\d:\d\d elapsed$").match, lines) if m]
    assert counts == [
        "Pending: planning",
        "Running: 3/9 done, 0 failed, 3 running, 3 queued",
        "Succeeded: 9/9 done, 0 failed, 0 running, 0 queued",
    ]
    assert lines[-2].startswith("Succeeded: 9/9 done")
    # The results are in MLflow, which this test's pods never reached: the command to see them.
    name = submitted["metadata"]["name"]
    assert lines[-1].endswith(
        f"python -m sweeper.report {name} --tracking-uri http://mlflow.ml.svc:5000 "
        "--experiment sweeper"
    )


def test_a_failed_trial_is_named_with_its_log(argo: FakeArgo, workdir: Path) -> None:
    argo.script = [
        (
            "Failed",
            by_id(
                plan_node(),
                train_node("Succeeded", "1", "0"),
                train_node("Failed", "7", "2", message="Error (exit code 1)"),
            ),
        )
    ]
    argo.pod_logs["WF-train-7"] = "\n".join(
        [f"noise {i}" for i in range(40)] + ["FAILED lasso alpha=-1: InvalidParameterError: …"]
    )
    result = sweeper(["-m"], argo, workdir)
    assert result.returncode == 1
    watch = r"^Failed: 3/9 done, 3 failed, 0 running, 3 queued; \d+:\d\d:\d\d elapsed$"
    assert re.search(watch, result.stdout, re.MULTILINE), result.stdout
    assert "failed: train(7) (train chunk=2): Error (exit code 1)" in result.stdout
    assert "  | FAILED lasso alpha=-1: InvalidParameterError: …" in result.stdout
    assert "noise 10" not in result.stdout  # only the tail


def test_refused_token_is_one_line_without_the_token(argo: FakeArgo, workdir: Path) -> None:
    result = sweeper(["-m"], argo, workdir, token="wrong-token-value")
    assert result.returncode != 0
    assert f"Argo server {argo.url} refused the token (HTTP 401)" in result.stderr
    assert "wrong-token-value" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_no_wait_returns_after_submit(argo: FakeArgo, workdir: Path) -> None:
    result = sweeper(["argo.wait=false", "-m"], argo, workdir)
    assert result.returncode == 0, result.stderr
    assert [a for _, a in argo.requests] == ["create_workflow"]


def test_watch_gives_up_after_its_timeout(argo: FakeArgo, workdir: Path) -> None:
    argo.script = [("Running", by_id(plan_node("Running")))]
    result = sweeper(["argo.watch_timeout=0.3", "-m"], argo, workdir)
    assert result.returncode != 0
    assert "is still Running after 0 s; it goes on running: argo watch -n ml" in result.stderr


def test_cron_is_created_then_updated(argo: FakeArgo, workdir: Path) -> None:
    first = sweeper(["argo.schedule=0 2 * * *", "-m"], argo, workdir)
    assert first.returncode == 0, first.stderr
    [name] = argo.crons
    assert f"CronWorkflow {name} created in namespace ml: runs at 0 2 * * *" in first.stdout
    second = sweeper(["argo.schedule=30 3 * * *", "argo.timezone=UTC", "-m"], argo, workdir)
    assert second.returncode == 0, second.stderr
    assert f"CronWorkflow {name} updated" in second.stdout
    assert list(argo.crons) == [name]
    assert argo.crons[name]["spec"]["schedules"] == ["30 3 * * *"]
    assert argo.crons[name]["metadata"]["resourceVersion"] == "2"
    assert [a for _, a in argo.requests] == [
        "create_cron",
        "create_cron",
        "get_cron",
        "update_cron",
    ]


def test_a_template_and_its_cron_are_created_then_updated(argo: FakeArgo, workdir: Path) -> None:
    first = sweeper(["argo.template=true", "argo.schedule=0 2 * * *", "-m"], argo, workdir)
    assert first.returncode == 0, first.stderr
    [name] = argo.templates
    assert list(argo.crons) == [name]
    assert f"WorkflowTemplate {name} created in namespace ml" in first.stdout
    assert f"CronWorkflow {name} created in namespace ml: runs at 0 2 * * *" in first.stdout
    ref = argo.crons[name]["spec"]["workflowSpec"]["workflowTemplateRef"]
    assert ref == {"name": name}
    second = sweeper(
        ["argo.template=true", "argo.schedule=30 3 * * *", "eval.cv=3", "-m"], argo, workdir
    )
    assert second.returncode == 0, second.stderr
    assert f"WorkflowTemplate {name} updated" in second.stdout
    assert f"CronWorkflow {name} updated" in second.stdout
    assert argo.templates[name]["metadata"]["resourceVersion"] == "2"
    assert argo.crons[name]["spec"]["schedules"] == ["30 3 * * *"]
    [parameter] = argo.templates[name]["spec"]["arguments"]["parameters"]
    assert "eval.cv=3" in Definition.decoded(parameter["value"]).overrides
    assert [a for _, a in argo.requests] == [
        "create_template",
        "create_cron",
        "create_template",
        "get_template",
        "update_template",
        "create_cron",
        "get_cron",
        "update_cron",
    ]


def test_a_server_that_keeps_failing_is_given_up_on(argo: FakeArgo, workdir: Path) -> None:
    argo.fail_next["create_workflow"] = 100
    result = sweeper(["-m"], argo, workdir)
    assert result.returncode != 0
    assert f"Argo server {argo.url}: Server returned status code 503" in result.stderr
    assert [a for _, a in argo.requests].count("create_workflow") == 5  # bounded retries


def test_argo_needs_a_server_or_a_file(workdir: Path) -> None:
    result = run_sweeper([*SWEEP, "-m"], cwd=workdir)
    assert result.returncode != 0
    assert "backend=argo needs argo.server=https://… (or argo.render_to=FILE)" in result.stderr
