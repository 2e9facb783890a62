"""How a sweep's run ends (sweeper.conclusion), in this process on a real SQLite store: the
trials are fitted and logged through the one trial lifecycle first, as a worker or a pod does."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import mlflow.sklearn
import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from steps.preprocess import preprocess
from support.in_process import batch, hydra_configs, local_settings
from sweeper.conclusion.conclude import conclude_sweep, log_best, log_best_early
from sweeper.core.metrics import METRICS
from sweeper.core.outcomes import SweepResult
from sweeper.core.records import Plan, Status
from sweeper.planning.plan import build_plan
from sweeper.tracking.tracker import Tracker
from sweeper.trial.fitting import read_raw_test, score
from sweeper.trial.lifecycle import SweepRef, run_trial

# In this process, but e2e: logging a model, MLflow runs `git` for the source's version.


@pytest.fixture
def planned(tmp_path: Path) -> Plan:
    settings = local_settings(tmp_path)
    with hydra_configs():
        trials = [["model=lasso", f"model.alpha={a}", *settings] for a in (0.1, 1, -1)]
        return build_plan(batch(trials).jobs())


def ran(plan: Plan, tracker: Tracker) -> SweepResult:
    """The plan's trials fitted and logged under a new sweep run."""
    [group] = plan.groups
    settings = plan.settings
    split = preprocess(
        group.data, group.preprocess, group.seed, settings.storage.root, settings.eval.cv
    )
    parent = tracker.start_sweep(plan.sweep_id, plan.sweep_params)
    result = SweepResult(plan.with_parent(parent), parent)
    result.splits[group.id] = split
    sweep = SweepRef.of(result.plan)  # the sweep's settings: eval.cv=5, its folds
    result.outcomes = [run_trial(tracker, sweep, trial, split) for trial in plan.trials]
    return result


