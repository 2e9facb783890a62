"""A local sweep when things go wrong: killed, interrupted, a worker dying, two at once, a damaged
store; and what the sweeping process itself loads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from support.mlflow_view import sweeps
from support.servers import run_sweeper, start_sweeper_until
from support.store import split_dirs
from sweeper.core.processes import raise_if_ctrl_c, started, take_ctrl_c
from sweeper.executors.local.private import remove_orphans

if TYPE_CHECKING:
    from mlflow.entities import Run


def test_a_killed_sweep_resumes_where_it_stopped(workdir: Path) -> None:
    args = ["model=lasso", "model.alpha=range(1,121)", "-m"]  # 120 quick trials
    sweep = start_sweeper_until(args, workdir, "[20/120]")
    os.killpg(sweep.pid, signal.SIGKILL)  # power loss: nothing gets to clean up
    sweep.wait()
    left = private_folders_of(sweep.pid)  # its workers' markers and kept models
    assert len(left) == 1 and (left[0] / "kept").is_dir()
    database = f"sqlite:///{workdir / 'mlflow.db'}"
    [killed] = sweeps(database, "sweeper")
    # Workers log their own runs: the kill may catch one between creating a run and ending it.
    done_before = sum(r.info.status == "FINISHED" for r in killed.children)
    assert 20 <= done_before < 120 and killed.parent.info.status == "RUNNING"
    assert len(killed.children) - done_before <= 2  # at most one mid-write run per worker

    resumed = run_sweeper(args, cwd=workdir)
    assert resumed.returncode == 0, resumed.stderr
    assert not private_folders_of(sweep.pid)  # the next sweep removed the killed one's
    [record] = (workdir / "sweeper-store" / "sweeps").glob("*/results.json")
    assert sum(t["reused"] for t in json.loads(record.read_text())["trials"]) == done_before
    # The table shows the best 30 and says where the other 90 are.
    assert resumed.stdout.count("│ lasso alpha=") == 30
    assert "90 more below rank 30" in resumed.stdout
    first, second = sweeps(database, "sweeper")
    assert first.parent.info.status == "KILLED"  # the orphan is closed, not left RUNNING
    # ...and so is any trial run it left mid-write: no run stays RUNNING.
    assert {r.info.status for r in first.children} <= {"FINISHED", "KILLED"}
    assert len(second.children) == 120 - done_before  # only the rest was trained
    assert all(r.info.status == "FINISHED" for r in second.children)
    finished = [
        r.info.run_name for s in (first, second) for r in s.children if r.info.status == "FINISHED"
    ]
    assert len(finished) == len(set(finished)) == 120  # every trial finished exactly once
    assert second.parent.data.metrics["n_reused"] == done_before


def test_a_damaged_stored_split_is_rebuilt_not_trusted(workdir: Path) -> None:
    args = ["model=ridge", "model.alpha=1", "-m"]
    assert run_sweeper(args, cwd=workdir).returncode == 0
    [stored] = split_dirs(workdir / "sweeper-store")
    whole = (stored / "train.parquet").read_bytes()
    (stored / "train.parquet").write_bytes(whole[: len(whole) // 2])  # a crash mid-copy
    again = run_sweeper(args, cwd=workdir)
    assert again.returncode == 0, again.stderr
    [line] = [x for x in again.stdout.splitlines() if "Preprocess" in x]
    assert ": stored " in line  # rebuilt, not reused
    assert (stored / "train.parquet").read_bytes() == whole


def test_a_dying_worker_fails_only_its_trial(workdir: Path) -> None:
    tests = str(Path(__file__).parent)
    result = run_sweeper(
        [
            "model=lasso",
            "model._target_=support.crashing.CrashingLasso",
            "trust.modules=[support]",  # the tests' own package, as a user's would be
            "model.alpha=0.1,13,1,2,3",
            "-m",
        ],
        cwd=workdir,
        env={"PYTHONPATH": tests},
    )
    assert result.returncode == 1
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    status = {r.info.run_name: r.info.status for r in sweep.children}
    assert status == {
        "lasso alpha=0.1": "FINISHED",
        "lasso alpha=13": "FAILED",
        "lasso alpha=1": "FINISHED",
        "lasso alpha=2": "FINISHED",
        "lasso alpha=3": "FINISHED",
    }
    died = sweep.by_name()["lasso alpha=13"].data.tags
    assert died["error.type"] == "WorkerDied"
    # The signal is named when the fork server learns it, which is not guaranteed.
    assert died["error.message"] in (
        "its worker process died (killed by SIGKILL)",
        "its worker process died (killed or crashed; the OS did not report how)",
    )
    assert f"lasso alpha=13: WorkerDied: {died['error.message']}" in result.stdout


def private_folders_of(pid: int) -> list[Path]:
    return list(Path(tempfile.gettempdir()).glob(f"sweeper-workers-{pid}-*"))


def test_private_folders_of_sweeps_whose_process_is_gone_are_removed(tmp_path: Path) -> None:
    me = os.getpid()
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    mine = tmp_path / f"sweeper-workers-{me}-{started(me)}-a1"
    killed = tmp_path / f"sweeper-workers-{int(ended.stdout)}-12345-b2"
    pid_reused = tmp_path / f"sweeper-workers-{me}-1-c3"  # this pid, an earlier process's
    not_ours = tmp_path / "sweeper-workers-x0ojda2s"  # no owner in its name: left alone
    for folder in (mine, killed, pid_reused, not_ours):
        (folder / "kept").mkdir(parents=True)
    assert sorted(remove_orphans(tmp_path)) == sorted([killed, pid_reused])
    assert sorted(tmp_path.iterdir()) == sorted([mine, not_ours])


def test_two_sweeps_at_once_on_one_store_and_database(empty_workdir: Path) -> None:
    workdir = empty_workdir  # both sweeps find no database: both try to create it
    commands = [
        ["model=rf", "model.n_estimators=range(50,60)", "model.max_depth=4", "-m"],
        ["model=lasso", "model.alpha=range(1,21)", "-m"],
    ]
    running = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeper", *args],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    for process in running:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
    both = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert sorted(len(s.children) for s in both) == [10, 20]
    assert all(r.info.status == "FINISHED" for s in both for r in s.children)
    assert len(split_dirs(workdir / "sweeper-store")) == 1  # the same split, stored once


@pytest.mark.parametrize("again_after", [None, 0.1], ids=["once", "twice-while-ending"])
def test_ctrl_c_stops_cleanly(workdir: Path, again_after: float | None) -> None:
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweeper", *LONG_SWEEP],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert sweep.stdout is not None
    for line in sweep.stdout:  # wait until trials are under way
        if "[2/85]" in line:
            break
    os.killpg(sweep.pid, signal.SIGINT)  # what Ctrl-C sends: the whole group
    if again_after is not None:
        time.sleep(again_after)
        os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 130
    assert stderr.strip().endswith("interrupted") and "Traceback" not in stderr
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # no worker outlives the sweep
        try:
            os.killpg(sweep.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("worker processes are still running")
    [killed] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert killed.parent.info.status == "KILLED"
    assert_cut_short(killed.children)


def test_the_sweeping_process_leaves_training_and_logging_to_the_workers(workdir: Path) -> None:
    # The workers (forked from a fork server that loaded them once) train and log; the process
    # the user started schedules, and preprocesses the first batch while the fork server
    # imports (pandas and scikit-learn for that), but never loads MLflow for a first sweep.
    probe = (
        "import runpy, sys\n"
        "heavy = ('mlflow', 'pandas', 'sklearn')\n"
        "sys.argv = ['sweeper', 'model=lasso', 'model.alpha=0.1,1', '-m']\n"
        "try:\n"
        "    runpy.run_module('sweeper', run_name='__main__')\n"
        "finally:  # the sweep has ended\n"
        "    print('LOADED', [m for m in heavy if m in sys.modules])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "LOADED ['pandas', 'sklearn']" in result.stdout
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert sorted(r.info.run_name for r in sweep.children) == ["lasso alpha=0.1", "lasso alpha=1"]


def running_in_group(group: int) -> list[int]:
    """Processes of a process group that still run (a zombie waits to be reaped, runs nothing)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended while being read
        if int(fields[2]) == group and fields[0] != "Z":  # fields 5 (pgrp) and 3 (state)
            found.append(int(stat.parent.name))
    return found


