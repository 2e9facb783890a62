"""A password in a URL is used for that process only: nothing written keeps it."""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.argo import REMOTE
from support.servers import SHARED_DATA, run_sweeper


@pytest.fixture
def data_server() -> Iterator[str]:
    """The shared data sets over HTTP on loopback (basic auth in the URL is not checked)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(SHARED_DATA))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def files_holding(folder: Path, secret: str) -> list[str]:
    """Every file below the folder (the MLflow database and artifacts too) that holds it."""
    return [str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and secret.encode() in p.read_bytes()]  # fmt: skip


def test_a_password_in_data_path_is_written_nowhere(workdir: Path, data_server: str) -> None:
    password = "pw-" + secrets.token_hex(4)
    path = f"data.path=http://alice:{password}@{data_server}/carseats.csv"
    sweep = ["data=csv", path, "data.target=Sales", "model=lasso"]
    grid = run_sweeper([*sweep, "model.alpha=1,2", "-m"], cwd=workdir)
    assert grid.returncode == 0, grid.stderr[-2000:]
    single = run_sweeper([*sweep, "model.alpha=3"], cwd=workdir)  # Hydra's own .hydra files
    assert single.returncode == 0, single.stderr[-2000:]
    assert password not in grid.stdout + grid.stderr + single.stdout + single.stderr
    assert files_holding(workdir, password) == []
    # The data was read with it, and the records say where from, without it.
    assert files_holding(workdir, f"http://{data_server}/carseats.csv")
    assert len(list((workdir / "sweeper-store" / "sweeps").glob("*/plan.json"))) == 2


def test_a_password_in_a_url_is_refused_for_argo(workdir: Path, data_server: str) -> None:
    password = "pw-" + secrets.token_hex(4)
    refused = run_sweeper(
        ["data=csv", f"data.path=https://alice:{password}@{data_server}/carseats.csv",
         "data.target=Sales", "model=lasso", *REMOTE, "backend=argo",
         "argo.render_to=sweep.yaml", "-m"], cwd=workdir,
    )  # fmt: skip
    assert refused.returncode == 1
    line = f"data.path=https://{data_server}/carseats.csv: a URL with user:password@, which"
    assert len([x for x in refused.stderr.splitlines() if line in x]) == 1
    assert password not in refused.stdout + refused.stderr
    assert not (workdir / "sweep.yaml").exists()
