"""The sweep definition compiled into an Argo Workflow, CronWorkflow or WorkflowTemplate with Hera.

    plan ──► group (one per preprocess group, withParam) ──► exit handler: summary
              └ preprocess ──► pods (per pod size, withParam; when it has trials to train)
                                └ train (one pod per chunk of trials, withSequence)

The manifest carries the command-line overrides (encoded: Argo reads no `{{…}}` in them), not the
trials: the `plan` step expands them with the config tree inside the image and writes each chunk
of trials to storage, so neither the manifest nor what Argo keeps of the plan step's output grows
with the number of trials. Every container gets its arguments as a list; nothing goes through a
shell.
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Callable
from datetime import datetime, timezone

from hera.workflows import (
    DAG,
    Container,
    CronWorkflow,
    Env,
    Parameter,
    RetryStrategy,
    SecretEnv,
    SecretEnvFrom,
    Task,
    Workflow,
    WorkflowTemplate,
)
from hera.workflows import models as m

from sweeper.core import provenance, storage, trust
from sweeper.core.settings import ArgoSettings, SearchKind, Settings
from sweeper.executors.argo import events, metrics, notify_step
from sweeper.executors.argo.checks import check_definition, check_reachable
from sweeper.executors.argo.names import dns_label, label_value
from sweeper.planning.definition import Definition

OUTPUTS = "/tmp/outputs"  # where the plan step writes its output parameters
POD_RESOURCES = ("cpu", "memory", "memory_limit")
# The pods' own entry points; the plan and summary steps orchestrate, so they live here.
PLAN_STEP = "sweeper.executors.argo.plan_step"
SUMMARY_STEP = "sweeper.executors.argo.summary_step"
PROMOTE_STEP = "sweeper.executors.argo.promote_step"  # search=halving: a round's trials
NOTIFY_STEP = "sweeper.executors.argo.notify_step"  # argo.notify: the exit hook's webhook
DEFINITION = "definition"  # a WorkflowTemplate's parameter: the encoded definition


def _resources(given: object) -> m.ResourceRequirements:
    """`argo.step_resources` ({requests: {cpu, memory}, limits: {memory}}) as Kubernetes'."""
    spec = given if isinstance(given, dict) else {}

    def quantities(part: str) -> dict[str, m.Quantity] | None:
        values = spec.get(part) or {}
        return {str(k): m.Quantity(str(v)) for k, v in values.items()} or None

    return m.ResourceRequirements(requests=quantities("requests"), limits=quantities("limits"))


def compile_sweep(definition: Definition, settings: Settings) -> Workflow | CronWorkflow:
    """The Workflow (or, with argo.schedule, the CronWorkflow) that runs this definition: its
    plan step gets the definition as arguments and plans the trials inside the cluster."""
    check_reachable(settings)
    check_definition(definition)
    argo = settings.argo
    experiment = label_value(settings.mlflow.experiment)
    if argo.schedule is not None:
        name = dns_label(argo.name or f"sweeper-{settings.mlflow.experiment}", 52)
        workflow: Workflow | CronWorkflow = _cron(name, argo.schedule, argo, experiment)
    else:
        name = f"sweeper-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{_random.token_hex(2)}"
        workflow = Workflow(
            name=name, labels={"sweeper/sweep-id": name, "sweeper/experiment": experiment}
        )
    _sweep(workflow, name, definition.portable().encoded(), settings)
    return workflow


def compile_template(
    definition: Definition, settings: Settings
) -> tuple[WorkflowTemplate, CronWorkflow | None]:
    """The WorkflowTemplate that runs this definition, kept in Git and synced by a platform's
    GitOps: the definition is its `definition` parameter's default, so a run may be given
    another. With argo.schedule, the CronWorkflow that runs it by reference (a change of schedule
    leaves the template alone)."""
    check_reachable(settings)
    check_definition(definition)
    argo = settings.argo
    experiment = label_value(settings.mlflow.experiment)
    name = dns_label(argo.name or f"sweeper-{settings.mlflow.experiment}", 52)
    encoded = definition.portable().encoded()
    parameters = [Parameter(name=DEFINITION, value=encoded)]
    data: list[str] = []  # with argo.trigger, the plan step's data: the object that landed
    if argo.trigger:
        bucket = events.watched(argo).bucket
        parameters.append(Parameter(name=events.DATA_KEY, value=""))
        key = f"{{{{workflow.parameters.{events.DATA_KEY}}}}}"
        data = ["--data-bucket", f"s3://{bucket}", "--data-key", key]
    template = WorkflowTemplate(
        name=name, labels={"sweeper/experiment": experiment}, arguments=parameters
    )
    _sweep(template, name, f"{{{{workflow.parameters.{DEFINITION}}}}}", settings, data)
    if argo.schedule is None:
        return template, None
    cron = _cron(name, argo.schedule, argo, experiment, m.WorkflowTemplateRef(name=name))
    cron.namespace = argo.namespace
    return template, cron


