"""The sweep definition compiled into an Argo Workflow or CronWorkflow with Hera.

    plan ──► group (one per preprocess group, withParam) ──► exit handler: summary
              └ preprocess ──► train (one pod per chunk of trials, withParam)

The manifest carries the command-line overrides, not the trials: the `plan` step expands them
with the config tree inside the image, so its size does not grow with the number of trials.
Every container gets its arguments as a list; nothing goes through a shell.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Sequence
from datetime import datetime, timezone

from hera.workflows import (
    DAG,
    Container,
    CronWorkflow,
    Env,
    Parameter,
    RetryStrategy,
    SecretEnvFrom,
    Task,
    Workflow,
)
from hera.workflows import models as m
from omegaconf import DictConfig

from sweeper import storage
from sweeper.argo.names import dns_label, label_value
from sweeper.errors import SweeperError

OUTPUTS = "/tmp/outputs"  # where the plan step writes its output parameters
PLAN_URL = "{root}/sweeps/{{{{workflow.name}}}}/plan.json"
POD_RESOURCES = ("cpu", "memory", "memory_limit")


def check_reachable(cfg: DictConfig) -> None:
    """Pods need storage and tracking they can reach over the network."""
    root, uri = str(cfg.storage.root), str(cfg.mlflow.tracking_uri)
    if storage.is_local(root):
        raise SweeperError(
            f"storage.root={root} is a local folder; backend=argo needs a URL every pod can "
            "reach, e.g. storage.root=s3://bucket/sweeps"
        )
    if not uri.startswith(("http://", "https://", "databricks")):
        raise SweeperError(
            f"mlflow.tracking_uri={uri} is not a tracking server; backend=argo needs one every "
            "pod can reach, e.g. mlflow.tracking_uri=http://mlflow.ml.svc:5000"
        )


def compile_sweep(
    overrides: Sequence[str], multirun: bool, cfg: DictConfig, batch: Sequence[str] | None = None
) -> Workflow | CronWorkflow:
    """The Workflow (or, with argo.schedule, the CronWorkflow) that runs this sweep.

    `batch`: the plan step's arguments that list its trials' overrides one by one (`--jobs …`, an
    optimiser's batch; see sweeper.argo.batch), instead of a definition for it to expand."""
    check_reachable(cfg)
    argo = cfg.argo
    plan_url = PLAN_URL.format(root=str(cfg.storage.root).rstrip("/"))
    experiment = label_value(str(cfg.mlflow.experiment))
    common = _workflow_fields(argo, experiment)
    scheduled = argo.schedule is not None
    if scheduled:
        name = argo.name or f"sweeper-{cfg.mlflow.experiment}"
        workflow: Workflow | CronWorkflow = CronWorkflow(
            name=dns_label(str(name), 52),  # Argo appends a timestamp to each run's name
            schedules=[str(argo.schedule)],
            timezone=argo.timezone,
            concurrency_policy="Forbid",
            successful_jobs_history_limit=3,
            failed_jobs_history_limit=3,
            starting_deadline_seconds=3600,
            labels={"sweeper/experiment": experiment},
            workflow_metadata=m.WorkflowMetadata(labels={"sweeper/experiment": experiment}),
            **common,
        )
    else:
        name = f"sweeper-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{_random.token_hex(2)}"
        workflow = Workflow(
            name=name,
            labels={"sweeper/sweep-id": name, "sweeper/experiment": experiment},
            **common,
        )
    with workflow:
        definition = [*(["--multirun"] if multirun else []), "--", *overrides]
        _templates(argo, definition if batch is None else list(batch), plan_url)
    return workflow


def _workflow_fields(argo: DictConfig, experiment: str) -> dict:
    fields: dict = {
        "namespace": str(argo.namespace),
        "entrypoint": "sweep",
        "on_exit": "summary",
        "parallelism": argo.parallelism,
        "active_deadline_seconds": argo.active_deadline_seconds,
        "service_account_name": argo.service_account,
        "pod_metadata": m.Metadata(labels={"sweeper/experiment": experiment}),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _templates(argo: DictConfig, definition: Sequence[str], plan_url: str) -> None:
    image = str(argo.image)
    env = [Env(name=str(k), value=str(v)) for k, v in (argo.env or {}).items()]
    env_from = [SecretEnvFrom(name=str(s)) for s in argo.secrets or []]
    # Retried only when the cluster lost the pod (OnError), not when a trial itself failed.
    retry = RetryStrategy(
        limit=str(int(argo.retries)),  # IntOrString: the schema takes the string form
        retry_policy="OnError",
        backoff=m.Backoff(duration="10s", factor="2", max_duration="5m"),
    )

    def step(name: str, module: str, args: list[str], **extra: object) -> Container:
        return Container(
            name=name,
            image=image,
            command=["python", "-m", module],
            args=args,
            env=env or None,
            env_from=env_from or None,
            retry_strategy=retry,
            **extra,
        )

    plan_args = ["--sweep-id", "{{workflow.name}}", "--outputs", OUTPUTS,
                 "--trials-per-pod", str(int(argo.trials_per_pod))]  # fmt: skip
    plan = step(
        "plan",
        "steps.plan",
        [*plan_args, *definition],
        outputs=[Parameter(name="groups", value_from=m.ValueFrom(path=f"{OUTPUTS}/groups.json"))],
    )
    preprocess = step(
        "preprocess",
        "steps.preprocess",
        ["--plan", plan_url, "--group", "{{inputs.parameters.group}}"],
        inputs=[Parameter(name="group")],
    )
    train = step(
        "train",
        "steps.train",
        ["--plan", plan_url, "--trials", "{{inputs.parameters.trials}}"],
        inputs=[Parameter(name="trials"), *(Parameter(name=r) for r in POD_RESOURCES)],
        resources=m.ResourceRequirements(
            requests={
                "cpu": m.Quantity("{{inputs.parameters.cpu}}"),
                "memory": m.Quantity("{{inputs.parameters.memory}}"),
            },
            limits={"memory": m.Quantity("{{inputs.parameters.memory_limit}}")},
        ),
    )
    step("summary", "steps.summary", ["--plan", plan_url])

    # failFast off: one failing trial must not stop the others from being scheduled.
    with DAG(name="group", inputs=[Parameter(name="group"), Parameter(name="chunks")],
             fail_fast=False) as group:  # fmt: skip
        trained = Task(
            name="train",
            template=train,
            with_param="{{inputs.parameters.chunks}}",
            arguments={
                "trials": "{{item.trials}}",
                **{r: f"{{{{item.{r}}}}}" for r in POD_RESOURCES},
            },
        )
        Task(name="preprocess", template=preprocess,
             arguments={"group": "{{inputs.parameters.group}}"}) >> trained  # fmt: skip

    with DAG(name="sweep", fail_fast=False):
        planned = Task(name="plan", template=plan)
        planned >> Task(
            name="group",
            template=group,
            with_param="{{tasks.plan.outputs.parameters.groups}}",
            arguments={"group": "{{item.group}}", "chunks": "{{item.chunks}}"},
        )
