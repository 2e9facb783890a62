"""backend=argo: rendered manifests checked against Argo's schema, then executed step by step."""

from __future__ import annotations

import contextlib
import json
import secrets
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from mlflow.tracking import MlflowClient

import support.step_image as step_image_module
from support.argo import (
    DNS_LABEL,
    REMOTE,
    SCHEMA,
    ExecutingArgo,
    check_structure,
    render,
    validate,
)
from support.argo_runner import ArgoRunner, base_env
from support.fake_argo import load_swagger, serve
from support.mlflow_view import sweeps
from support.servers import PROJECT, SHARED_DATA, S3Server, data_file, run_sweeper
from support.step_image import Container
from sweeper.planning.definition import Definition


@pytest.fixture(scope="module")
def argo_schema() -> dict[str, Any]:
    return json.loads(SCHEMA.read_text())


def test_workflow_and_cron_workflow_are_valid(workdir: Path, argo_schema: dict[str, Any]) -> None:
    workflow = render(
        workdir,
        [
            "model=rf,lasso",
            *REMOTE,
            "argo.parallelism=4",
            "argo.service_account=sweeper",
            "argo.secrets=[s3,mlflow]",
            "-m",
        ],
    )
    validate(workflow, argo_schema)
    check_structure(workflow)
    assert workflow["kind"] == "Workflow"
    assert workflow["spec"]["parallelism"] == 4
    assert workflow["spec"]["serviceAccountName"] == "sweeper"
    assert workflow["metadata"]["labels"]["sweeper/sweep-id"] == workflow["metadata"]["name"]
    train = next(t for t in workflow["spec"]["templates"] if t["name"] == "train")
    assert train["container"]["envFrom"] == [
        {"secretRef": {"name": "s3"}},
        {"secretRef": {"name": "mlflow"}},
    ]
    assert train["retryStrategy"]["retryPolicy"] == "OnError"

    cron = render(
        workdir,
        [
            "model=rf,lasso",
            *REMOTE,
            "argo.schedule=0 2 * * *",
            "argo.timezone=Europe/Berlin",
            "mlflow.experiment='Nightly Sales!'",
            "-m",
        ],
    )
    validate(cron, argo_schema)
    check_structure(cron)
    assert cron["kind"] == "CronWorkflow"
    assert cron["spec"]["schedules"] == ["0 2 * * *"]
    assert cron["spec"]["timezone"] == "Europe/Berlin"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert DNS_LABEL.match(cron["metadata"]["name"]) and len(cron["metadata"]["name"]) <= 52
    again = render(
        workdir,
        [
            "model=rf,lasso",
            *REMOTE,
            "argo.schedule=0 2 * * *",
            "mlflow.experiment='Nightly Sales!'",
            "-m",
        ],
    )
    assert again["metadata"]["name"] == cron["metadata"]["name"]  # stable: updated, not duplicated


def test_manifest_size_does_not_grow_with_trials(workdir: Path) -> None:
    small = render(workdir, ["model=lasso", "model.alpha=1,2", *REMOTE, "-m"])
    large = render(workdir, ["model=lasso", "model.alpha=range(0,10000)", *REMOTE, "-m"])
    small_bytes, large_bytes = len(yaml.safe_dump(small)), len(yaml.safe_dump(large))
    assert large_bytes < 64 * 1024
    assert abs(large_bytes - small_bytes) < 64  # only the override's own text differs


