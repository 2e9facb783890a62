"""eval.early_stop: a trial's CV ends after a fold once its folds so far are worse than the best
finished trial's on the same folds; it is marked stopped, keeps its partial CV, is never the
winner, and is a result of its own (a sweep without early stopping trains it in full)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from support.mlflow_view import sweeps
from support.servers import data_file, run_sweeper
from sweeper.core.evidence import EarlyStop, held_out_per_fit, worse_p_value

CARSEATS = ["data=csv", f"data.path={data_file('carseats.csv')}", "data.target=Sales"]
# Lasso from barely regularised to the mean: the first few are near-equal, the rest clearly
# worse, and (same cost) they start in this order: the best finish first.
ALPHAS = "0.001,0.003,0.01,0.03,0.1,0.2,0.3,0.5,0.8,1,1.5,2,3,5"
LASSOS = [*CARSEATS, "model=lasso", f"model.alpha={ALPHAS}", "local.workers=2", "-m"]


@pytest.mark.unit
def test_a_trial_stops_once_its_folds_are_worse_at_the_level(tmp_path: Path) -> None:
    best = tmp_path / "best.json"
    stop = EarlyStop(str(best), "mse", maximised=False, level=0.05)
    assert not stop.worse([9.0, 9.0, 9.0])  # nothing finished yet: nothing to be worse than
    stop.keep([1.0, 1.2, 0.9, 1.1, 1.0])
    assert json.loads(best.read_text()) == [1.0, 1.2, 0.9, 1.1, 1.0]
    assert not stop.worse([3.0])  # one fold says nothing of its spread
    assert stop.worse([3.0, 3.3])  # worse by 2.05 ± 0.05 on two folds
    assert not stop.worse([1.1, 1.1])  # within the noise
    differences = [1.05, 0.9, 1.4]
    p = worse_p_value(differences, held_out_per_fit(5))
    assert stop.worse([2.05, 2.1, 2.3]) == (p < 0.05)
    accuracy = EarlyStop(str(best), "accuracy", maximised=True, level=0.05)
    assert accuracy.worse([0.1, 0.2]) and not accuracy.worse([3.0, 3.3])  # higher is better


def _trial_runs(workdir: Path) -> list[Run]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "sweeper"]
    runs = client.search_runs([experiment.experiment_id], max_results=5000)
    return [r for r in runs if "trial_key" in r.data.tags and r.info.status == "FINISHED"]


def test_early_stopped_trials_are_marked_and_never_win(workdir: Path) -> None:
    stopping = run_sweeper([*LASSOS, "eval.early_stop=true"], cwd=workdir)
    assert stopping.returncode == 0, stopping.stderr[-3000:]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    [sweep] = sweeps(uri, "sweeper")
    assert len(sweep.children) == 14
    stopped = [r for r in sweep.children if "cv.stopped_after" in r.data.tags]
    full = [r for r in sweep.children if "cv.stopped_after" not in r.data.tags]
    assert len(stopped) >= 4, "the clearly worse lassos were all fitted on every fold"
    best = min(full, key=lambda r: r.data.metrics["cv_mse"])
    best_folds = json.loads(best.data.tags["cv_folds"])["mse"]
    for run in stopped:
        after = int(run.data.tags["cv.stopped_after"])
        folds = json.loads(run.data.tags["cv_folds"])["mse"]
        history = client.get_metric_history(run.info.run_id, "fold_mse")
        assert 2 <= after < 5 and len(folds) == after == len(history)
        assert run.data.metrics["cv_mse"] == pytest.approx(sum(folds) / after)
        assert "mse" not in run.data.metrics  # no test score, no model: it never was a candidate
        assert run.data.tags["trial_key"].endswith("-stopped")
        assert sum(folds) / after > sum(best_folds[:after]) / after
    assert f"Best: {best.info.run_name} (cv_mse" in stopping.stdout
    assert f"Stopped early: {len(stopped)} of 14 before their last fold" in stopping.stdout
    assert sweep.parent.data.metrics["best_cv_mse"] == best.data.metrics["cv_mse"]

    # The same sweep again stops nothing new and trains nothing: every result is found.
    again = run_sweeper([*LASSOS, "eval.early_stop=true"], cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(_trial_runs(workdir)) == 14

    # Without early stopping, the stopped trials are trained in full (a result of their own),
    # the others are reused, and the winner is the same.
    whole = run_sweeper(LASSOS, cwd=workdir)
    assert whole.returncode == 0, whole.stderr[-3000:]
    runs = _trial_runs(workdir)
    assert len(runs) == 14 + len(stopped)
    names = Counter(r.info.run_name for r in runs)
    assert {n for n, count in names.items() if count == 2} == {r.info.run_name for r in stopped}
    assert f"Best: {best.info.run_name} (cv_mse" in whole.stdout
    # Every stopped trial is worse than the winner in full as well.
    in_full = {r.info.run_name: r.data.metrics["cv_mse"] for r in runs if "mse" in r.data.metrics}
    assert all(in_full[r.info.run_name] > best.data.metrics["cv_mse"] for r in stopped)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["eval.cv=0"], "eval.early_stop=true stops CV between folds: eval.cv must be at least 2"),
        (["backend=argo"], "eval.early_stop runs on backend=local only"),
    ],
)
def test_early_stop_refuses_what_it_cannot_do(workdir: Path, args: list[str], said: str) -> None:
    done = run_sweeper(["model=lasso", "eval.early_stop=true", *args, "-m"], cwd=workdir)
    assert done.returncode == 1
    assert said in done.stderr.strip().splitlines()[-1]
