"""MLflow's state is what the sweep said: answers lost after the server acted change nothing,
and a store that cannot be used (locked, its experiment deleted, read-only) is one line."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from support.lossy_proxy import Losses, lossy_proxy
from support.servers import run_sweeper

API = "/api/2.0/mlflow"


def lost_sweep(mlflow_server: str, workdir: Path, losses: Losses) -> tuple[str, str]:
    """A sweep through a lossy proxy in front of the server: its experiment and stdout."""
    experiment = f"lossy-{secrets.token_hex(4)}"
    with lossy_proxy(mlflow_server, losses) as proxy:
        done = run_sweeper(
            [
                "model=lasso",
                "model.alpha=1,2,3",
                "eval.cv=0",
                f"mlflow.tracking_uri={proxy}",
                f"mlflow.experiment={experiment}",
                f"mlflow.register_best={experiment}",
                "-m",
            ],
            cwd=workdir,
            env={"SWEEPER_RETRY_SECONDS": "60"},
        )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Could not" not in done.stdout + done.stderr
    return experiment, done.stdout


def assert_said_exactly(mlflow_server: str, experiment: str) -> None:
    """Read from the server itself: one sweep run and one run per trial, all FINISHED, the
    winner's model logged, one registered version, the champion."""
    client = MlflowClient(mlflow_server)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id], run_view_type=3)  # deleted ones too
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.info.status for r in parents] == ["FINISHED"]
    assert sorted(r.data.tags["trial_index"] for r in children) == ["0", "1", "2"]
    assert {r.info.status for r in children} == {"FINISHED"}
    assert {r.info.lifecycle_stage for r in runs} == {"active"}
    [winner] = [r for r in children if "best_model_uri" in r.data.tags]
    versions = client.search_model_versions(f"name = '{experiment}'")
    assert len(versions) == 1 and versions[0].run_id == winner.info.run_id
    for alias in ("champion", "challenger"):  # the first version is both
        found = client.get_model_version_by_alias(experiment, alias)
        assert str(found.version) == str(versions[0].version)


def test_answers_lost_after_the_server_acted_change_nothing(
    mlflow_server: str, workdir: Path
) -> None:
    losses = Losses(
        rules={
            (f"{API}/runs/create", b'"sweep '): {1},  # the sweep's run, created but not told
            (f"{API}/runs/create", b'"lasso alpha=2"'): {1},  # a trial's run
            (f"{API}/runs/update", b'"FINISHED"'): {1, 3},  # trials' ends
            (f"{API}/runs/outputs", b""): {1},  # the best model linked to its run
            (f"{API}/model-versions/create", b""): {1},  # the registered version
            (f"{API}/registered-models/alias", b""): {1},  # made challenger (then champion)
        }
    )
    experiment, stdout = lost_sweep(mlflow_server, workdir, losses)
    assert len(losses.lost) == 7, losses.lost  # every loss above happened
    assert_said_exactly(mlflow_server, experiment)
    assert f"Registry: {experiment} version 1 is the champion (mse " in stdout


def test_random_lost_answers_leave_no_run_unexplained(mlflow_server: str, workdir: Path) -> None:
    losses = Losses(chance=0.1, seed=7)
    experiment, _ = lost_sweep(mlflow_server, workdir, losses)
    assert losses.lost  # some answers were lost
    assert_said_exactly(mlflow_server, experiment)


# A process holding SQLite's write lock on the store, as another tool's long transaction does.
HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
""")


def test_a_store_locked_by_another_process_is_waited_for_then_one_line(workdir: Path) -> None:
    MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}").create_experiment("sweeper")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(workdir / "mlflow.db"), "90"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        began = time.monotonic()
        done = run_sweeper(
            ["model=lasso", "model.alpha=1", "eval.cv=0", "-m"],
            cwd=workdir,
            env={"SWEEPER_RETRY_SECONDS": "5"},
        )
        waited = time.monotonic() - began
    finally:
        holder.kill()
        holder.wait()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if "locked by another process" in x]
    assert "(SQLite: database is locked)" in line and "run the same command again" in line
    assert waited >= 5  # it waited its retry budget first
    with contextlib.closing(sqlite3.connect(workdir / "mlflow.db")) as db:  # nothing claimed
        assert db.execute("select count(*) from runs").fetchone() == (0,)


def test_a_deleted_experiment_is_one_line(workdir: Path) -> None:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    client.delete_experiment(client.create_experiment("sweeper"))  # in MLflow's UI, say
    done = run_sweeper(["model=lasso", "model.alpha=1", "eval.cv=0", "-m"], cwd=workdir)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    [line] = [x for x in done.stderr.splitlines() if "is deleted" in x]
    assert "experiment 'sweeper'" in line and "restore it" in line and "mlflow.experiment" in line


def without_root_override() -> list[str]:
    """Run a command as root without the capabilities that ignore file modes (a user would
    have none of them), so a read-only file is read-only to it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to drop root's override of file modes")
    caps = "-dac_override,-dac_read_search"
    return [setpriv, "--bounding-set", caps, "--inh-caps", caps]


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_a_read_only_store_is_one_line(empty_workdir: Path, read_only: str) -> None:
    store = empty_workdir / "store"
    store.mkdir()
    (store / "mlflow.db").touch()
    (store / "mlflow.db").chmod(0o444)
    if read_only == "folder":
        (store / "mlflow.db").chmod(0o644)
        store.chmod(0o555)
    try:
        done = subprocess.run(
            [
                *without_root_override(),
                sys.executable,
                "-m",
                "sweeper",
                "model=lasso",
                "model.alpha=1",
                "eval.cv=0",
                "mlflow.tracking_uri=sqlite:///store/mlflow.db",
                "-m",
            ],
            cwd=empty_workdir,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        store.chmod(0o755)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    [line] = [x for x in done.stderr.splitlines() if "cannot be written" in x]
    assert line.startswith("MLflow store store/mlflow.db cannot be written: ")