def _cron(
    name: str,
    schedule: str,
    argo: ArgoSettings,
    experiment: str,
    ref: m.WorkflowTemplateRef | None = None,
) -> CronWorkflow:
    """A CronWorkflow on `schedule` whose runs never overlap; it holds the sweep (see
    `_sweep`) or, with `ref`, runs that WorkflowTemplate. `name`: at most 52 characters, as
    Argo appends a timestamp to each run's name."""
    return CronWorkflow(
        name=name,
        schedules=[schedule],
        timezone=argo.timezone,
        concurrency_policy="Forbid",
        successful_jobs_history_limit=3,
        failed_jobs_history_limit=3,
        starting_deadline_seconds=3600,
        labels={"sweeper/experiment": experiment},
        workflow_metadata=m.WorkflowMetadata(labels={"sweeper/experiment": experiment}),
        workflow_template_ref=ref,
    )


def _sweep(
    workflow: Workflow,
    name: str,
    definition: str,
    settings: Settings,
    data: list[str] | None = None,
) -> None:
    """Fill `workflow` (named `name`) with the sweep's steps, their plan step given
    `definition`: the encoded definition, or a parameter that holds it (and `data`: more
    arguments that name its data)."""
    argo = settings.argo
    experiment = label_value(settings.mlflow.experiment)
    workflow.namespace = argo.namespace
    workflow.entrypoint = "sweep"
    workflow.on_exit = "exit" if argo.notify else "summary"
    workflow.metrics = metrics.workflow_metrics(experiment)
    workflow.parallelism = argo.parallelism
    workflow.active_deadline_seconds = argo.active_deadline_seconds
    workflow.service_account_name = argo.service_account
    pod_labels = {"app.kubernetes.io/name": "sweeper", "sweeper/experiment": experiment}
    if type(workflow) is Workflow:  # Hera's CronWorkflow and WorkflowTemplate are Workflows
        pod_labels["sweeper/sweep-id"] = name  # a cron's or template's run is named by Argo
    workflow.pod_metadata = m.Metadata(labels=pod_labels)
    _lifecycle(workflow, argo)
    with workflow:
        mutex = dns_label(f"sweeper-{settings.mlflow.experiment}", 63)
        trusted = trust.pod_arguments(settings.trust)
        halving = settings.search.kind == SearchKind.halving
        summary = _templates(
            argo, [definition, *(data or [])], settings.storage.root, mutex, trusted, halving
        )
        summary.metrics = metrics.summary_metrics(experiment)


def _lifecycle(workflow: Workflow, argo: ArgoSettings) -> None:
    """Pod Security "restricted" for every pod, and the defaults a shared cluster expects: pods
    of successful steps deleted, finished workflows deleted after a while, a deadline."""
    workflow.security_context = m.PodSecurityContext(
        run_as_non_root=True,
        run_as_user=argo.run_as_user,
        run_as_group=argo.run_as_group,
        fs_group=argo.run_as_group,
        seccomp_profile=m.SeccompProfile(type="RuntimeDefault"),
    )
    if argo.pod_gc:
        workflow.pod_gc = m.PodGC(strategy=argo.pod_gc)
    if argo.ttl_after_success is not None or argo.ttl_after_failure is not None:
        workflow.ttl_strategy = m.TTLStrategy(
            seconds_after_success=argo.ttl_after_success,
            seconds_after_failure=argo.ttl_after_failure,
        )
    # The steps write only under /tmp (outputs, caches): an emptyDir on a read-only root.
    workflow.volumes = [m.Volume(name="tmp", empty_dir=m.EmptyDirVolumeSource())]
    if argo.node_selector:
        workflow.node_selector = {str(k): str(v) for k, v in dict(argo.node_selector).items()}
    if argo.tolerations:
        workflow.tolerations = [m.Toleration(**dict(t)) for t in argo.tolerations]
    workflow.pod_priority_class_name = argo.priority_class
    if argo.image_pull_secrets:
        workflow.image_pull_secrets = [
            m.LocalObjectReference(name=str(s)) for s in argo.image_pull_secrets
        ]