def test_a_halving_sweep_is_rounds_of_one_workflow(
    workdir: Path, argo_schema: dict[str, Any]
) -> None:
    """search=halving: each group halves in rounds, a promote pod then that round's train pods,
    the next round calling the same template until one has nothing to train; so the manifest is
    the same for 2 configurations or 10,000 and whatever number of rungs the plan finds."""
    args = ["model=lasso", "search=halving", *REMOTE, "-m"]
    small = render(workdir, ["model.alpha=1,2", *args])
    large = render(workdir, ["model.alpha=range(1,10001)", *args])
    for manifest in (small, large):
        validate(manifest, argo_schema)
        check_structure(manifest)
    assert abs(len(yaml.safe_dump(large)) - len(yaml.safe_dump(small))) < 64
    templates = {t["name"]: t for t in small["spec"]["templates"]}
    group = {t["name"]: t for t in templates["group"]["dag"]["tasks"]}
    assert group["round"]["template"] == "round"
    assert group["round"]["arguments"]["parameters"][1] == {"name": "round", "value": "0"}
    tasks = {t["name"]: t for t in templates["round"]["dag"]["tasks"]}
    assert [tasks[n]["template"] for n in ("promote", "pods", "next")] == [
        "promote",
        "pods",
        "round",
    ]
    # A failed trial is an outcome, and so is a pod lost after its retries (Error).
    assert tasks["pods"]["continueOn"] == {"failed": True, "error": True}
    assert tasks["next"]["depends"] == "pods"
    promote = templates["promote"]["container"]
    assert promote["command"] == ["python", "-m", "sweeper.executors.argo.promote_step"]
    # A grid's groups train their chunks directly, with no rounds.
    grid = render(workdir, ["model=lasso", "model.alpha=1,2", *REMOTE, "-m"])
    assert {t["name"] for t in grid["spec"]["templates"]}.isdisjoint({"round", "promote"})


def upload_table_with_awkward_column(s3: S3Server, bucket: str) -> tuple[str, str]:
    """Carseats with one more column whose name needs quoting everywhere."""
    awkward = 'note $(touch pwned); "quoted" it\'s'
    table = pd.read_csv(data_file("carseats.csv"))
    table[awkward] = "x"
    fs = s3.fs()
    fs.mkdir(bucket)
    with fs.open(f"{bucket}/in/carseats.csv", "wb") as f:
        f.write(table.to_csv(index=False).encode())
    return f"s3://{bucket}/in/carseats.csv", awkward


@pytest.fixture(scope="session")
def step_image() -> Iterator[Container]:
    """docker/Dockerfile built with buildah; a working container of it."""
    step_image_module.build(PROJECT, step_image_module.TAG)  # seconds after `make step-image`
    container = Container(step_image_module.TAG)
    yield container
    container.remove()


def test_step_image(step_image: Container) -> None:
    whoami = step_image.run("python", "-c", "import os; print(os.getuid())")
    assert whoami.returncode == 0 and whoami.stdout.strip() == "10001"  # not root
    # No build tools in the final stage: the image's own PATH finds no compiler (asked of
    # Python, whose answer is printed, so a failing `buildah run` cannot pass for it).
    which = "import shutil; print([shutil.which(c) for c in ('gcc', 'cc', 'make')])"
    compilers = step_image.run("python", "-c", which)
    assert (compilers.returncode, compilers.stdout.strip()) == (0, "[None, None, None]")
    job = step_image.run("python", "-m", "sweeper", "model=lasso", "--cfg", "job")
    assert job.returncode == 0 and "sklearn.linear_model.Lasso" in job.stdout  # conf inside


