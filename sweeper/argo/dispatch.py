"""backend=argo from the command line: render the manifest, or submit it and watch it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from sweeper import storage
from sweeper.argo.workflow import compile_sweep
from sweeper.definition import portable

log = logging.getLogger(__name__)


def run_on_argo(overrides: Sequence[str], multirun: bool, cfg: DictConfig) -> int:
    """The process's exit status: 0 when rendered, submitted, or the workflow succeeded."""
    workflow = compile_sweep(portable(overrides), multirun, cfg)
    if cfg.argo.render_to:
        path = Path(str(cfg.argo.render_to)).resolve()
        storage.write_bytes_atomic(str(path), workflow.to_yaml().encode())
        kind = type(workflow).__name__
        print(f"{kind} {workflow.name} written to {path} (argo submit / kubectl create -f it)")
        return 0
    from sweeper.argo.submit import submit

    status = submit(workflow, cfg.argo)
    if cfg.argo.wait and not cfg.argo.schedule:
        show_results(str(cfg.mlflow.tracking_uri), str(cfg.mlflow.experiment), workflow.name)
    return status


def show_results(tracking_uri: str, experiment: str, sweep_id: str) -> None:
    """The watched workflow's table and compare link, read from MLflow when this machine reaches
    the tracking server (pods reach it by a cluster address that a laptop often cannot)."""
    import requests

    from sweeper.errors import SweeperError
    from sweeper.report import load_report
    from sweeper.results import print_report

    later = (
        f"python -m sweeper.report {sweep_id} --tracking-uri {storage.redact(tracking_uri)} "
        f"--experiment {experiment}"
    )
    try:
        requests.get(f"{tracking_uri.rstrip('/')}/health", timeout=3).raise_for_status()
        print_report(load_report(tracking_uri, experiment, sweep_id))
    except requests.RequestException as err:
        print(f"MLflow is not reachable from here ({type(err).__name__}); the results: {later}")
    except SweeperError as err:
        print(f"{err}; the results, later: {later}")
