"""The suite's fixtures: real servers on loopback and working directories (tests/support), and
the order test files go to xdist's workers in."""

from __future__ import annotations

import pytest

from support.production import postgres, production_mlflow  # noqa: F401
from support.servers import (  # noqa: F401  (pytest finds fixtures by name here)
    created_database,
    empty_workdir,
    mlflow_server,
    s3_server,
    workdir,
)

# The files that take a worker longest (measured with --durations=0, summed per file), handed out
# first so that the two workers end together: xdist's own order, most tests first, left the bench
# smoke, the README's commands and the outages for last. Files not named follow in their order.
LONGEST_FIRST = [
    "test_conformance.py",  # 206 s in a full run on 2 cores, 2026-12-04
    "test_outages.py",  # 155 s
    "test_argo.py",  # 139 s
    "test_production_mlflow.py",  # 118 s
    "test_local_sweep.py",  # 116 s
    "test_local_faults.py",  # 106 s
    "test_bench.py",  # 96 s
    "test_readme.py",  # 80 s
    "test_results.py",  # 76 s
    "test_bad_input.py",  # 75 s
    "test_best_model.py",  # 63 s
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    # A stable sort: a file's tests keep their order (xdist reads each file as one unit).
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