def _templates(
    argo: ArgoSettings,
    definition: list[str],
    root: str,
    mutex: str,
    trusted: list[str],
    halving: bool = False,
) -> Container:
    """`definition`: what follows the plan step's `--definition`. `trusted`: the trust
    settings every pod that builds or loads a model is given. `halving`: each group trains in
    rounds of successive halving (see rounds). Returns the summary step (the exit handler)."""
    image = argo.image
    plan_url = storage.sweep_url(root.rstrip("/"), "{{workflow.name}}", storage.PLAN)
    chunk = storage.chunk_record("{{inputs.parameters.chunk}}")
    chunk_url = storage.sweep_url(root.rstrip("/"), "{{workflow.name}}", chunk)
    # Caches the libraries keep under $HOME (matplotlib's, MLflow's) go to the writable /tmp.
    scratch = {"HOME": "/tmp", "MPLCONFIGDIR": "/tmp/matplotlib"}
    known = {provenance.IMAGE_ENV: image}  # the sweep's run says which image trained it
    env = [Env(name=k, value=v) for k, v in {**scratch, **known, **argo.environment}.items()]
    env_from = [SecretEnvFrom(name=str(s)) for s in argo.secrets]
    # Retried only when the cluster lost the pod (OnError), not when a trial itself failed; no
    # maxDuration: it counts from the first attempt, so a pod lost late would get no retry.
    retry = RetryStrategy(
        limit=str(argo.retries),  # IntOrString: the schema takes the string form
        retry_policy="OnError",
        backoff=m.Backoff(duration="10s", factor=m.IntOrString("2")),
    )
    security = m.SecurityContext(
        allow_privilege_escalation=False,
        capabilities=m.Capabilities(drop=["ALL"]),
        read_only_root_filesystem=argo.read_only_root,
        run_as_non_root=True,
    )
    step_resources = _resources(argo.step_resources)
    tag = image.rsplit("/", 1)[-1]
    pull = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"

    def step(
        name: str,
        module: str,
        args: list[str],
        inputs: list[Parameter] | None = None,
        outputs: list[Parameter] | None = None,
        resources: m.ResourceRequirements | None = None,
        secret_env: list[SecretEnv] | None = None,
    ) -> Container:
        return Container(
            name=name,
            image=image,
            image_pull_policy=pull,
            command=["python", "-m", module],
            args=args,
            env=[*env, *(secret_env or [])] or None,
            env_from=env_from or None,
            retry_strategy=retry,
            inputs=inputs,
            outputs=outputs,
            resources=resources or step_resources,
            security_context=security,
            volume_mounts=[m.VolumeMount(name="tmp", mount_path="/tmp")],
        )

    per_pod = ["--trials-per-pod", str(argo.trials_per_pod)]
    plan_args = ["--sweep-id", "{{workflow.name}}", "--outputs", OUTPUTS, *per_pod]
    plan = step(
        "plan",
        PLAN_STEP,
        [*plan_args, "--definition", *definition],
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
        ["--plan", chunk_url, *trusted],  # every trial of the chunk
        inputs=[Parameter(name="chunk"), *(Parameter(name=r) for r in POD_RESOURCES)],
        resources=m.ResourceRequirements(
            requests={
                "cpu": m.Quantity("{{inputs.parameters.cpu}}"),
                "memory": m.Quantity("{{inputs.parameters.memory}}"),
            },
            limits={"memory": m.Quantity("{{inputs.parameters.memory_limit}}")},
        ),
    )
    summary = step(
        "summary",
        SUMMARY_STEP,
        ["--plan", plan_url, "--outputs", OUTPUTS, *trusted],
        outputs=metrics.summary_outputs(OUTPUTS),
    )
    # One summary of an experiment at a time: a nightly run and a manual one never decide a
    # registry promotion side by side.
    summary.synchronization = m.Synchronization(mutexes=[m.Mutex(name=mutex)])
    if argo.notify:  # the exit handler: the summary, then the webhook, whatever happened
        _exit_hook(step, summary, plan_url, argo.notify)
    resources = {r: f"{{{{inputs.parameters.{r}}}}}" for r in POD_RESOURCES}

    # failFast off: one failing trial must not stop the others from being scheduled.
    # A run of consecutive chunk numbers that share a pod size: a train pod each. `prefix`
    # names a halving round's chunks (empty for a grid's).
    with DAG(
        name="pods",
        inputs=[Parameter(name=n) for n in ("first", "count", "prefix", *POD_RESOURCES)],
        fail_fast=False,
    ) as pods:
        Task(
            name="train",
            template=train,
            with_sequence=m.Sequence(
                start=m.IntOrString("{{inputs.parameters.first}}"),
                count=m.IntOrString("{{inputs.parameters.count}}"),
            ),
            arguments={"chunk": "{{inputs.parameters.prefix}}{{item}}", **resources},
        )
    fanned = {
        "first": "{{item.first}}",
        "count": "{{item.count}}",
        **{r: f"{{{{item.{r}}}}}" for r in POD_RESOURCES},
    }
    rounds = _rounds(step, pods, plan_url, per_pod, fanned) if halving else None

    with DAG(
        name="group",
        inputs=[Parameter(name=n) for n in ("group", "to_train", "pods")],
        fail_fast=False,
    ) as group:
        if rounds is not None:  # search=halving: round 0 decides what it trains
            trained = Task(
                name="round",
                template=rounds,
                arguments={"group": "{{inputs.parameters.group}}", "round": "0"},
            )
        else:
            trained = Task(
                name="pods",
                template=pods,
                with_param="{{inputs.parameters.pods}}",
                when="{{inputs.parameters.to_train}} > 0",  # finished before: no pod at all
                arguments={**fanned, "prefix": ""},
            )
        (
            Task(
                name="preprocess",
                template=preprocess,
                arguments={"group": "{{inputs.parameters.group}}"},
            )
            >> trained
        )

    with DAG(name="sweep", fail_fast=False):
        planned = Task(name="plan", template=plan)
        planned >> Task(
            name="group",
            template=group,
            with_param="{{tasks.plan.outputs.parameters.groups}}",
            arguments={
                "group": "{{item.group}}",
                "to_train": "{{item.to_train}}",
                "pods": "{{item.pods}}",
            },
        )
    return summary


