"""Real parts on loopback (an MLflow tracking server, an S3-compatible server: moto), working
directories with a ready MLflow database, and the command a user types, as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

PROJECT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SWEEPER_SHARED", PROJECT.parent / "shared")) / "data"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def serving(
    command: list[str], health: str, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen]:
    """Run a server process until the block ends; ready once `health` answers. Stopped with the
    processes it started (MLflow's servers run uvicorn as a child): a session of their own."""
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        wait_for(health, process, log)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def mlflow_server_command(database: Path, artifacts: Path, port: int) -> list[str]:
    """`mlflow server` on a SQLite file, one worker, artifacts proxied (clients upload
    through it)."""
    store = ["--backend-store-uri", f"sqlite:///{database}"]
    address = ["--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server = [sys.executable, "-m", "mlflow", "server"]
    return [*server, *store, "--artifacts-destination", str(artifacts), *address]


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on a SQLite store: the tracking server a team would run."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = mlflow_server_command(home / "mlflow.db", home / "artifacts", port)
    uri = f"http://127.0.0.1:{port}"
    with serving(command, f"{uri}/health", home / "server.log"):
        yield uri


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    env: dict[str, str]  # what a user exports to reach it

    def pod_overrides(self) -> list[str]:
        """What a rendered workflow's pods need to reach it: its endpoint, the Secret `s3`."""
        endpoint = f"{{AWS_ENDPOINT_URL:'{self.endpoint}',AWS_DEFAULT_REGION:us-east-1}}"
        return [f"argo.env={endpoint}", "argo.secrets=[s3]"]

    def pod_secrets(self) -> dict[str, dict[str, str]]:
        """The Secret `s3` that `pod_overrides` names, for ArgoRunner."""
        return {"s3": {k: v for k, v in self.env.items() if "KEY" in k}}

    def fs(self):  # type: ignore[no-untyped-def]
        import s3fs

        return s3fs.S3FileSystem(
            key="testing", secret="testing", client_kwargs={"endpoint_url": self.endpoint}
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto in server mode: real HTTP on loopback, as s3fs's own tests use it."""
    home = tmp_path_factory.mktemp("moto")
    port = free_port()
    moto = Path(sys.executable).with_name("moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    command = [str(moto), "-H", "127.0.0.1", "-p", str(port)]
    with serving(command, endpoint, home / "moto.log"):
        yield S3Server(endpoint, env)


@pytest.fixture
def empty_workdir(tmp_path: Path) -> Path:
    """A user's working directory outside the project: sweeps must not need the repo root."""
    path = tmp_path / "work"
    path.mkdir()
    return path


@pytest.fixture(scope="session")
def created_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An mlflow.db whose tables exist: MLflow's migrations take seconds on every new file.
    Its experiments are made by the sweeps, so their artifacts sit beside each copy."""
    from mlflow.tracking import MlflowClient

    from sweeper.tracking.store import use_sqlite_wal

    path = tmp_path_factory.mktemp("database") / "mlflow.db"
    use_sqlite_wal()
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def workdir(empty_workdir: Path, created_database: Path) -> Path:
    """A working directory where a sweep already made `mlflow.db` (and nothing else)."""
    return with_database(empty_workdir, created_database)


def with_database(folder: Path, created_database: Path) -> Path:
    # SQLite's backup, not a file copy: the store is in WAL mode, recent pages sit in -wal.
    with (
        contextlib.closing(sqlite3.connect(created_database)) as source,
        contextlib.closing(sqlite3.connect(folder / "mlflow.db")) as copy,
    ):
        source.backup(copy)
    return folder


def run_sweeper(
    args: Sequence[str], cwd: Path, env: dict[str, str] | None = None, module: str = "sweeper"
) -> subprocess.CompletedProcess[str]:
    """The command a user types, as a separate process."""
    # A tracking URI exported by an earlier test (mlflow.set_tracking_uri does) must not leak.
    inherited = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env = {**inherited, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def start_sweeper_until(
    args: Sequence[str], cwd: Path, seen: str, stderr: int = subprocess.DEVNULL
) -> subprocess.Popen[str]:
    """The command a user types, in a process group of its own, once a line of its output holds
    `seen` (a sweep part way through: to be stopped or killed there). `stderr`: DEVNULL, PIPE,
    or STDOUT (its log lines read too)."""
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweeper", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        start_new_session=True,
    )
    assert sweep.stdout is not None
    for line in sweep.stdout:
        if seen in line:
            break
    return sweep


def data_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.fail(f"{path} is missing: the shared data sets must sit beside the project")
    return path


def preprocess_recipe(name: str = "standard") -> dict[str, Any]:
    """A recipe of the project's conf/preprocess/, as a sweep's preprocess step is given it."""
    recipe = yaml.safe_load((PROJECT / "conf" / "preprocess" / f"{name}.yaml").read_text())
    assert isinstance(recipe, dict)
    return recipe
