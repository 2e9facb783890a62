"""Where a sweep's trials run: one executor per backend behind one seam (`base.Executor`).

`executor_for` is the only place that maps a backend to its executor: a new backend is a package
beside `local/` and `argo/`, plus its name in `Backend` and its line in `_EXECUTORS`.
"""

from __future__ import annotations

import importlib

from sweeper.core.settings import Backend
from sweeper.executors.base import Batch, Executor, Sweep

__all__ = ["Batch", "Executor", "Sweep", "executor_for"]

# Imported only when chosen: a local sweep never loads Hera, an Argo one never starts workers.
_EXECUTORS = {
    Backend.local: "sweeper.executors.local:LocalExecutor",
    Backend.argo: "sweeper.executors.argo:ArgoExecutor",
}


def executor_for(backend: Backend) -> Executor:
    module, name = _EXECUTORS[backend].split(":")
    executor: Executor = getattr(importlib.import_module(module), name)()
    return executor