def test_a_finished_sweep_gets_its_table_best_model_and_summary(planned: Plan) -> None:
    tracker = Tracker(planned.settings.mlflow.tracking_uri, planned.settings.mlflow.experiment)
    result = ran(planned, tracker)
    assert [o.status for o in result.outcomes] == [Status.FINISHED] * 2 + [Status.FAILED]

    end = conclude_sweep(tracker, result, Status.FAILED)

    assert end.notes == () and end.experiment_id == tracker.experiment_id
    client = MlflowClient(tracker.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "FAILED"
    best = min(result.outcomes[:2], key=lambda o: o.metrics["cv_mse"])
    assert parent.data.metrics == {
        "n_trials": 3,
        "n_failed": 1,
        "n_reused": 0,
        "best_cv_mse": best.metrics["cv_mse"],
        **{f"best_{m}": best.metrics[m] for m in METRICS},
    }
    # The best trial's model, refit on the same rows, scores what the trial scored.
    model_uri = parent.data.tags["best_model_uri"]
    assert client.get_run(best.run_id or "").data.tags["best_model_uri"] == model_uri
    X_test, y_test = read_raw_test(result.splits[planned.groups[0].id].url)
    predicted = mlflow.sklearn.load_model(model_uri).predict(X_test)
    assert score(y_test, predicted)["mse"] == pytest.approx(best.mse)
    # The ranked table, failures last.
    local = client.download_artifacts(result.parent_run_id, "results/results.csv")
    rows = list(csv.DictReader(Path(local).read_text().splitlines()))
    assert [r["trial"] for r in rows][-1] == "lasso alpha=-1"
    assert float(rows[0]["mse"]) == pytest.approx(best.mse)
    assert {r["status"] for r in rows} == {"FINISHED", "FAILED"}


@pytest.mark.unit
def test_a_killed_sweep_ends_at_once_with_its_unfinished_trials(planned: Plan) -> None:
    tracker = Tracker(planned.settings.mlflow.tracking_uri, planned.settings.mlflow.experiment)
    result = ran(planned, tracker)
    # A trial's run caught mid-write by the stop: created, never ended.
    caught = tracker.client.create_run(
        tracker.experiment_id, tags={"mlflow.parentRunId": result.parent_run_id}
    )

    conclude_sweep(tracker, result, Status.KILLED)

    client = MlflowClient(tracker.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    assert parent.info.status == "KILLED"
    assert client.get_run(caught.info.run_id).info.status == "KILLED"
    assert "best_model_uri" not in parent.data.tags  # no extras for an interrupted sweep
    assert client.list_artifacts(result.parent_run_id) == []
    assert parent.data.metrics["n_trials"] == 3


def test_a_model_logged_early_for_a_trial_a_later_one_beat_is_withdrawn(planned: Plan) -> None:
    """A worker left without trials logs the best so far's model while the others finish; when
    a later trial wins, the end withdraws that model and logs the winner's."""
    tracker = Tracker(planned.settings.mlflow.tracking_uri, planned.settings.mlflow.experiment)
    result = ran(planned, tracker)
    best = result.best
    assert best is not None
    [beaten] = [o for o in result.outcomes if o.ok and o.run_id != best.run_id]
    so_far = dataclasses.replace(result, outcomes=[beaten])  # the winner had not finished yet
    assert log_best_early(tracker, so_far) == beaten.run_id
    client = MlflowClient(tracker.tracking_uri)
    early_uri = client.get_run(beaten.run_id or "").data.tags["best_model_uri"]

    assert log_best(tracker, result, None, early=beaten.run_id) == []

    assert "best_model_uri" not in client.get_run(beaten.run_id or "").data.tags
    with pytest.raises(MlflowException):
        client.get_logged_model(early_uri.removeprefix("models:/"))
    winner_uri = client.get_run(best.run_id or "").data.tags["best_model_uri"]
    assert client.get_run(result.parent_run_id).data.tags["best_model_uri"] == winner_uri
    assert winner_uri != early_uri


def test_results_html_shows_the_best_rows_of_a_large_sweep_and_says_so(
    planned: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweeper.conclusion import artifacts
    from sweeper.core.outcomes import Outcome

    monkeypatch.setattr(artifacts, "HTML_ROWS", 2)  # 1,000 in a sweep
    result = SweepResult(planned, "parent")
    result.outcomes = [  # the last trial best (the lowest cv_mse), the first worst
        Outcome.finished(t, {"cv_mse": 10.0 - t.index, "mse": 1.0}, f"run-{t.index}")
        for t in planned.trials
    ]
    folder = tmp_path / "tables"
    folder.mkdir()
    artifacts.write_tables(result, folder)
    html = (folder / "results.html").read_text()
    names = [t.name for t in planned.trials]
    assert names[2] in html and names[1] in html and names[0] not in html
    assert "The top 2 of 3: results.csv has every trial." in html
    with (folder / "results.csv").open() as table:
        assert [row["trial"] for row in csv.DictReader(table)] == names[::-1]


def test_the_best_alone_is_what_logging_the_best_model_is_sent(planned: Plan) -> None:
    """SweepResult.of_best: a worker that logs the best model gets its outcome alone, and the
    same answer from it (not the other outcomes of a 100,000-trial sweep)."""
    from sweeper.core.outcomes import Outcome

    result = SweepResult(planned, "parent")
    result.outcomes = [
        Outcome.finished(t, {"cv_mse": 5.0 + abs(t.index - 1), "mse": 1.0}, f"run-{t.index}")
        for t in planned.trials
    ]
    alone = result.of_best()
    assert result.best is not None and result.best.trial.index == 1
    assert alone.best == result.best and alone.outcomes == [result.best]
    assert alone.plan.trials == (result.best.trial,) and len(result.plan.trials) == 3
    assert alone.parent_run_id == "parent" and alone.plan.settings == planned.settings
    nothing = SweepResult(planned, "parent", [Outcome.failed(planned.trials[0], "boom", None)])
    assert nothing.of_best().outcomes == [] and nothing.of_best().best is None
