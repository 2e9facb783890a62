"""Infrastructure faults are faults, not trial failures: S3 stopped mid-sweep, an MLflow server
paused for 45 s, a full disk; each against a real server (or disk) on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.mlflow_view import sweeps
from support.servers import free_port, mlflow_server_command, run_sweeper, wait_for

# 16 trials, long enough that an outage meets the sweep mid-way; one fit each (no folds): what
# is tested is the outage, not the scoring.
GRID = ["model=rf", "model.n_estimators=range(100,900,50)", "model.max_depth=4", "eval.cv=0", "-m"]
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # its own group: a signal reaches the server's workers too
        return subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGCONT)
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    server = start(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        log,
    )
    wait_for(f"http://127.0.0.1:{port}", server, log)  # type: ignore[arg-type]
    return server


def make_bucket(endpoint: str, name: str) -> None:
    import s3fs

    s3fs.S3FileSystem(
        key="testing", secret="testing", client_kwargs={"endpoint_url": endpoint}
    ).mkdir(name)


def sweep_until(args: list[str], cwd: Path, env: dict[str, str], line: str) -> subprocess.Popen:
    """A sweep started as a user would, read until it prints `line`."""
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeper", *args],
        cwd=cwd,
        env={**environment, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    for text in process.stdout:
        if line in text:
            return process
    pytest.fail(f"the sweep ended before {line!r}: {process.communicate()[1][-2000:]}")


@pytest.fixture
def paused_mlflow(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    server = start(
        mlflow_server_command(tmp_path / "server.db", tmp_path / "artifacts", port),
        tmp_path / "mlflow.log",
    )
    uri = f"http://127.0.0.1:{port}"
    wait_for(f"{uri}/health", server, tmp_path / "mlflow.log")  # type: ignore[arg-type]
    yield uri, server
    stop(server)


def test_s3_stopped_mid_sweep_is_one_line_and_the_rerun_finishes(
    workdir: Path, tmp_path: Path
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    server = moto(port, tmp_path / "moto.log")
    make_bucket(endpoint, "store")
    env = {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    args = [*GRID, "storage.root=s3://store/sweeps"]
    try:
        running = sweep_until(args, workdir, {**env, "SWEEPER_RETRY_SECONDS": "5"}, "[2/16]")
        stop(server)  # S3 gone: the trials already have their split; the sweep's end needs S3
        _, stderr = running.communicate(timeout=300)
        assert running.returncode == 1
        assert "Traceback" not in stderr, stderr[-3000:]
        [said] = [x for x in stderr.splitlines() if "did not answer" in x]
        assert f"S3 at {endpoint} (bucket store) did not answer for 5 s" in said
        assert "run the same command again to resume" in said

        database = f"sqlite:///{workdir / 'mlflow.db'}"
        [stopped] = sweeps(database, "sweeper")
        assert stopped.parent.info.status == "FAILED"
        assert "did not answer" in stopped.parent.data.tags["stopped_by"]
        statuses = Counter(r.info.status for r in stopped.children)
        assert "FAILED" not in statuses and statuses["FINISHED"] >= 2, statuses

        server = moto(port, tmp_path / "moto.log")  # S3 back, empty: the split is made again
        make_bucket(endpoint, "store")
        again = run_sweeper(args, cwd=workdir, env=env)
        assert again.returncode == 0, again.stderr[-3000:]
        assert "Best: rf" in again.stdout
        first, second = sweeps(database, "sweeper")
        keys = Counter(
            r.data.tags["trial_key"]
            for s in (first, second)
            for r in s.children
            if r.info.status == "FINISHED"
        )
        assert len(keys) == 16 and set(keys.values()) == {1}  # each trial trained once
        assert second.parent.data.metrics["n_reused"] == statuses["FINISHED"]
    finally:
        stop(server)


def test_an_mlflow_server_paused_for_45_s_does_not_fail_the_sweep(
    workdir: Path, paused_mlflow: tuple[str, subprocess.Popen[bytes]]
) -> None:
    uri, server = paused_mlflow
    args = [*GRID, f"mlflow.tracking_uri={uri}"]
    running = sweep_until(args, workdir, {}, "[3/16]")
    os.killpg(server.pid, signal.SIGSTOP)  # the server and its workers: no answer, no refusal
    time.sleep(45)
    os.killpg(server.pid, signal.SIGCONT)
    stdout, stderr = running.communicate(timeout=300)
    assert running.returncode == 0, stderr[-3000:]
    assert "Best: rf" in stdout
    [sweep] = sweeps(uri, "sweeper")
    assert sweep.parent.info.status == "FINISHED"
    assert Counter(r.info.status for r in sweep.children) == {"FINISHED": 16}
    assert len({r.data.tags["trial_key"] for r in sweep.children}) == 16


def test_a_trial_meeting_an_outage_is_not_a_failed_trial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lifecycle itself: a split on an S3 endpoint that refuses connections raises Outage
    once the budget is spent, and the trial leaves no run (its claim is given up)."""
    from sweeper.core.faults import Outage
    from sweeper.core.records import StoredSplit, Trial
    from sweeper.tracking.tracker import Tracker
    from sweeper.trial.lifecycle import SweepRef, run_trial

    monkeypatch.setenv("SWEEPER_RETRY_SECONDS", "2")
    for name, value in {**S3_ENV, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", "outage")
    parent = tracker.start_sweep("s1", {})
    trial = Trial(
        index=0,
        name="lasso alpha=1",
        model_name="lasso",
        group="g",
        overrides=(),
        model={"_target_": "sklearn.linear_model.Lasso", "alpha": 1.0},
    )
    split = StoredSplit(url="s3://gone/preprocess/k1", key="k1", reused=True)
    with pytest.raises(Outage, match=r"S3 at http://127\.0\.0\.1:\d+ \(bucket gone\) did not"):
        run_trial(tracker, SweepRef("s1", parent), trial, split)
    assert tracker.trial_runs(parent) == []  # not a FAILED trial: no run at all


def test_a_full_disk_is_one_line_naming_the_path(workdir: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        (small / "filler").write_bytes(b"\0" * 200 * 1024)
        result = run_sweeper(
            ["model=lasso", "model.alpha=1,2", f"storage.root={small}", "-m"], cwd=workdir
        )
        assert result.returncode == 1
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        [said] = [x for x in result.stderr.splitlines() if "no space left" in x]
        assert f"to {small}/preprocess/" in said and "writing " in said
        # Refused before the store is opened, or just after: no trial recorded either way.
        recorded = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper", missing_ok=True)
        assert all(sweep.children == [] for sweep in recorded)
    finally:
        subprocess.run(["umount", str(small)], check=True)
