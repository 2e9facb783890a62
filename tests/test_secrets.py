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
    return [
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and secret.encode() in p.read_bytes()
    ]


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
        [
            "data=csv",
            f"data.path=https://alice:{password}@{data_server}/carseats.csv",
            "data.target=Sales",
            "model=lasso",
            *REMOTE,
            "backend=argo",
            "argo.render_to=sweep.yaml",
            "-m",
        ],
        cwd=workdir,
    )
    assert refused.returncode == 1
    line = f"data.path=https://{data_server}/carseats.csv: a URL with user:password@, which"
    assert len([x for x in refused.stderr.splitlines() if line in x]) == 1
    assert password not in refused.stdout + refused.stderr
    assert not (workdir / "sweep.yaml").exists()


def signed(url: str, secret: str) -> str:
    """The URL as a presigned S3 GET (SigV4) with an Azure SAS signature besides: every part
    that is a credential holds `secret`."""
    return (
        f"{url}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA{secret}%2F20261204"
        f"&X-Amz-Date=20261204T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        f"&X-Amz-Security-Token=tok{secret}&X-Amz-Signature=sig{secret}&sv=2022-11-02&sig={secret}"
    )


def test_a_signed_url_is_read_and_written_nowhere(workdir: Path, data_server: str) -> None:
    secret = secrets.token_hex(6)
    # Quoted, as Hydra's grammar needs a value with `=` in it to be.
    path = f"data.path='{signed(f'http://{data_server}/carseats.csv', secret)}'"
    sweep = ["data=csv", path, "data.target=Sales", "model=lasso", "eval.cv=0"]
    grid = run_sweeper([*sweep, "model.alpha=1,2", "-m"], cwd=workdir)
    assert grid.returncode == 0, grid.stderr[-2000:]
    single = run_sweeper([*sweep, "model.alpha=3"], cwd=workdir)  # Hydra's own .hydra files
    assert single.returncode == 0, single.stderr[-2000:]
    # Two signatures of one file: the path varies, so it is in the trials' names too.
    again = secrets.token_hex(6)
    both = f"{path},'{signed(f'http://{data_server}/carseats.csv', again)}'"
    varying = run_sweeper([*sweep[:1], both, *sweep[2:], "model.alpha=4", "-m"], cwd=workdir)
    assert varying.returncode == 0, varying.stderr[-2000:]
    assert varying.stdout.count("X-Amz-Signature=REDACTED") >= 2  # the two trials' names
    printed = [r.stdout + r.stderr for r in (grid, single, varying)]
    assert not [text for text in printed if secret in text or again in text]
    assert files_holding(workdir, secret) == [] and files_holding(workdir, again) == []
    # What the records say instead: where the data came from, each credential REDACTED.
    assert files_holding(workdir, "X-Amz-Signature=REDACTED&sv=2022-11-02&sig=REDACTED")
    # A bad signed URL's error line names the file, not the signature.
    missing = run_sweeper([*sweep, path.replace("carseats", "nothere"), "-m"], cwd=workdir)
    assert missing.returncode == 1
    assert "nothere.csv" in missing.stderr and secret not in missing.stdout + missing.stderr


def test_a_signed_url_or_a_secret_in_argo_env_is_refused_for_argo(workdir: Path) -> None:
    secret = secrets.token_hex(6)
    common = [*REMOTE, "backend=argo", "argo.render_to=sweep.yaml", "model=lasso", "-m"]
    url = signed("https://bucket.s3.amazonaws.com/carseats.csv", secret)
    data = ["data=csv", f"data.path='{url}'", "data.target=Sales"]
    refused = run_sweeper([*data, *common], cwd=workdir)
    assert refused.returncode == 1
    [line] = [x for x in refused.stderr.splitlines() if "a signed URL" in x]
    assert "X-Amz-Signature=REDACTED" in line and "argo.secrets" in line
    env = run_sweeper([f"+argo.env={{AWS_SECRET_ACCESS_KEY: {secret}}}", *common], cwd=workdir)
    assert env.returncode == 1
    [line] = [x for x in env.stderr.splitlines() if "AWS_SECRET_ACCESS_KEY" in x]
    assert "looks like a credential" in line and "argo.secrets" in line
    for result in (refused, env):
        assert secret not in result.stdout + result.stderr
    assert not (workdir / "sweep.yaml").exists()
    # A plain setting still goes through.
    plain = run_sweeper(["argo.env={AWS_ENDPOINT_URL: http://minio:9000}", *common], cwd=workdir)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "http://minio:9000" in (workdir / "sweep.yaml").read_text()