def test_executed_workflow_matches_the_local_backend(
    workdir: Path, s3_server: S3Server, mlflow_server: str, step_image: Container
) -> None:
    """Every pod's command runs inside the step image (the failed-trial and Optuna workflows
    below run theirs as processes, the same commands without the image)."""
    bucket = f"argo-{secrets.token_hex(3)}"
    path, awkward = upload_table_with_awkward_column(s3_server, bucket)
    drop = "data.drop=['" + awkward.replace("'", "\\'") + "']"
    sweep = [
        "data=csv",
        f"data.path={path}",
        "data.target=Sales",
        drop,
        "model=rf,lasso",
        f"mlflow.tracking_uri={mlflow_server}",
    ]

    local_args = [*sweep, f"storage.root=s3://{bucket}/local", "mlflow.experiment=executed-local"]
    local = run_sweeper([*local_args, "-m"], cwd=workdir, env=s3_server.env)
    assert local.returncode == 0, local.stderr

    endpoint = {"AWS_ENDPOINT_URL": s3_server.endpoint, "AWS_DEFAULT_REGION": "us-east-1"}
    manifest = render(
        workdir,
        [
            *sweep,
            f"storage.root=s3://{bucket}/argo",
            "mlflow.experiment=executed-argo",
            "argo.secrets=[s3-credentials]",
            "argo.trials_per_pod=2",
            "argo.env={" + ",".join(f"{k}:'{v}'" for k, v in endpoint.items()) + "}",
            "-m",
        ],
    )
    credentials = {k: v for k, v in s3_server.env.items() if k.startswith("AWS_") and "KEY" in k}
    wrap = step_image.command
    runner = ArgoRunner(
        manifest, env=base_env(), secrets={"s3-credentials": credentials}, wrap=wrap
    )
    assert runner.run() == "Succeeded", [p.stderr[-2000:] for p in runner.pods if p.returncode]

    assert [p.template for p in runner.pods].count("train") == 3 + 2  # 6 rf and 3 lasso, 2 a pod
    assert [p.template for p in runner.pods].count("preprocess") == 1
    assert not (workdir / "pwned").exists()
    [on_argo] = sweeps(mlflow_server, "executed-argo")
    [on_local] = sweeps(mlflow_server, "executed-local")
    assert on_argo.sweep_id == runner.workflow_name
    # The same fits to the last few bits: a lasso fitted in the image (another Python build) has
    # been seen 1 ulp away from the same fit in the venv; BLAS threads were ruled out.
    assert {r.info.run_name: r.data.metrics["mse"] for r in on_argo.children} == pytest.approx(
        {r.info.run_name: r.data.metrics["mse"] for r in on_local.children}, rel=1e-12
    )
    assert len(on_argo.children) == 9
    for key in ("best_mse", "best_cv_mse", "n_trials", "n_failed"):
        local_value = on_local.parent.data.metrics[key]
        assert on_argo.parent.data.metrics[key] == pytest.approx(local_value, rel=1e-12), key
    assert on_argo.parent.info.status == "FINISHED"
    # The summary pod left the same things on the sweep's run as a local sweep does.
    client = MlflowClient(mlflow_server)
    for sweep in (on_argo, on_local):
        listed = client.list_artifacts(sweep.parent.info.run_id, "results")
        assert sorted(Path(a.path).name for a in listed) == [
            "configs.csv",
            "report.html",
            "results.csv",
            "results.html",
        ]
        assert len(client.list_artifacts(sweep.parent.info.run_id, "plots")) == 3
    best = min(on_argo.children, key=lambda r: r.data.metrics["cv_mse"])
    model_uri = client.get_run(best.info.run_id).data.tags["best_model_uri"]
    assert client.get_run(on_argo.parent.info.run_id).data.tags["best_model_uri"] == model_uri
    assert {r.data.params["data.drop"] for r in on_argo.children} == {awkward}
    plan = json.loads(s3_server.fs().cat(f"{bucket}/argo/sweeps/{runner.workflow_name}/plan.json"))
    assert plan["groups"][0]["data"]["drop"] == [awkward]


def test_failed_trials_still_get_a_summary(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    bucket = f"argo-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    manifest = render(
        workdir,
        [
            "model=knn",
            "model.weights=uniform",
            "model.n_neighbors=5,1000",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=argo-failing",
            f"argo.env={{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}",
            "argo.secrets=[s3]",
            "-m",
        ],
    )
    credentials = {k: v for k, v in s3_server.env.items() if "KEY" in k}
    runner = ArgoRunner(manifest, env=base_env(), secrets={"s3": credentials})
    assert runner.run() == "Failed"
    assert runner.pods[-1].template == "summary"
    assert "knn n_neighbors=1000" in runner.pods[-1].stdout
    [sweep] = sweeps(mlflow_server, "argo-failing")
    assert {r.info.run_name: r.info.status for r in sweep.children} == {
        "knn n_neighbors=5": "FINISHED",
        "knn n_neighbors=1000": "FAILED",
    }
    assert sweep.parent.data.metrics["n_failed"] == 1
    assert sweep.parent.info.status == "FAILED"

    # Submitted again (a new workflow, a new sweep): the finished trial is not trained again.
    metadata = {**manifest["metadata"], "name": manifest["metadata"]["name"] + "-again"}
    again = ArgoRunner(
        {**manifest, "metadata": metadata}, env=base_env(), secrets={"s3": credentials}
    )
    assert again.run() == "Failed"  # n_neighbors=1000 still fails
    _, second = sweeps(mlflow_server, "argo-failing")
    assert [r.info.run_name for r in second.children] == ["knn n_neighbors=1000"]
    assert second.parent.data.metrics["n_reused"] == 1
    assert "knn n_neighbors=5" in again.pods[-1].stdout  # the summary still ranks it


