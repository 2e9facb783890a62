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
    "test_conformance.py",
    "test_argo.py",
    "test_local_sweep.py",
    "test_outages.py",
    "test_bad_input.py",
    "test_production_mlflow.py",
    "test_bench.py",
    "test_readme.py",
    "test_local_faults.py",
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    # A stable sort: a file's tests keep their order (xdist reads each file as one unit).
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
