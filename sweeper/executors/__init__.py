"""Where a sweep's trials run: one executor per backend behind one seam (`base.Executor`).

`executor_for` is the only place that maps a backend to its executor: a new backend is a package
beside `local/` and `argo/`, plus its name in `Backend` and its line in `_EXECUTORS`. The seam's
types are in `base`; this module imports neither them nor Hydra, so that `python -m sweeper`
starts the local fork server (`local.pool`) first thing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweeper.core.settings import Backend
    from sweeper.executors.base import Executor

__all__ = ["executor_for"]

# Imported only when chosen: a local sweep never loads Hera, an Argo one never starts workers.
_EXECUTORS = {
    "local": "sweeper.executors.local.executor:LocalExecutor",
    "argo": "sweeper.executors.argo:ArgoExecutor",
}


def executor_for(backend: Backend) -> Executor:
    module, name = _EXECUTORS[backend.value].split(":")
    executor: Executor = getattr(importlib.import_module(module), name)()
    return executor
