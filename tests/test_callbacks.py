"""A user's `hydra.callbacks` hear a sweep as they hear it with Hydra's own launchers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from support.mlflow_view import sweeps
from support.servers import run_sweeper

TESTS = str(Path(__file__).parent)


def recorded(workdir: Path, args: list[str]) -> tuple[int, list[dict[str, Any]]]:
    log = workdir / "events.jsonl"
    callback = [
        "+hydra.callbacks.record._target_=support.callbacks.Recorder",
        f"+hydra.callbacks.record.path={log}",
    ]
    flags = [a for a in args if a.startswith("-")]  # Hydra takes them after the overrides
    overrides = [a for a in args if not a.startswith("-")]
    done = run_sweeper([*overrides, *callback, *flags], cwd=workdir, env={"PYTHONPATH": TESTS})
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.returncode, [json.loads(line) for line in log.read_text().splitlines()]


def test_a_multirun_fires_each_jobs_start_and_end_with_its_return(workdir: Path) -> None:
    # n_neighbors=1000: more neighbours than training rows, which only the fit finds.
    args = ["model=knn", "model.weights=uniform", "model.n_neighbors=5,10,1000", "-m"]
    code, events = recorded(workdir, args)
    assert code == 1  # one trial failed
    assert [e["event"] for e in events] == [
        "multirun_start",
        *["job_start"] * 3,
        *["job_end"] * 3,
        "multirun_end",
    ]
    starts = [e for e in events if e["event"] == "job_start"]
    assert [e["num"] for e in starts] == [0, 1, 2]
    assert set(starts[2]["overrides"]) == {*args[:2], "model.n_neighbors=1000"}
    assert {e["model"] for e in starts} == {"sklearn.neighbors.KNeighborsRegressor"}

    ends = {e["num"]: e for e in events if e["event"] == "job_end"}
    assert [ends[n]["status"] for n in (0, 1, 2)] == ["COMPLETED", "COMPLETED", "FAILED"]
    assert "knn n_neighbors=1000" in ends[2]["value"] and "n_neighbors" in ends[2]["value"]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    mse = {r.info.run_name: r.data.metrics.get("cv_mse") for r in sweep.children}
    assert ends[0]["value"] == mse["knn n_neighbors=5"]
    assert ends[1]["value"] == mse["knn n_neighbors=10"]
    for end in ends.values():  # each job's own Hydra folder
        overrides = Path(end["working_dir"], ".hydra", "overrides.yaml")
        assert overrides.is_file() and Path(end["working_dir"]).name == str(end["num"])


def test_past_sweep_job_folders_callbacks_still_hear_each_job_with_its_config(
    workdir: Path,
) -> None:
    """A sweep of more trials than sweep.job_folders writes no per-job folders and keeps no
    composed config per job; a callback still gets each job's config as it would."""
    args = ["model=lasso", "model.alpha=0.1,0.2,0.3", "eval.cv=0", "sweep.job_folders=2", "-m"]
    code, events = recorded(workdir, args)
    assert code == 0
    starts = {e["num"]: e for e in events if e["event"] == "job_start"}
    ends = {e["num"]: e for e in events if e["event"] == "job_end"}
    assert sorted(starts) == sorted(ends) == [0, 1, 2]
    assert {e["model"] for e in starts.values()} == {"sklearn.linear_model.Lasso"}
    sweep_dir = (workdir / events[0]["sweep_dir"]).resolve()  # as Hydra has it: relative
    assert {Path(e["working_dir"]) for e in ends.values()} == {sweep_dir}  # no folder of its own
    assert {e["alpha"] for e in ends.values()} == {None}  # the return carries no config
    assert len((sweep_dir / "jobs.jsonl").read_text().splitlines()) == 3


def test_a_single_run_fires_hydras_own_run_events(workdir: Path) -> None:
    code, events = recorded(workdir, ["model=lasso", "model.alpha=0.5"])
    assert code == 0
    assert [e["event"] for e in events] == ["run_start", "job_start", "job_end", "run_end"]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert events[2]["value"] == sweep.children[0].data.metrics["cv_mse"]  # what it is ranked by
