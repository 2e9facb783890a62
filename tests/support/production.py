"""The MLflow a team runs in production, on loopback: `mlflow server` on PostgreSQL (Debian's
package, a throwaway cluster), artifacts proxied to S3 (moto), basic-auth in front of both."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.servers import S3Server, free_port, serving

# Debian's layout: one folder per major version.
POSTGRES_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql"))


@dataclass(frozen=True)
class ProductionMlflow:
    uri: str
    env: dict[str, str]  # a client's credentials, from the environment (never in the URI)
    bucket: str  # where the server puts artifacts


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as its own user, when this is root (CI is)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL cluster of its own on loopback, with a password: its SQLAlchemy URI."""
    if not (POSTGRES_BIN / "postgres").exists():
        pytest.fail(f"{POSTGRES_BIN}/postgres is missing: `make system-packages` installs it")
    # Not under pytest's folder, which only root may enter: a folder its user owns.
    home = Path(tempfile.mkdtemp(prefix="sweeper-postgres-"))
    data, password = home / "data", secrets.token_hex(8)
    (home / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(home / "pw", "postgres")
    subprocess.run(
        _as_postgres(
            [
                str(POSTGRES_BIN / "initdb"),
                "-D",
                str(data),
                "-U",
                "mlflow",
                "--auth=scram-sha-256",
                f"--pwfile={home / 'pw'}",
            ]
        ),
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = home / "postgres.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            _as_postgres(
                [
                    str(POSTGRES_BIN / "postgres"),
                    "-D",
                    str(data),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-k",
                    str(home),
                ]
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    uri = f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{port}/postgres"
    try:
        _wait_for_postgres(port, password, server, log)
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(home, ignore_errors=True)


def _wait_for_postgres(port: int, password: str, server: subprocess.Popen, log: Path) -> None:
    import psycopg2

    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg2.connect(
                host="127.0.0.1", port=port, user="mlflow", password=password, dbname="postgres"
            ).close()
            return
        except psycopg2.OperationalError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"PostgreSQL did not start:\n{log.read_text()[-3000:]}"
                ) from None
            time.sleep(0.3)


@pytest.fixture(scope="session")
def production_mlflow(
    tmp_path_factory: pytest.TempPathFactory, postgres: str, s3_server: S3Server
) -> Iterator[ProductionMlflow]:
    home = tmp_path_factory.mktemp("mlflow-production")
    bucket = f"mlflow-{secrets.token_hex(3)}"
    s3_server.fs().mkdir(bucket)
    admin_password = secrets.token_urlsafe(12)
    auth = home / "basic_auth.ini"
    auth.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = {postgres}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        postgres,
        "--artifacts-destination",
        f"s3://{bucket}/artifacts",
        "--app-name",
        "basic-auth",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
    ]
    server_env = {
        **os.environ,
        **s3_server.env,
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
        "MLFLOW_AUTH_CONFIG_PATH": str(auth),
        "MLFLOW_AUTH_ADMIN_PASSWORD": admin_password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
    }
    uri = f"http://127.0.0.1:{port}"
    with serving(command, f"{uri}/health", home / "server.log", env=server_env):
        yield ProductionMlflow(
            uri,
            {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin_password},
            bucket,
        )