def _exit_hook(
    step: Callable[..., Container], summary: Container, plan_url: str, secret: str
) -> None:
    """argo.notify: the summary, then a pod that tells the webhook whose URL the Secret
    `secret` holds (key `url`) of a failure or a new champion, whether or not the summary
    succeeded: a failed summary is a failure to tell of, and the notify pod then fails too, so
    that the workflow fails as it would have without it (a DAG's phase is its last task's)."""
    notify = step(
        "notify",
        NOTIFY_STEP,
        [
            *("--plan", plan_url),
            *("--workflow", "{{workflow.name}}"),
            *("--status", "{{inputs.parameters.status}}"),
            *("--summary", "{{inputs.parameters.summary}}"),
        ],
        inputs=[Parameter(name="status"), Parameter(name="summary")],
        resources=m.ResourceRequirements(
            requests={"cpu": m.Quantity("50m"), "memory": m.Quantity("256Mi")},
            limits={"memory": m.Quantity("512Mi")},
        ),
        secret_env=[SecretEnv(name=notify_step.URL_ENV, secret_name=secret, secret_key="url")],
    )
    with DAG(name="exit", fail_fast=False):
        concluded = Task(
            name="summary", template=summary, continue_on=m.ContinueOn(failed=True, error=True)
        )
        concluded >> Task(
            name="notify",
            template=notify,
            arguments={"status": "{{workflow.status}}", "summary": "{{tasks.summary.status}}"},
        )


def _rounds(
    step: Callable[..., Container],
    pods: DAG,
    plan_url: str,
    per_pod: list[str],
    fanned: dict[str, str],
) -> DAG:
    """search=halving's rounds (see rounds): a promote pod decides what the round trains, its
    train pods train it, and the next round follows until one has nothing to train. Recursive,
    so the manifest does not depend on how many rungs the plan step finds."""
    promote = step(
        "promote",
        PROMOTE_STEP,
        [
            "--plan",
            plan_url,
            "--group",
            "{{inputs.parameters.group}}",
            "--round",
            "{{inputs.parameters.round}}",
            "--outputs",
            OUTPUTS,
            *per_pod,
        ],
        inputs=[Parameter(name="group"), Parameter(name="round")],
        outputs=[
            Parameter(name=name, value_from=m.ValueFrom(path=f"{OUTPUTS}/{name}"))
            for name in ("pods", "to_train", "prefix", "next")
        ],
    )
    decided = "{{tasks.promote.outputs.parameters.%s}}"
    with DAG(
        name="round", inputs=[Parameter(name="group"), Parameter(name="round")], fail_fast=False
    ) as rounds:
        decide = Task(
            name="promote",
            template=promote,
            arguments={
                "group": "{{inputs.parameters.group}}",
                "round": "{{inputs.parameters.round}}",
            },
        )
        # A failed trial is an outcome the next round is decided with, and so is a lost pod's
        # (Error, after its retries: its trials count as failed): go on after either.
        trained = Task(
            name="pods",
            template=pods,
            with_param=decided % "pods",
            when=f"{decided % 'to_train'} > 0",
            continue_on=m.ContinueOn(failed=True, error=True),
            arguments={**fanned, "prefix": decided % "prefix"},
        )
        following = Task(
            name="next",
            template="round",
            when=f"{decided % 'to_train'} > 0",
            arguments={"group": "{{inputs.parameters.group}}", "round": decided % "next"},
        )
        decide >> trained
        trained >> following
    return rounds
