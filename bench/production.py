"""The tracking stack a team runs in production, on loopback, for benchmarks: a throwaway
PostgreSQL cluster (Debian's package) and `mlflow server` on it, artifacts in a folder.

    with mlflow_on_postgres(Path(tempfile.mkdtemp())) as stack:
        ... sweeps with mlflow.tracking_uri=stack.uri; stack.database for SQL ...
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# Debian's layout: one folder per major version.
POSTGRES_BIN = max(Path("/usr/lib/postgresql").glob("*/bin"), default=Path("/usr/lib/postgresql"))


@dataclass(frozen=True)
class Stack:
    uri: str  # the tracking server's
    database: str  # its PostgreSQL database, for reading run times with SQL
    pids: tuple[int, ...]  # the servers: children of this process that a measure leaves alone


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as its own user, when this is root."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait(ready: str, process: subprocess.Popen[bytes], what: str, log: Path) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(ready, timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"{what} did not start:\n{log.read_text()[-3000:]}") from None
            time.sleep(0.5)


@contextmanager
def mlflow_on_postgres(home: Path) -> Iterator[Stack]:
    """In `home`, a folder of its own that is handed to PostgreSQL's user when this is root."""
    if not (POSTGRES_BIN / "postgres").exists():
        raise SystemExit("PostgreSQL is not installed: `make system-packages` installs it")
    data, password = home / "pgdata", secrets.token_hex(8)
    (home / "pw").write_text(password)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        shutil.chown(home / "pw", "postgres")
    initdb = [str(POSTGRES_BIN / "initdb"), "-D", str(data), "-U", "mlflow"]
    initdb += ["--auth=scram-sha-256", f"--pwfile={home / 'pw'}"]
    subprocess.run(_as_postgres(initdb), check=True, capture_output=True)
    pg_port, port = _free_port(), _free_port()
    database = f"postgresql+psycopg2://mlflow:{password}@127.0.0.1:{pg_port}/postgres"
    pg_log, server_log = home / "postgres.log", home / "server.log"
    postgres = [str(POSTGRES_BIN / "postgres"), "-D", str(data), "-h", "127.0.0.1"]
    postgres += ["-p", str(pg_port), "-k", str(home)]
    with pg_log.open("wb") as out:
        database_server = subprocess.Popen(_as_postgres(postgres), stdout=out, stderr=out)
    server = None
    try:
        _wait_for_postgres(pg_port, database_server, pg_log)
        command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", database]
        command += ["--artifacts-destination", str(home / "artifacts")]
        command += ["--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
        with server_log.open("wb") as out:
            server = subprocess.Popen(command, stdout=out, stderr=out)
        uri = f"http://127.0.0.1:{port}"
        _wait(f"{uri}/health", server, "mlflow server", server_log)
        yield Stack(uri, database, (database_server.pid, server.pid))
    finally:
        for process in (server, database_server):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)


def _wait_for_postgres(port: int, server: subprocess.Popen[bytes], log: Path) -> None:
    """Until the cluster accepts connections (Debian's pg_isready asks it)."""
    deadline = time.monotonic() + 60
    ready = [str(POSTGRES_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    while subprocess.run(ready, check=False).returncode != 0:
        if server.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"PostgreSQL did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
