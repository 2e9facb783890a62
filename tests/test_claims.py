"""Overlapping runs train and log each trial once: two identical sweeps started together, and two
train pods on one chunk (what Argo's retry of a pod that is still running gives)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from collections import Counter
from pathlib import Path

from support.argo import render
from support.argo_runner import ArgoRunner, base_env
from support.mlflow_view import SweepRuns, sweeps
from support.servers import S3Server


def finished_keys(*swept: SweepRuns) -> Counter[str]:
    return Counter(
        r.data.tags["trial_key"]
        for sweep in swept
        for r in sweep.children
        if r.info.status == "FINISHED"
    )


def test_two_identical_sweeps_at_once_train_each_trial_once(workdir: Path) -> None:
    grid = ["model=rf", "model.n_estimators=range(40,240,10)", "model.max_depth=4", "-m"]
    started = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeper", *grid],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    ended = [p.communicate(timeout=600) for p in started]
    assert [p.returncode for p in started] == [0, 0], [err[-2000:] for _, err in ended]

    first, second = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    keys = finished_keys(first, second)
    assert len(keys) == 20 and set(keys.values()) == {1}, keys  # 20 trials, each logged once
    for sweep in (first, second):
        # What one sweep did not train, it took from the other: every trial in its table.
        own = sum(r.info.status == "FINISHED" for r in sweep.children)
        assert own + sweep.parent.data.metrics["n_reused"] == 20
        assert sweep.parent.data.metrics["n_failed"] == 0
        assert {r.info.status for r in sweep.children} <= {"FINISHED"}  # no claim left behind
    for stdout, _ in ended:
        assert "Best: rf" in stdout


def test_two_pods_on_one_chunk_log_each_trial_once(
    workdir: Path, s3_server: S3Server, mlflow_server: str
) -> None:
    bucket = f"twice-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    experiment = f"twice-{bucket}"
    manifest = render(
        workdir,
        [
            "model=lasso",
            "model.alpha=range(1,11)",
            "argo.trials_per_pod=5",
            f"storage.root=s3://{bucket}/store",
            f"mlflow.tracking_uri={mlflow_server}",
            f"mlflow.experiment={experiment}",
            *s3_server.pod_overrides(),
            "-m",
        ],
    )
    runner = ArgoRunner(
        manifest,
        env=base_env(),
        secrets=s3_server.pod_secrets(),
        twice=frozenset({"train"}),
        at_once=4,
    )
    assert runner.run() == "Succeeded", [p.stderr[-2000:] for p in runner.pods if p.returncode]
    trains = [p for p in runner.pods if p.template == "train"]
    assert len(trains) == 4 and all(p.returncode == 0 for p in trains)  # 2 chunks, twice each

    [sweep] = sweeps(mlflow_server, experiment)
    keys = finished_keys(sweep)
    assert len(keys) == 10 and set(keys.values()) == {1}, keys
    assert len(sweep.children) == 10  # a claim given up is deleted, not left beside the trial
    assert sweep.parent.data.metrics["n_trials"] == 10
    assert sweep.parent.data.metrics["n_failed"] == 0
    summary = runner.pods[-1].stdout
    assert "more than once" not in summary and "lasso alpha=1" in summary
