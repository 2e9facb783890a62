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

    return submit(workflow, cfg.argo)
