"""The benchmark script works (its smoke run), and its measurements count what they claim to.

Timing is never asserted here: the numbers belong to bench/RESULTS.md.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from support.servers import SHARED_DATA

PROJECT = Path(__file__).resolve().parent.parent
BENCH = PROJECT / "bench"


def test_cpu_time_of_processes_that_outlive_the_command_is_counted(tmp_path: Path) -> None:
    # The command starts a grandchild that burns CPU after the command itself has exited (as a
    # fork server does): without the subreaper its CPU time would be lost.
    burner = "import time; end = time.process_time() + 1.0\nwhile time.process_time() < end: pass"
    command = (
        "import subprocess, sys; "
        f"subprocess.Popen([sys.executable, '-c', {burner!r}], start_new_session=True)"
    )
    probe = (
        "import json, pathlib, sys; sys.path.insert(0, sys.argv[1]); import measure; "
        "measure.become_subreaper(); "
        f"m = measure.run([sys.executable, '-c', {command!r}], cwd=pathlib.Path('.')); "
        "print(json.dumps([m.wall_s, m.cpu_s, m.peak_mb, m.returncode]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(BENCH)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    wall, cpu, peak_mb, returncode = json.loads(result.stdout)
    assert returncode == 0
    assert cpu >= 1.0  # the grandchild's second of CPU, reaped after its parent had gone
    assert wall < 1.0  # wall time is the command's own: what a user waits for
    assert peak_mb > 1  # the sampler saw the processes


def test_benchmark_smoke_run_writes_every_participant(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--smoke",
            "--out",
            str(tmp_path),
            "--data-dir",
            str(SHARED_DATA),
        ],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = list(csv.DictReader((tmp_path / "results.csv").open()))
    seen = {(r["workload"], r["participant"]) for r in rows}
    for participant in ("sweeper", "hydra + joblib", "hydra basic", "article scripts"):
        assert ("W1", participant) in seen
    assert {("W1", "limit"), ("W2", "limit"), ("W2", "sweeper")} <= seen
    assert {("W1 again", "sweeper"), ("W2 again", "sweeper"), ("--help", "sweeper")} <= seen
    assert {("W5", "sweeper"), ("W5", "GridSearchCV"), ("W5", "sweeper early_stop")} <= seen
    assert {("W6", "sweeper"), ("W6", "sweeper, full grid"), ("W6", "HalvingGridSearchCV")} <= seen
    # W6's Optuna study, streamed and in batches: the same trials, the workers' busy share.
    studies = {r["participant"]: r["note"] for r in rows if r["workload"] == "W6 study"}
    assert set(studies) == {"sweeper optuna_async", "sweeper optuna, batches"}
    for note in studies.values():
        busy = re.fullmatch(r"workers busy (\d+\.\d)% until the last trial started, .*", note)
        assert busy and 0 < float(busy[1]) <= 100
    [stopping] = [r for r in rows if r["participant"] == "sweeper early_stop"]
    fits = re.fullmatch(r"(\d+) of (\d+) fits", stopping["note"])  # counted from its results
    assert fits and 0 < int(fits[1]) <= int(fits[2]) == 2 * 6  # W5's 2 lassos, 5 folds + 1
    for row in rows:
        assert float(row["wall_s"]) > 0
        if row["participant"] != "limit" and row["workload"] != "--help":
            assert float(row["cpu_s"]) > 0 and float(row["peak_mb"]) > 0
        if row["participant"] == "sweeper":
            assert float(row["vs_sweeper"]) == 1.0
    [render] = [r for r in rows if r["workload"].startswith("W4 render")]
    assert int(render["note"].split()[1].replace(",", "")) > 1000  # a real manifest was written
    [planned] = [r for r in rows if r["workload"].startswith("W4 plan")]
    output, pods = planned["note"].split()[1], planned["note"].split()[3]  # "output N bytes, P…"
    assert int(output.replace(",", "")) > 100 and int(pods) >= 1  # the plan step's real output
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (tmp_path / "results.md").read_text()
    assert "| goal | measured | met |" in table and "| W2 | limit |" in table
    # Read from sweeper's own log lines: a time for each workload, not "nan".
    tails = r"\| last trial → exit < 1 s \(W1, W2, W5\) \| (\d+\.\d\d s(, )?){3} \|"
    assert re.search(tails, table), table
    # One seed of W6's quality check ran: halving's winner compared with the full grid's.
    assert re.search(
        r"\| W6 halving's winner within 1 SE of the grid's in ≥ 9 of 1 \| 1 of 1 \|", table
    )


def test_scale_smoke_run_measures_each_size_and_a_sweep_into_the_largest(tmp_path: Path) -> None:
    """bench/scale.py (W7) at tiny sizes: a row per size from the sweeps' own runs, the Argo
    summary of the largest, and the sweep into the grown experiment."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "scale.py"), "--smoke", "--out", str(tmp_path)],
        cwd=PROJECT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    measured = json.loads((tmp_path / "scale.json").read_text())
    rows = measured["sizes"]
    assert [r["trials"] for r in rows] == [60, 250]
    for row in rows:
        assert 0 < row["first_trial_s"] < row["wall_s"] and row["per_trial_ms"] > 0
        assert row["rerun_s"] > 0 and row["peak_mb"] > 0
    # A line per trial up to 200 trials, not past it (the table and the rest: ~50 lines).
    assert rows[0]["lines"] > 60 and rows[1]["lines"] < 100
    summary = measured["argo_summary"]  # backend=argo's plan and summary steps on that store
    assert summary["trials"] == 250 and summary["summary_s"] > 0 and summary["summary_mb"] > 0
    assert measured["into"]["empty_s"] > 0 and measured["into"]["grown_s"] > 0
    assert "| 250 |" in (tmp_path / "scale.md").read_text()