def gone_within(group: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not running_in_group(group):
            return True
        time.sleep(0.2)
    return False


# 85 forests (the depth fixed, so the grid's max_depth axis does not triple them): enough that a
# stop lands mid-sweep, small enough that the trials cut short cost little under CI's load.
LONG_SWEEP = ["model=rf", "model.n_estimators=range(100,185)", "model.max_depth=8", "-m"]


def start_long_sweep(workdir: Path) -> subprocess.Popen[str]:
    """85 forests, in a process group of its own, once its first trials have finished."""
    sweep = start_sweeper_until(LONG_SWEEP, workdir, "[2/85]", stderr=subprocess.PIPE)
    assert len(running_in_group(sweep.pid)) >= 3  # the sweep, its fork server, its workers
    return sweep


def test_kill_9_of_the_sweeping_process_alone_takes_its_workers_with_it(workdir: Path) -> None:
    sweep = start_long_sweep(workdir)
    os.kill(sweep.pid, signal.SIGKILL)  # the sweeping process only, not its group
    sweep.wait()
    assert gone_within(sweep.pid, 10), running_in_group(sweep.pid)
    database = f"sqlite:///{workdir / 'mlflow.db'}"
    [killed] = sweeps(database, "sweeper")
    assert killed.parent.data.tags["pid"] == str(sweep.pid)  # the sweep's owner: this process
    finished = sum(r.info.status == "FINISHED" for r in killed.children)
    time.sleep(2)  # nothing goes on training after the kill
    [still] = sweeps(database, "sweeper")
    assert sum(r.info.status == "FINISHED" for r in still.children) == finished
    # The next sweep in the experiment sees the owner gone and closes its run.
    quick = run_sweeper(["model=lasso", "model.alpha=1", "-m"], cwd=workdir)
    assert quick.returncode == 0, quick.stderr
    first, _ = sweeps(database, "sweeper")
    assert first.parent.info.status == "KILLED"


def test_a_ctrl_c_python_drops_in_a_callback_still_stops_the_command() -> None:
    """Python drops an exception raised in a callback such as an import lock's weakref one
    ("Exception ignored in", through sys.unraisablehook): a Ctrl-C that lands there while the
    command loads is kept, not printed, and raised where the command starts work (the case
    below once ran a whole sweep instead)."""

    class Lock:
        pass

    previous, hook = signal.getsignal(signal.SIGINT), sys.unraisablehook
    printed: list[object] = []
    sys.unraisablehook = printed.append
    try:
        take_ctrl_c()
        lock = Lock()
        dropped = weakref.ref(lock, lambda _: signal.raise_signal(signal.SIGINT))
        del lock  # the callback runs, the KeyboardInterrupt raised in it is dropped
        assert dropped() is None and printed == []
        with pytest.raises(KeyboardInterrupt):
            raise_if_ctrl_c()
        raise_if_ctrl_c()  # once: it has stopped the command now
    finally:
        signal.signal(signal.SIGINT, previous)
        sys.unraisablehook = hook


def test_ctrl_c_while_starting_up_says_interrupted_and_nothing_else(workdir: Path) -> None:
    sweep = subprocess.Popen(
        [sys.executable, "-m", "sweeper", *LONG_SWEEP],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 30
    while len(running_in_group(sweep.pid)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the fork server is started first thing...
    time.sleep(0.3)  # ...and then spends seconds importing scikit-learn, MLflow, matplotlib
    os.killpg(sweep.pid, signal.SIGINT)
    _, stderr = sweep.communicate(timeout=60)
    assert sweep.returncode == 130
    assert stderr.strip() == "interrupted"  # no traceback, the fork server's included
    assert gone_within(sweep.pid, 10), running_in_group(sweep.pid)


def test_sigterm_stops_a_sweep_as_ctrl_c_does(workdir: Path) -> None:
    sweep = start_long_sweep(workdir)
    sweep.send_signal(signal.SIGTERM)  # kill's default, a scheduler's stop: to the process only
    _, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 143
    assert stderr.strip().splitlines()[-1] == "terminated" and "Traceback" not in stderr
    assert gone_within(sweep.pid, 10), running_in_group(sweep.pid)
    [stopped] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert stopped.parent.info.status == "KILLED"
    assert_cut_short(stopped.children)


def assert_cut_short(children: list[Run]) -> None:
    """A stopped 85-trial sweep: the trials being fitted at the stop (one per worker at most)
    ended KILLED, those before it FINISHED."""
    statuses = Counter(r.info.status for r in children)
    assert set(statuses) <= {"FINISHED", "KILLED"} and statuses["KILLED"] <= 2, statuses
    assert 2 <= statuses["FINISHED"] < 85
