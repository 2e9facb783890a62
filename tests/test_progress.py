"""The progress display: its arithmetic with a clock the test moves, the Argo watch's counts from
node phases, and real sweeps with their output captured (plain lines) and on a terminal (live)."""

from __future__ import annotations

import fcntl
import json
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from typing import Any

import pytest
from hera.workflows.models import Workflow as WorkflowModel

from support.servers import run_sweeper
from sweeper.core.metrics import Ranking
from sweeper.core.outcomes import Outcome
from sweeper.core.records import Trial
from sweeper.display.progress import (
    QUIET_EVERY,
    QUIET_SHARE,
    Counts,
    Progress,
    _Quiet,
    clock_time,
    describe,
)
from sweeper.display.trial_lines import EVERY_TRIAL_UP_TO, FAILURES_SHOWN, TrialLines
from sweeper.executors.argo.watch import trial_counts

SWEEP = ["model=lasso", "model.alpha=0.01,0.1,1,10", "-m"]
ANSI = re.compile(r"\x1b[\[\]()]")


class Clock:
    """Time stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def trial(index: int) -> Trial:
    return Trial(index, f"lasso alpha={index}", "lasso", {"alpha": index}, "g", (), {})


def finished(index: int, mse: float, reused: bool = False) -> Outcome:
    if reused:
        return Outcome.finished(trial(index), {"mse": mse}, f"run-{index}", reused=True)
    return Outcome.finished(trial(index), {"mse": mse}, f"run-{index}")


@pytest.mark.unit
def test_counts_time_left_and_best_follow_the_events(tmp_path: Path) -> None:
    clock = Clock()
    progress = Progress(total=6, workers=2, markers=str(tmp_path), clock=clock)
    assert progress.counts() == Counts(6, 0, 0, 0) and progress.counts().queued == 6
    assert progress.line() == "0/6 done, 0 failed, 0 running, 6 queued; 0:00:00 elapsed"

    clock.now += 1
    progress.settled(finished(5, 3000.0, reused=True))  # done at once, says nothing of speed
    assert progress.counts() == Counts(6, done=1)
    assert progress.left(progress.counts()) is None
    assert progress.best == (3000.0, 5, "lasso alpha=5")

    clock.now += 1  # t=2: trials 0 and 1 start on the two workers, 2 and 3 wait
    progress.released([0, 1, 2, 3])
    (tmp_path / "101").write_text("0")  # the markers of the two workers fitting
    (tmp_path / "102").write_text("1")
    counts = progress.counts()
    assert (counts.done, counts.failed, counts.running, counts.queued) == (1, 0, 2, 3)

    clock.now += 10  # t=12: trial 1 took 10 s; trial 2 takes its worker
    progress.settled(finished(1, 2900.0))
    assert progress.mean_duration() == pytest.approx(10.0)
    # 4 trials left at 10 s each on 2 workers.
    assert progress.left(progress.counts()) == pytest.approx(20.0)
    assert progress.best == (2900.0, 1, "lasso alpha=1")

    clock.now += 4  # t=16: trial 0 fails; its time is no trial's duration; trial 3 starts
    progress.settled(Outcome(trial(0), "FAILED", error="ValueError: no"))
    assert progress.mean_duration() == pytest.approx(10.0)

    clock.now += 10  # t=26: trial 2 ran from t=12, 14 s
    progress.settled(finished(2, 2950.0))
    assert progress.mean_duration() == pytest.approx(12.0)
    assert progress.left(progress.counts()) == pytest.approx(12.0)  # 2 left, 2 workers

    clock.now += 4  # t=30: trial 3 ran from t=16, 14 s; equals the best mse: the first stays
    progress.settled(finished(3, 2900.0))
    assert progress.mean_duration() == pytest.approx(38.0 / 3)
    assert progress.left(progress.counts()) == pytest.approx(38.0 / 3)  # 1 left: one worker
    assert progress.best == (2900.0, 1, "lasso alpha=1")

    progress.settled(Outcome.not_run(trial(4), "preprocess failed"))
    counts = progress.counts()
    # The markers are still there (a dead worker's may be): never more running than remain.
    assert counts == Counts(6, done=4, failed=2, running=0) and counts.queued == 0
    assert progress.left(counts) is None
    assert progress.line() == (
        "4/6 done, 2 failed, 0 running, 0 queued; 0:00:30 elapsed; best mse 2900 (lasso alpha=1)"
    )


@pytest.mark.unit
def test_time_left_is_shown_once_a_trained_trial_finished() -> None:
    clock = Clock()
    progress = Progress(total=41, workers=4, clock=clock)
    progress.released(range(41))
    clock.now += 75
    assert "left" not in progress.line()  # nothing finished: no guess
    progress.settled(finished(0, 2743.6))
    # 40 left at 75 s each, 4 at a time.
    assert progress.line() == (
        "1/41 done, 0 failed, 0 running, 40 queued; 0:01:15 elapsed, ~0:12:30 left; "
        "best mse 2743.6 (lasso alpha=0)"
    )


@pytest.mark.unit
def test_formatting() -> None:
    assert clock_time(0) == "0:00:00"
    assert clock_time(59.9) == "0:00:59"
    assert clock_time(3725) == "1:02:05"
    assert clock_time(90000) == "25:00:00"
    counts = Counts(40, done=12, failed=1, running=2)
    assert counts.queued == 25
    assert describe(counts, 31.4, 69.2, (2743.6, "rf n_estimators=100 max_depth=4")) == (
        "12/40 done, 1 failed, 2 running, 25 queued; 0:00:31 elapsed, ~0:01:10 left; "
        "best mse 2743.6 (rf n_estimators=100 max_depth=4)"
    )
    assert describe(counts, 5, left=0.2) == (
        "12/40 done, 1 failed, 2 running, 25 queued; 0:00:05 elapsed, ~0:00:01 left"
    )


@pytest.mark.unit
def test_without_a_terminal_the_end_is_one_plain_log_line(caplog: pytest.LogCaptureFixture) -> None:
    assert not sys.stdout.isatty()  # pytest captures it
    clock = Clock()
    progress = Progress(total=2, workers=2, clock=clock)
    with caplog.at_level(logging.INFO, logger="sweeper.display.progress"):
        progress.start()
        progress.released([0, 1])
        clock.now += 3
        progress.settled(finished(0, 10.0), finished(1, 20.0))
        progress.stop()
        progress.stop()  # a second stop does nothing
    assert [r.getMessage() for r in caplog.records] == [
        "progress: 2/2 done, 0 failed, 0 running, 0 queued; 0:00:03 elapsed; "
        "best mse 10 (lasso alpha=0)"
    ]


def workflow(*nodes: dict[str, Any]) -> WorkflowModel:
    return WorkflowModel(
        metadata={"name": "wf"},
        spec={},
        status={"phase": "Running", "nodes": {n["id"]: n for n in nodes}},
    )


def pod(template: str, phase: str | None, suffix: str, **extra: Any) -> dict[str, Any]:
    node = {
        "id": f"wf-{suffix}",
        "name": f"wf.{template}",
        "type": "Pod",
        "templateName": template,
        **extra,
    }
    return node if phase is None else {**node, "phase": phase}


def train(phase: str | None, suffix: str, chunk: str) -> dict[str, Any]:
    return pod("train", phase, suffix, inputs={"parameters": [{"name": "chunk", "value": chunk}]})


@pytest.mark.unit
def test_argo_counts_come_from_train_pods_and_the_plan() -> None:
    # The plan step's output: group a trains chunks 0-2 (2, 2 and 1 trials), group b chunks 3-4
    # (2 and 1) and has one trial an earlier sweep finished.
    size = {"cpu": "1", "memory": "1Gi", "memory_limit": "2Gi"}
    groups = [
        {
            "group": "a",
            "to_train": 5,
            "finished": 0,
            "pods": [{"first": 0, "count": 3, "trials": [2, 2, 1], **size}],
        },
        {
            "group": "b",
            "to_train": 3,
            "finished": 1,
            "pods": [{"first": 3, "count": 2, "trials": [2, 1], **size}],
        },
    ]
    outputs = {"parameters": [{"name": "groups", "value": json.dumps(groups)}]}
    plan = pod("plan", "Succeeded", "p", outputs=outputs)
    assert trial_counts(workflow()) is None  # not planned yet: no total
    assert trial_counts(workflow(pod("plan", "Running", "p"))) is None
    assert trial_counts(workflow(plan)) == Counts(9, done=1)  # the finished one; 8 queued
    nodes = [
        plan,
        train("Succeeded", "1", "0"),
        train("Error", "2", "1"),  # the cluster lost this pod...
        train("Running", "3", "1"),  # ...and its retry runs
        train("Failed", "4", "2"),
        train("Pending", "5", "3"),
        train(None, "6", "4"),  # no phase yet
    ]
    counts = trial_counts(workflow(*nodes))
    assert counts == Counts(9, done=3, failed=1, running=2) and counts.queued == 3
    # Retries exhausted: every attempt failed, the trials count once.
    nodes[3] = train("Error", "3", "1")
    assert trial_counts(workflow(*nodes)) == Counts(9, done=3, failed=3)


@pytest.mark.unit
def test_argo_counts_of_a_halving_grow_with_its_rounds() -> None:
    # search=halving: the plan trains nothing itself; each round's promote pod says its trials.
    size = {"cpu": "1", "memory": "1Gi", "memory_limit": "2Gi"}
    groups = [{"group": "a", "to_train": 0, "finished": 0, "pods": []}]
    plan = pod(
        "plan",
        "Succeeded",
        "p",
        outputs={"parameters": [{"name": "groups", "value": json.dumps(groups)}]},
    )

    def promote(suffix: str, prefix: str, trials: list[int]) -> dict[str, Any]:
        runs = [{"first": 0, "count": len(trials), "trials": trials, **size}] if trials else []
        values = {"pods": json.dumps(runs), "to_train": str(sum(trials)), "prefix": prefix}
        parameters = [{"name": k, "value": v} for k, v in values.items()]
        return pod("promote", "Succeeded", suffix, outputs={"parameters": parameters})

    assert trial_counts(workflow(plan)) == Counts(0)
    retried = {**promote("r0-retry", "a-0-", [2, 2, 1]), "type": "Retry"}  # its pod's outputs
    round_0 = [retried, promote("r0", "a-0-", [2, 2, 1]), train("Succeeded", "1", "a-0-0")]
    round_0 += [train("Failed", "2", "a-0-1"), train("Running", "3", "a-0-2")]
    assert trial_counts(workflow(plan, *round_0)) == Counts(5, done=2, failed=2, running=1)
    round_1 = [promote("r1", "a-1-", [2]), train("Succeeded", "4", "a-1-0")]
    assert trial_counts(workflow(plan, *round_0, *round_1)) == Counts(
        7, done=4, failed=2, running=1
    )


def results_best(workdir: Path) -> tuple[str, float]:
    [record] = (workdir / "sweeper-store" / "sweeps").glob("*/results.json")
    best = json.loads(record.read_text())["trials"][0]
    return best["name"], best["metrics"]["cv_mse"]


def test_captured_output_gets_plain_progress_lines(workdir: Path) -> None:
    result = run_sweeper(SWEEP, cwd=workdir)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert not ANSI.search(out + result.stderr)
    assert len(re.findall(r"\] \[\d/4\] lasso alpha=", out)) == 4  # per-trial lines as before
    lines = out.splitlines()
    shown = [i for i, line in enumerate(lines) if "] progress: " in line]
    assert shown, out
    final = lines[shown[-1]].split("] progress: ", 1)[1]
    match = re.fullmatch(
        r"4/4 done, 0 failed, 0 running, 0 queued; \d+:\d\d:\d\d elapsed; "
        r"best cv_mse (\S+) \((.+)\)",
        final,
    )
    assert match, final
    # The same winner as the results table printed after it, and as results.json.
    table = next(i for i, line in enumerate(lines) if "ranked by CV MSE" in line)
    assert shown[-1] < table
    rank_one = next(
        re.match(r"│\s+1 │ (.+?)\s+│", line) for line in lines[table:] if re.match(r"│\s+1 │", line)
    )
    assert rank_one is not None and match[2] == rank_one[1]
    name, mse = results_best(workdir)
    assert match[2] == name and float(match[1]) == pytest.approx(mse, rel=1e-5)


def run_in_terminal(args: list[str], cwd: Path, seconds: float = 120) -> tuple[int, str]:
    """The command on a pseudo-terminal of 200 columns, as a user's shell runs it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("COLUMNS", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "sweeper", *args],
        cwd=cwd,
        env=env,
        stdin=follower,
        stdout=follower,
        stderr=follower,
        start_new_session=True,
    )
    os.close(follower)
    output = bytearray()
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                break
            if not chunk:
                break
            output += chunk
        code = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    return code, output.decode(errors="replace")


