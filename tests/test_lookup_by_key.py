"""Trials looked up by key through the store's index (tracking.by_key), on a real SQLite store in
this process: the same answers as MLflow's own search, and the queries read through the index,
so that a lookup costs the same however many runs the experiment holds."""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mlflow import MlflowClient
from sqlalchemy import event
from sqlalchemy.engine import Engine

from sweeper.core.records import Status, TrialRecord, TrialScore, now_ms, stopped_key
from sweeper.tracking.by_key import INDEX
from sweeper.tracking.tracker import FinishedRun, Tracker

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("by_key") / "mlflow.db"


@pytest.fixture(scope="module")
def tracker(database: Path) -> Tracker:
    uri = f"sqlite:///{database}"
    MlflowClient(uri).search_experiments()  # a store MLflow made, as an older sweeper left it
    return Tracker(uri, "by-key")


def record(key: str, split: str = "s") -> TrialRecord:
    return TrialRecord(name=f"lasso {key}", params={"model": "lasso"}, key=key, split_key=split)


def score(mse: float, folds: tuple[float, ...] = (), stopped: bool = False) -> TrialScore:
    return TrialScore(
        {"mse": mse, "cv_mse": sum(folds) / len(folds) if folds else mse},
        now_ms(),
        now_ms(),
        {"mse": folds} if folds else {},
        stopped,
    )


def searched(tracker: Tracker, split: str, keys: list[str]) -> dict[str, FinishedRun]:
    """The same lookup through MLflow's client (as through a tracking server)."""
    by_key, tracker.by_key = tracker.by_key, None
    try:
        return tracker.finished_trials(split, keys)
    finally:
        tracker.by_key = by_key


def test_finished_trials_by_key_are_what_mlflows_search_finds(tracker: Tracker) -> None:
    sweep = tracker.start_sweep("found", {})
    tracker.log_trial(sweep, "found", record("plain"), score(3.0, (2.0, 4.0)))
    tracker.log_trial(sweep, "found", record("stopped"), score(9.0, (9.0,), stopped=True))
    tracker.log_trial(sweep, "found", record("nan"), score(math.nan))
    first = tracker.log_trial(sweep, "found", record("twice"), score(1.0))
    tracker.log_trial(sweep, "found", record("twice"), score(1.5))
    tracker.log_trial(sweep, "found", record("failed"), error=ValueError("no"))
    deleted = tracker.log_trial(sweep, "found", record("deleted"), score(5.0))
    tracker.drop_run(deleted)
    running = tracker.open_trial(sweep, "found", record("running"), now_ms())
    assert tracker.get_run(running).info.status == Status.RUNNING
    elsewhere = Tracker(tracker.tracking_uri, "another experiment")
    elsewhere.log_trial(elsewhere.start_sweep("x", {}), "x", record("elsewhere"), score(7.0))
    tracker.log_trial(sweep, "found", record("unasked"), score(8.0))

    asked = [
        "plain",
        stopped_key("stopped"),
        "nan",
        "twice",
        "failed",
        "deleted",
        "running",
        "elsewhere",
        "never",
    ]
    found = tracker.finished_trials("s", asked)
    assert sorted(found) == sorted([stopped_key("stopped"), "nan", "plain", "twice"])
    assert found["twice"].run_id == first  # the first logged, whichever a search lists first
    assert found["plain"].folds == {"mse": (2.0, 4.0)} and found["plain"].metrics["mse"] == 3.0
    assert found[stopped_key("stopped")].stopped and not found["plain"].stopped
    assert math.isnan(found["nan"].metrics["mse"])
    through_mlflow = searched(tracker, "s", asked)
    assert sorted(through_mlflow) == sorted(found)
    for key, run in found.items():
        other = through_mlflow[key]
        assert key == "twice" or run.run_id == other.run_id
        assert run.folds == other.folds and run.stopped == other.stopped
        assert run.metrics.keys() == other.metrics.keys()
        assert all(
            (math.isnan(v) and math.isnan(other.metrics[m])) or v == other.metrics[m]
            for m, v in run.metrics.items()
        )


@pytest.fixture
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement this process sends to a SQLite store, with its parameters."""
    sent: list[tuple[str, Any]] = []

    def heard(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", heard)
    yield sent
    event.remove(Engine, "before_cursor_execute", heard)


def plans(database: Path, sent: list[tuple[str, Any]]) -> list[str]:
    """SQLite's plan of each statement that reads tags by trial key: how it finds the rows."""
    found = []
    with sqlite3.connect(database) as connection:
        for statement, parameters in sent:
            if "trial_key" not in str(parameters) and "'trial_key'" not in statement:
                continue
            rows = connection.execute(f"EXPLAIN QUERY PLAN {statement}", parameters).fetchall()
            found.append(" / ".join(row[-1] for row in rows))
    return found


def test_a_claims_lookup_and_the_reuse_lookup_read_through_the_index(
    tracker: Tracker, database: Path, statements: list[tuple[str, Any]]
) -> None:
    with sqlite3.connect(database) as connection:
        indexes = connection.execute(
            "SELECT tbl_name, sql FROM sqlite_master WHERE type = 'index' AND name = ?", (INDEX,)
        ).fetchall()
    assert indexes == [("tags", f"CREATE INDEX {INDEX} ON tags (value) WHERE key = 'trial_key'")]
    sweep = tracker.start_sweep("indexed", {})
    for n in range(20):
        tracker.log_trial(sweep, "indexed", record(f"indexed-{n}"), score(float(n)))
    statements.clear()
    assert len(tracker.trial_claims("indexed-3")) == 1  # MLflow's own search
    assert len(tracker.finished_trials("s", ["indexed-4", "indexed-5"])) == 2
    read = plans(database, statements)
    assert len(read) == 2, statements
    assert all(
        f"SEARCH t USING INDEX {INDEX} (value=?)" in plan
        or f"SEARCH tags USING INDEX {INDEX} (value=?)" in plan
        for plan in read
    ), read
