"""Only the project's code and the user's configs run: a registered model is loaded as data, and
a model config names classes, never calls, nested ones included."""

from __future__ import annotations

import base64
import json
import os
import pickle
import secrets
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import Lasso

from support.argo import render
from support.argo_runner import ArgoRunner, base_env
from support.mlflow_view import sweeps
from support.servers import S3Server, run_sweeper
from sweeper.core import trust
from sweeper.trial import fitting

NAME = "champ"
FAST = ["model=lasso", "eval.cv=0", f"mlflow.register_best={NAME}", "-m"]
# An ensemble of scikit-learn's in place of the lasso, whose own values it does not take.
BAGGING = [
    "model=lasso",
    "~model.alpha",
    "~model.max_iter",
    "eval.cv=0",
    "++model._target_=sklearn.ensemble.BaggingRegressor",
    "++model.n_estimators=2",
]


class Payload:
    """Unpickled, it creates `marker`: the proof that loading ran the writer's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.marker), "w")


def register_pickle(uri: str, marker: Path, name: str = NAME, champion: bool = True) -> str:
    """A version of `name` stored as cloudpickle whose unpickling creates `marker`, made the
    champion (as whoever can write to the registry could) or only its latest version; its
    number."""
    model = Lasso().fit(np.random.default_rng(0).random((20, 10)), np.arange(20.0))
    model.payload = Payload(marker)  # type: ignore[attr-defined]
    mlflow.set_tracking_uri(uri)
    try:
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(
                model, name="model", serialization_format="cloudpickle", pip_requirements=[]
            )
        version = mlflow.register_model(info.model_uri, name).version
    finally:
        mlflow.set_tracking_uri(None)
    if champion:
        MlflowClient(uri).set_registered_model_alias(name, "champion", version)
    marker.unlink(missing_ok=True)  # MLflow may have loaded it while logging
    return str(version)


def test_a_pickled_champion_is_not_loaded_unless_the_user_opts_in(workdir: Path) -> None:
    uri, marker = f"sqlite:///{workdir / 'mlflow.db'}", workdir / "ran-the-pickle"
    first = run_sweeper([*FAST, "model.alpha=1"], cwd=workdir)
    assert first.returncode == 0, first.stderr[-2000:]
    client = MlflowClient(uri)
    # A registry from before aliases: its latest version, a pickle, serves.
    client.delete_registered_model_alias(NAME, "champion")
    pickled = register_pickle(uri, marker, champion=False)
    assert pickled == "2"

    refused = run_sweeper([*FAST, "model.alpha=2"], cwd=workdir)
    assert refused.returncode == 0, refused.stderr[-2000:]
    assert not marker.exists()
    [line] = [x for x in refused.stdout.splitlines() if x.startswith("Registry:")]
    assert line == (
        f"Registry: {NAME} version 3 registered, not made champion: version 2 is stored as a "
        "cloudpickle file, which would run its writer's code when loaded; not loaded "
        "(trust.pickled_models=true loads it, for a registry only you write to)"
    )
    # Kept: pinned by the alias, so the new version does not become the latest that serves.
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "2"
    [sweep] = [s for s in sweeps(uri, "sweeper") if s.parent.data.tags.get("registry") == line]
    assert sweep.parent.info.status == "FINISHED"

    opted_in = run_sweeper([*FAST, "model.alpha=3", "trust.pickled_models=true"], cwd=workdir)
    assert opted_in.returncode == 0, opted_in.stderr[-2000:]
    assert marker.exists()  # what the opt-in's documentation warns of
    [line] = [x for x in opted_in.stdout.splitlines() if x.startswith("Registry:")]
    assert line.startswith(f"Registry: {NAME} version 4 is the champion, replacing version 2: mse ")
    assert "vs the champion's" in line and line.endswith("better at level 0.05")
    assert str(client.get_model_version_by_alias(NAME, "champion").version) == "4"


def write_pickle(path: Path, marker: Path) -> None:
    path.write_bytes(pickle.dumps(Payload(marker)))


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        # A function as a nested target: pandas.read_pickle on a payload.
        (
            [
                "++model.estimator._target_=pandas.read_pickle",
                "++model.estimator._args_=[payload.pkl]",
            ],
            "model.estimator._target_=pandas.read_pickle is refused",
        ),
        # builtins.open(file, "w") would empty a file outside the project.
        (
            ["++model.estimator._target_=builtins.open", "++model.estimator._args_=[victim.txt,w]"],
            "model.estimator._target_=builtins.open is refused",
        ),
        # A class of scikit-learn, but as a callable rather than an estimator.
        (
            [
                "++model.estimator._target_=sklearn.linear_model.Ridge",
                "++model.estimator._partial_=true",
            ],
            "model.estimator._partial_ is refused",
        ),
    ],
)
def test_a_model_config_names_classes_not_calls(
    workdir: Path, overrides: list[str], refused: str
) -> None:
    marker, victim = workdir / "ran-the-pickle", workdir / "victim.txt"
    write_pickle(workdir / "payload.pkl", marker)
    victim.write_text("precious")
    done = run_sweeper([*BAGGING, *overrides], cwd=workdir)
    assert done.returncode == 1
    [line] = [x for x in done.stderr.splitlines() if refused in x]
    assert "trust.modules" in line or "not calls" in line
    assert not marker.exists() and victim.read_text() == "precious"
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    assert sweeps(uri, "sweeper", missing_ok=True) == []  # no run was opened


def test_nested_classes_of_trusted_modules_are_fitted(workdir: Path) -> None:
    """An ensemble of scikit-learn's is fitted; a user's own class once its package is listed in
    trust.modules, and before that it is not even imported."""
    package = workdir / "ourmodels"
    package.mkdir()
    imported = workdir / "ourmodels-imported"
    (package / "__init__.py").write_text(
        "from pathlib import Path\n"
        "from sklearn.linear_model import Ridge\n"
        f"Path({str(imported)!r}).touch()\n"
        "class ShrunkRidge(Ridge):\n"
        "    pass\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(workdir), *sys.path])}
    ours = [*BAGGING, "++model.estimator._target_=ourmodels.ShrunkRidge"]
    refused = run_sweeper(ours, cwd=workdir, env=env)
    assert refused.returncode == 1
    assert "model.estimator._target_=ourmodels.ShrunkRidge is refused" in refused.stderr
    assert not imported.exists()
    trusted = run_sweeper([*ours, "trust.modules=[ourmodels]"], cwd=workdir, env=env)
    assert trusted.returncode == 0, trusted.stderr[-2000:]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    [trial] = sweep.children
    assert trial.info.status == "FINISHED" and trial.data.metrics["mse"] > 0


@pytest.mark.unit
def test_every_process_that_builds_a_model_checks_its_classes(tmp_path: Path) -> None:
    """A worker or a pod checks the classes again, whatever the plan it was handed says."""
    marker = tmp_path / "ran-the-pickle"
    write_pickle(tmp_path / "payload.pkl", marker)
    payload = {"_target_": "pandas.read_pickle", "_args_": [str(tmp_path / "payload.pkl")]}
    nested = {"_target_": "sklearn.ensemble.BaggingRegressor", "estimator": payload}
    with pytest.raises(trust.Untrusted, match=r"model.estimator._target_=pandas.read_pickle"):
        fitting.build_estimator(nested)
    assert not marker.exists()
    with pytest.raises(trust.Untrusted, match="not a scikit-learn estimator"):
        fitting.build_estimator({"_target_": "sklearn.utils.Bunch"})
    # An interpolation that instantiating would resolve into a call.
    create = f"${{oc.create:{{_target_: builtins.open, _args_: [{marker}, w]}}}}"
    resolved = {"_target_": "sklearn.linear_model.Ridge", "_args_": [], "alpha": create}
    with pytest.raises(trust.Untrusted, match=r"model.alpha holds an interpolation"):
        fitting.build_estimator(resolved)
    assert not marker.exists()
    ridge = {"_target_": "sklearn.linear_model.Ridge", "alpha": 2.0}
    built = fitting.build_estimator({**nested, "estimator": ridge})
    assert type(built.estimator).__name__ == "Ridge" and built.estimator.alpha == 2.0


def test_on_argo_the_plan_and_summary_pods_trust_no_more(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    """The summary pod (with the pods' secrets) does not load a pickled champion; the plan pod
    refuses a nested target that reached its definition, before it opens a run."""
    bucket, experiment = f"trust-{secrets.token_hex(3)}", f"argo-trust-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    marker = workdir / "ran-the-pickle"
    register_pickle(mlflow_server, marker, name=experiment)
    sweep = [
        "model=lasso",
        "model.alpha=1,2",
        "eval.cv=0",
        f"storage.root=s3://{bucket}/store",
        f"mlflow.tracking_uri={mlflow_server}",
        f"mlflow.experiment={experiment}",
        f"mlflow.register_best={experiment}",
        *s3_server.pod_overrides(),
        "-m",
    ]
    manifest = render(workdir, sweep)
    runner = ArgoRunner(manifest, env=base_env(), secrets=s3_server.pod_secrets())
    assert runner.run() == "Succeeded", [p.stderr[-2000:] for p in runner.pods if p.returncode]
    assert not marker.exists()
    [done] = sweeps(mlflow_server, experiment)
    assert done.parent.data.tags["registry"].startswith(
        f"Registry: {experiment} version 2 registered, not made champion: version 1 is stored "
        "as a cloudpickle file"
    )
    client = MlflowClient(mlflow_server)
    assert str(client.get_model_version_by_alias(experiment, "champion").version) == "1"

    # The plan in storage widened to trust pickles: the summary pod, run again as the manifest
    # says, trusts what its manifest gave it, not the bucket.
    fs, name = s3_server.fs(), manifest["metadata"]["name"]
    plan_path = f"{bucket}/store/sweeps/{name}/plan.json"
    record = json.loads(fs.cat(plan_path))
    record["settings"]["trust"] = {"modules": ["os"], "pickled_models": True}
    fs.pipe(plan_path, json.dumps(record).encode())
    [summary] = [t for t in manifest["spec"]["templates"] if t["name"] == "summary"]
    argv = [a.replace("{{workflow.name}}", name) for a in summary["container"]["args"]]
    again = subprocess.run(
        [sys.executable, "-m", *summary["container"]["command"][2:], *argv],
        env={**base_env(), **s3_server.env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert not marker.exists()
    [line] = [x for x in again.stdout.splitlines() if x.startswith("Registry:")]
    # The same best trial: its version is not registered twice.
    assert "version 2 registered, not made champion: version 1 is stored as a cloudpickle" in line

    # The same manifest, its definition altered after it was rendered.
    [plan] = [t for t in manifest["spec"]["templates"] if t["name"] == "plan"]
    args = plan["container"]["args"]
    at = args.index("--definition") + 1
    definition = json.loads(base64.urlsafe_b64decode(args[at]))
    victim = f"++model.estimator._args_=[{workdir / 'victim.txt'},w]"
    definition["overrides"] += ["++model.estimator._target_=builtins.open", victim]
    args[at] = base64.urlsafe_b64encode(json.dumps(definition).encode()).decode()
    (workdir / "victim.txt").write_text("precious")
    altered = ArgoRunner(manifest, env=base_env(), secrets=s3_server.pod_secrets())
    assert altered.run() == "Failed"
    [pod] = [p for p in altered.pods if p.template == "plan"]
    assert "model.estimator._target_=builtins.open is refused" in pod.stderr
    assert (workdir / "victim.txt").read_text() == "precious"
    assert len(sweeps(mlflow_server, experiment)) == 1  # no second sweep run was opened