def test_a_terminal_gets_a_live_display_then_the_table(workdir: Path) -> None:
    code, out = run_in_terminal(SWEEP, workdir)
    assert code == 0, out[-3000:]
    assert "] progress: " not in out  # no plain lines on a terminal
    states = re.findall(r"(\d)/4 done, (\d) failed, (\d) running, (\d) queued", out)
    assert ("0", "0", "0", "4") in states  # drawn before any trial ended
    assert states[-1] == ("4", "0", "0", "0")  # and left with the final counts
    final = out.rindex("4/4 done, 0 failed, 0 running, 0 queued")
    assert "best cv_mse" in out[final:].split("\n", 1)[0]
    # Redrawn in place, and the per-trial log lines go above it: each clears the display's
    # line before it is written, rather than being written into it.
    assert out.count("\x1b[2K") > 4
    logged = re.findall(r"(\x1b\[2K)?\[[\d-]+ [\d:,]+\]\[HYDRA\] \[\d/4\] lasso", out)
    assert logged == ["\x1b[2K"] * 4
    table = out.index("ranked by CV MSE")
    assert final < table and "│ lasso alpha=" in out[table:]


@pytest.mark.unit
def test_a_large_sweep_logs_its_failures_and_last_trial_not_every_trial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def logged(total: int, failing: set[int]) -> list[str]:
        caplog.clear()
        lines = TrialLines(total)
        with caplog.at_level(logging.INFO, logger="sweeper.display.trial_lines"):
            for n in range(1, total + 1):
                if n in failing:
                    outcome = Outcome.failed(trial(n), ValueError("no"), f"run-{n}")
                else:
                    outcome = finished(n, float(n))
                lines.settled(outcome, n, total, Ranking())
        return [r.getMessage() for r in caplog.records]

    small = logged(EVERY_TRIAL_UP_TO, {3})
    assert len(small) == EVERY_TRIAL_UP_TO and small[2].startswith("[3/200] lasso alpha=3")
    failing = set(range(100, 100 + 3 * (FAILURES_SHOWN + 10), 3))  # 30 of 5,000
    large = logged(5_000, failing)
    assert large[0].startswith("A line per trial is printed for sweeps of up to 200 trials")
    shown = sorted(failing)[:FAILURES_SHOWN]
    assert large[1 : 1 + FAILURES_SHOWN] == [
        f"[{n}/5000] lasso alpha={n}: FAILED ValueError: no" for n in shown
    ]
    assert large[1 + FAILURES_SHOWN :] == [
        "More trials failed: the table counts them, results.csv lists them",
        "[5000/5000] lasso alpha=5000: mse=5000",
    ]


@pytest.mark.unit
def test_plain_progress_lines_thin_out_as_a_sweep_goes_on() -> None:
    clock = Clock()
    progress = Progress(total=10, workers=2, clock=clock)
    quiet = _Quiet(progress)
    try:
        assert quiet._every() == QUIET_EVERY  # the first minutes: every 10 s
        clock.now += 3_000
        assert quiet._every() == 3_000 / QUIET_SHARE  # ~30 more lines each time it triples
    finally:
        quiet.stop(leave=False)
