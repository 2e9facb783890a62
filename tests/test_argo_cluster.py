"""End to end on a real Argo Workflows installation; runs only when one is named.

    ARGO_SERVER=https://localhost:2746 ARGO_TOKEN=… SWEEPER_IMAGE=registry.example/sweeper:1.0 \
    SWEEPER_STORAGE_ROOT=s3://bucket/sweeps SWEEPER_TRACKING_URI=http://mlflow.ml.svc:5000 \
    SWEEPER_NAMESPACE=ml SWEEPER_SECRETS=s3-credentials \
    .venv/bin/python -m pytest tests/test_argo_cluster.py

The tracking URI must be reachable from both the pods and this machine (it reads the runs back).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.mlflow_view import sweeps
from support.servers import run_sweeper

NEEDED = ("ARGO_SERVER", "SWEEPER_IMAGE", "SWEEPER_STORAGE_ROOT", "SWEEPER_TRACKING_URI")
pytestmark = pytest.mark.skipif(
    not all(os.environ.get(name) for name in NEEDED),
    reason=f"no Argo cluster named (set {', '.join(NEEDED)})",
)


def test_sweep_on_a_real_cluster(workdir: Path) -> None:
    env = os.environ
    experiment = "sweeper-cluster-test"
    args = [
        "model=lasso",
        "model.alpha=0.1,1",
        "backend=argo",
        "argo.watch_timeout=1800",
        f"argo.server={env['ARGO_SERVER']}",
        f"argo.namespace={env.get('SWEEPER_NAMESPACE', 'argo')}",
        f"argo.image={env['SWEEPER_IMAGE']}",
        f"argo.secrets=[{env.get('SWEEPER_SECRETS', '')}]",
        f"storage.root={env['SWEEPER_STORAGE_ROOT']}",
        f"mlflow.tracking_uri={env['SWEEPER_TRACKING_URI']}",
        f"mlflow.experiment={experiment}",
    ]
    result = run_sweeper([*args, "-m"], cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    latest = sweeps(env["SWEEPER_TRACKING_URI"], experiment)[-1]
    assert sorted(r.info.run_name for r in latest.children) == ["lasso alpha=0.1", "lasso alpha=1"]
    assert latest.parent.info.status == "FINISHED"
