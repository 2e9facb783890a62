"""The suite's fixtures: real servers on loopback and working directories (tests/support); the two
tiers (a `unit` test starts no process and no server, everything else is `e2e`); and the order
test files go to xdist's workers in, from the durations the last full run measured."""

from __future__ import annotations

import _posixsubprocess
import contextlib
import json
import multiprocessing.process
import os
import socket
import subprocess
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.production import postgres, production_mlflow  # noqa: F401
from support.servers import (  # noqa: F401  (pytest finds fixtures by name here)
    created_database,
    empty_workdir,
    mlflow_server,
    s3_server,
    workdir,
)

# Seconds each test file took in the last full run, summed over its tests: the longest files go
# to the xdist workers first, so that the two end together (xdist's own order, most tests first,
# left the slowest files for last). Rewritten by every run that ran the whole suite and passed.
DURATIONS = Path(__file__).with_name("durations.json")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("unit") is None:
            item.add_marker(pytest.mark.e2e)
    measured = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    # A stable sort: a file's tests keep their order (xdist reads each file as one unit).
    items.sort(key=lambda item: -measured.get(item.path.name, 0.0))


# What starting a process or a server comes down to: subprocess (its own binding of it) and
# multiprocessing's fork server both reach _posixsubprocess.fork_exec; a pool's workers fork.
_STARTS = [
    (_posixsubprocess, "fork_exec", "starts a process"),
    (subprocess, "_fork_exec", "starts a process"),
    (os, "fork", "forks"),
    (os, "posix_spawn", "starts a process"),
    (os, "posix_spawnp", "starts a process"),
    (os, "system", "runs a shell"),
    (multiprocessing.process.BaseProcess, "start", "starts a process"),
    (socket.socket, "listen", "listens on a port"),
]


@contextlib.contextmanager
def _starting_nothing(item: pytest.Item) -> Iterator[None]:
    """Keeps the fast tier fast: a test marked `unit` (its fixtures included, whatever their
    scope) that starts a process or listens on a port fails, naming what it did, even when the
    code under test caught the refusal. Setup and call only: a teardown also ends the fixtures
    of the module before (an e2e module's servers), whenever xdist gets to it."""
    if item.get_closest_marker("unit") is None:
        yield
        return
    import platform

    import matplotlib.font_manager  # noqa: F401  (its first import may run fc-list: not the test's)

    platform.processor()  # its first call (MLflow's import makes it) may run `uname -p`: cached

    refused: list[str] = []

    def refuse(what: str) -> Callable[..., None]:
        def refused_call(*_args: object, **_kwargs: object) -> None:
            refused.append(what)
            raise AssertionError(f"a unit test {what}: leave the unit mark off")

        return refused_call

    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in _STARTS]
    for owner, name, what in _STARTS:
        setattr(owner, name, refuse(what))
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)
    if refused:
        pytest.fail(f"a unit test {refused[0]}: leave the unit mark off", pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    with _starting_nothing(item):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    with _starting_nothing(item):
        return (yield)


_seconds: defaultdict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under xdist the controller gets every worker's reports: one sum for the whole run.
    _seconds[report.nodeid.split("::")[0].rpartition("/")[2]] += report.duration


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    every_file = {path.name for path in Path(__file__).parent.glob("test_*.py")}
    option = session.config.option
    chosen = option.markexpr or option.keyword or option.deselect or option.lf
    whole_run = not chosen and set(_seconds) >= every_file
    if hasattr(session.config, "workerinput") or exitstatus != 0 or not whole_run:
        return
    measured = {name: round(seconds, 1) for name, seconds in sorted(_seconds.items())}
    DURATIONS.write_text(json.dumps(measured, indent=1) + "\n")