def test_a_lost_pod_in_a_halving_round_is_a_failure_and_a_resubmit_resumes(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    """A round's train pod that ends without logging its trial (lost after its retries): the
    next round counts that trial as failed, so the rounds still end and the summary says so.
    Submitted again, the new sweep trains only what no sweep finished: nothing twice."""
    bucket = f"argo-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    manifest = render(
        workdir,
        [
            "model=lasso",
            "model.alpha=0.001,0.01,0.03,0.1,0.3,1,3,10,30",  # rungs of 9, 3 and 1
            "search=halving",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={mlflow_server}",
            "mlflow.experiment=argo-halving",
            f"argo.env={{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}",
            "argo.secrets=[s3]",
            "argo.trials_per_pod=2",
            "-m",
        ],
    )
    credentials = {k: v for k, v in s3_server.env.items() if "KEY" in k}

    def losing(chunk: str) -> Callable[[list[str], dict[str, str], str], list[str]]:
        """Pods as the runner runs them, but the train pod of `chunk` exits without a trace."""

        def wrap(argv: list[str], pod_env: dict[str, str], pod_tmp: str) -> list[str]:
            if any(a.endswith(f"-{chunk}.json") for a in argv):
                return ["false"]
            args = [a.replace("/tmp/", f"{pod_tmp}/", 1) for a in argv[1:]]
            env = [f"{k}={v}" for k, v in {**base_env(), **pod_env}.items()]
            return ["env", "-i", *env, sys.executable, *args]

        return wrap

    first = ArgoRunner(manifest, env=base_env(), secrets={"s3": credentials}, wrap=losing("1-1"))
    assert first.run() == "Succeeded"  # the rounds went on past the lost pod
    rounds = [p.stdout for p in first.pods if p.template == "promote"]
    assert [line.split(": ", 1)[1].strip() for line in rounds] == [
        "9 trial(s) to train in 5 pod(s)",
        "3 trial(s) to train in 2 pod(s)",  # the second pod of round 1 is lost
        "1 trial(s) to train in 1 pod(s)",
        "nothing left to train",
    ]
    [sweep] = sweeps(mlflow_server, "argo-halving")
    summary = first.pods[-1]
    assert summary.template == "summary" and summary.returncode == 1  # a trial did not finish
    assert "its train pod ended without logging it" in summary.stdout
    assert sweep.parent.data.metrics["n_failed"] == 1
    client = MlflowClient(mlflow_server)
    experiment = sweep.parent.info.experiment_id

    def trained() -> Counter[str]:
        runs = client.search_runs([experiment], "attributes.status = 'FINISHED'", max_results=500)
        return Counter(r.data.tags["trial_key"] for r in runs if "trial_key" in r.data.tags)

    assert sum(trained().values()) == 9 + 2 + 1
    # Submitted again (a new workflow, a new sweep): only the lost trial, and what it leads to.
    metadata = {**manifest["metadata"], "name": manifest["metadata"]["name"] + "-again"}
    again = ArgoRunner(
        {**manifest, "metadata": metadata}, env=base_env(), secrets={"s3": credentials}
    )
    assert again.run() == "Succeeded"
    assert again.pods[-1].returncode == 0, again.pods[-1].stderr[-2000:]
    assert set(trained().values()) == {1}  # no rung trial trained twice
    _, second = sweeps(mlflow_server, "argo-halving")
    assert second.parent.data.metrics["n_failed"] == 0
    # The second sweep trains the lost trial (rung 1 fits on 81 rows a fold), and the last
    # rung only if that configuration is now rung 1's best: the first sweep's is another's.
    every = client.search_runs([experiment], max_results=500)
    own = [r for r in every if r.data.tags.get("sweep_id") == second.sweep_id]
    [lost] = [r for r in own if r.data.params.get("rows") == "81"]
    rung_1 = {r.info.run_name: r for r in every if r.data.params.get("rows") == "81"}
    assert len(rung_1) == 3
    best = min(rung_1, key=lambda name: rung_1[name].data.metrics["cv_mse"])
    full = {
        r.info.run_name for r in own if "trial_key" in r.data.tags and "rows" not in r.data.params
    }
    assert full == ({best} if best == lost.info.run_name else set())


def test_optuna_batch_executed_as_a_workflow(
    workdir: Path, s3_server: S3Server, mlflow_server: str, argo_schema: dict[str, Any]
) -> None:
    """hydra/sweeper=optuna with backend=argo: the batch is submitted as a workflow listing its
    trials, executed, and its results read back into the study. One batch of two trials: each
    workflow's pods take ~30 s here, so more batches would only repeat the same path."""
    import optuna  # the `optuna` extra: a missing plugin fails this test, it does not skip it

    bucket = f"optuna-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    fake = ExecutingArgo(
        load_swagger(SHARED_DATA.parent),
        pod_env=base_env(),
        pod_secrets={"s3": {k: v for k, v in s3_server.env.items() if "KEY" in k}},
    )
    experiment = f"optuna-{bucket}"
    remote = [
        f"storage.root=s3://{bucket}/store",
        f"mlflow.tracking_uri={mlflow_server}",
        f"mlflow.experiment={experiment}",
    ]
    with contextlib.contextmanager(serve)(fake) as argo:
        result = run_sweeper(
            [
                "hydra/sweeper=optuna",
                "model=lasso",
                "model.alpha=interval(0.01,5)",
                "hydra.sweeper.n_trials=2",
                "hydra.sweeper.n_jobs=2",
                "hydra.sweeper.sampler.seed=3",
                "hydra.sweeper.study_name=on-argo",
                "hydra.sweeper.storage=sqlite:///optuna.db",
                "backend=argo",
                f"argo.server={argo.url}",
                "argo.poll_seconds=0.2",
                "argo.trials_per_pod=2",
                "argo.secrets=[s3]",
                f"argo.env={{AWS_ENDPOINT_URL:'{s3_server.endpoint}',AWS_DEFAULT_REGION:us-east-1}}",
                *remote,
                "-m",
            ],
            # The launcher reads the batch's results.json from storage.root. The token comes from
            # the environment: as an override it would be one of Optuna's fixed params, stored.
            cwd=workdir,
            env={**s3_server.env, "ARGO_TOKEN": "good-token"},
        )
    fake.pool.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    [(name, manifest)] = fake.workflows.items()  # one batch of n_jobs=2: one workflow
    validate(manifest, argo_schema)
    check_structure(manifest)
    pods = fake.runners[name].pods
    assert [p.template for p in pods] == ["plan", "preprocess", "train", "summary"]

    found = optuna.load_study(study_name="on-argo", storage=f"sqlite:///{workdir / 'optuna.db'}")
    trials = sorted(found.trials, key=lambda t: t.number)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # The manifest lists exactly the batch's trials, as Optuna asked for them, minus argo.*.
    plan = next(t for t in manifest["spec"]["templates"] if t["name"] == "plan")
    args = plan["container"]["args"]
    parser = OverridesParser.create()
    definition = Definition.decoded(args[args.index("--definition") + 1])
    assert definition.jobs is not None
    jobs = [
        {o.key_or_group: o.value() for o in parser.parse_overrides(list(job))}
        for job in definition.jobs
    ]
    base = {o.key_or_group: o.value() for o in parser.parse_overrides(remote)}
    assert jobs == [
        {"model.alpha": t.params["model.alpha"], "model": "lasso", **base} for t in trials
    ]

    [sweep] = sweeps(mlflow_server, experiment)  # the workflow's own sweep run
    assert sweep.sweep_id == name and sweep.parent.info.status == "FINISHED"
    assert sweep.parent.data.params["study"] == "on-argo"
    assert sweep.parent.data.params["study.batch"] == "1"
    by_alpha = {
        float(r.data.params["model.alpha"]): r.data.metrics["cv_mse"] for r in sweep.children
    }
    assert by_alpha == {t.params["model.alpha"]: t.value for t in trials}  # read back in order
    assert min(by_alpha.values()) == found.best_value
    assert f"Study: 2 trials in 1 workflow ({name})" in result.stdout
