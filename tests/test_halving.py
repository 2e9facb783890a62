"""search=halving: successive halving over the grid's configurations, decided as the rung-by-rung
algorithm decides whatever order trials finish in, each rung's trials reused, claimed and resumed
like any trial, one MLflow run per configuration."""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.linear_model import Lasso
from sklearn.model_selection import HalvingGridSearchCV, KFold

from support.by_hand import standard_recipe, training_rows
from support.mlflow_view import SweepRuns, sweeps
from support.servers import data_file, run_sweeper, start_sweeper_until
from sweeper.core.metrics import ProblemType, Ranking
from sweeper.core.outcomes import Outcome
from sweeper.core.records import Trial
from sweeper.core.settings import SearchSettings
from sweeper.search.halving import Schedule, halving
from sweeper.trial.fitting import fold_sample

CARSEATS = ["data=csv", f"data.path={data_file('carseats.csv')}", "data.target=Sales"]
# 13 configurations of three models: rungs of 13, 5 and 2 on carseats' 224 rows per fold.
MIXED = [*CARSEATS, "model=rf,gbr,lasso", "search=halving", "-m"]


# -- the schedule ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "rows", "least"),
    [(27, 5000, None), (12, 3000, None), (40, 9000, None), (27, 5000, 300), (9, 2000, 50)],
)
def test_the_schedule_is_scikit_learns(candidates: int, rows: int, least: int | None) -> None:
    """HalvingGridSearchCV's rungs on the same numbers: how many configurations each has and
    how many rows, all but the last (ours is the full resource, where a trial is a grid's)."""
    X = np.random.default_rng(0).normal(size=(rows, 2))
    y = X[:, 0]
    grid = {"constant": [float(c) for c in range(candidates)], "strategy": ["constant"]}
    search = HalvingGridSearchCV(
        DummyRegressor(),
        grid,
        factor=3,
        min_resources=least or "exhaust",
        max_resources=rows,
        cv=2,
        refit=False,
    ).fit(X, y)
    schedule = Schedule.of(candidates, SearchSettings(kind="halving", min_resources=least), rows)
    assert list(schedule.sizes) == list(search.n_candidates_)
    amounts = schedule.amounts(rows)
    assert list(amounts[:-1]) == list(search.n_resources_[:-1])
    assert amounts[-1] == rows


# -- the decisions, whatever order trials finish in -----------------------------------------


def _configurations(n: int) -> list[Trial]:
    return [
        Trial(i, f"lasso alpha={i}", "lasso", {"alpha": i}, "g", (f"model.alpha={i}",), {})
        for i in range(n)
    ]


def _rung_by_rung(losses: dict[tuple[int, int], float], sizes: tuple[int, ...]) -> list[set[int]]:
    """The synchronous algorithm, written plainly: who reaches each rung."""
    reached = [set(range(sizes[0]))]
    for rung, keep in enumerate(sizes[1:]):
        scored = sorted((losses[i, rung], i) for i in reached[-1] if math.isfinite(losses[i, rung]))
        reached.append({i for _, i in scored[:keep]})
    return reached


@settings(max_examples=300, deadline=None)
@given(
    n=st.integers(1, 30),
    factor=st.integers(2, 4),
    scores=st.lists(st.sampled_from([0.1, 0.2, 0.3, 0.5, 0.8, math.inf]), min_size=200),
    order=st.randoms(use_true_random=False),
)
def test_survivors_are_the_rung_by_rung_ones_in_any_finishing_order(
    n: int, factor: int, scores: list[float], order: random.Random
) -> None:
    """Trials finish in any order (a pool's); ties and failures (inf) included: every rung
    is reached by exactly the configurations the synchronous algorithm takes there, each is
    decided once, at the rung it stopped at, and the winner is the best at the last."""
    search = SearchSettings(kind="halving", factor=factor)
    ranking = Ranking("mse", 5)
    configurations = _configurations(n)
    halved = halving(configurations, search, ranking, rows=10_000)
    sizes = halved.schedule.sizes
    losses = {
        (i, r): scores[(i * 7 + r) % len(scores)] for i in range(n) for r in range(len(sizes))
    }
    running = halved.start()
    trained: list[set[int]] = [set() for _ in sizes]
    decided: dict[int, Outcome] = {}
    while running:
        trial = running.pop(order.randrange(len(running)))
        rung = trial.rung or 0
        trained[rung].add(trial.index)
        loss = losses[trial.index, rung]
        if math.isfinite(loss):
            outcome = Outcome.finished(trial, {"cv_mse": loss}, f"run-{trial.index}-{rung}")
        else:
            outcome = Outcome.failed(trial, "ValueError: no", f"run-{trial.index}-{rung}")
        promoted, ended = halved.settle(outcome)
        running.extend(promoted)
        for final in ended:
            assert final.trial.index not in decided, "decided twice"
            decided[final.trial.index] = final
    assert trained == _rung_by_rung(losses, sizes)
    assert sorted(decided) == list(range(n)) and halved.done
    last = len(sizes) - 1
    for index, final in decided.items():
        top = max(r for r in range(len(sizes)) if index in trained[r])
        assert final.trial.rung == top
        assert final.stopped == (final.ok and top < last)
        assert [r.amount for r in final.rungs] == [
            halved.amounts[index][r] for r in range(top + 1) if math.isfinite(losses[index, r])
        ]
    finalists = sorted(
        (losses[i, last], i) for i in trained[last] if math.isfinite(losses[i, last])
    )
    best = min(
        (o for o in decided.values() if o.ok and not o.stopped),
        key=lambda o: (o.metrics["cv_mse"], o.trial.index),
        default=None,
    )
    assert (best.trial.index if best else None) == (finalists[0][1] if finalists else None)


def test_a_rung_trial_is_the_grid_trial_at_the_last_rung_only() -> None:
    configurations = _configurations(9)
    halved = halving(configurations, SearchSettings(kind="halving"), Ranking("mse", 5), 900)
    assert halved.schedule.sizes == (9, 3, 1)
    first = halved.trial(0, 0)
    assert (first.rung, first.rows, first.partial) == (0, 100, True)
    last = halved.trial(0, 2)
    assert dataclasses.replace(last, rung=None) == configurations[0]  # the grid's own trial


def test_a_rung_is_said_with_its_resource() -> None:
    """Rows, a budget, or in full; a last rung eval.early_stop stopped too (it has no rows)."""
    [config] = _configurations(1)
    ranking = Ranking("mse", 5)
    rows = Outcome.finished(dataclasses.replace(config, rung=1, rows=1440, partial=True), {}, "r")
    assert rows.rung_reached == "1 (1,440 rows)" and rows.line(ranking).endswith(
        "(rung 1: 1,440 rows)"
    )
    budget = dataclasses.replace(
        config, rung=0, partial=True, budget="max_iter", model={"max_iter": 33}
    )
    assert Outcome.finished(budget, {}, "r").rung_reached == "0 (33 max_iter)"
    last = Outcome.finished(dataclasses.replace(config, rung=2), {}, "r", stopped=True)
    assert last.rung_reached == "2 (in full)"
    assert last.line(ranking).endswith("(rung 2: in full, stopped)")


def test_a_fold_sample_is_nested_and_stratified() -> None:
    y = np.array(["a"] * 80 + ["b"] * 15 + ["c"] * 5)
    small = fold_sample(y, 20, ProblemType.classification, seed=3)
    large = fold_sample(y, 60, ProblemType.classification, seed=3)
    assert len(small) == 20 and len(large) == 60
    assert set(small) <= set(large)
    assert Counter(y[small]) == {"a": 16, "b": 3, "c": 1}  # each class in its share
    numbers = fold_sample(np.arange(100.0), 30, ProblemType.regression, seed=3)
    assert set(numbers) <= set(fold_sample(np.arange(100.0), 50, ProblemType.regression, seed=3))


# -- a sweep, end to end ----------------------------------------------------------------------


def _sweep(workdir: Path) -> SweepRuns:
    return sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")[-1]


def _every_run(workdir: Path) -> list[Run]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    [experiment] = [e for e in client.search_experiments() if e.name == "sweeper"]
    return list(client.search_runs([experiment.experiment_id], max_results=5000))


def _rung_runs(runs: list[Run]) -> list[Run]:
    return [r for r in runs if "trial_key" in r.data.tags and r.info.status == "FINISHED"]


def test_a_halving_sweep_of_three_models(workdir: Path) -> None:
    done = run_sweeper(MIXED, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    client = MlflowClient(uri)
    sweep = _sweep(workdir)
    runs = _rung_runs(_every_run(workdir))
    # One run per configuration under the sweep's; their lower rungs nested under each.
    assert len(sweep.children) == 13
    tops = {r.info.run_id: r for r in sweep.children}
    nested = [r for r in runs if r.info.run_id not in tops]
    assert all(r.data.tags["mlflow.parentRunId"] in tops for r in nested)
    # What each rung had, and the rung-by-rung decisions over the scores MLflow holds.
    by_rung: dict[int, dict[str, float]] = {}
    amounts: dict[int, set[str]] = {}
    for run in runs:
        rows = run.data.params.get("rows", "all")
        rung = {"24": 0, "72": 1, "all": 2}[rows]
        by_rung.setdefault(rung, {})[run.info.run_name] = run.data.metrics["cv_mse"]
        amounts.setdefault(rung, set()).add(rows)
    assert {r: len(v) for r, v in by_rung.items()} == {0: 13, 1: 5, 2: 2}
    for rung, keep in ((0, 5), (1, 2)):
        ranked = sorted(by_rung[rung], key=lambda name: by_rung[rung][name])
        assert set(by_rung[rung + 1]) == set(ranked[:keep])
    winner = min(by_rung[2], key=lambda name: by_rung[2][name])
    assert f"Best: {winner} (cv_mse" in done.stdout
    assert sweep.parent.data.tags.get("best_model_uri")
    # Each configuration's run: its score at every rung reached (step = rows), rung and stop.
    for run in sweep.children:
        name = run.info.run_name
        history = client.get_metric_history(run.info.run_id, "rung_cv_mse")
        reached = [rung for rung in (0, 1, 2) if name in by_rung[rung]]
        assert [m.step for m in history] == [(24, 72, 224)[r] for r in reached]
        assert [m.value for m in history] == pytest.approx([by_rung[r][name] for r in reached])
        assert run.data.tags["halving.rung"] == str(reached[-1])
        assert run.data.tags["halving.stopped"] == str(reached[-1] < 2).lower()
    # The table and results.csv say the rung; stopped rows are never ranked above a full one.
    logged = client.download_artifacts(sweep.parent.info.run_id, "results/results.csv")
    table = list(csv.DictReader(Path(logged).read_text().splitlines()))
    assert [r["status"] for r in table] == ["FINISHED"] * 2 + ["stopped"] * 11
    assert table[0]["trial"] == winner and table[0]["rung_reached"] == "2 (in full)"
    assert {r["rung_reached"] for r in table[2:]} == {"1 (72 rows)", "0 (24 rows)"}
    assert "Stopped early: 11 of 13 below the last rung" in done.stdout
    plots = client.list_artifacts(sweep.parent.info.run_id, "plots")
    assert "plots/cv_mse_by_resource.png" in {p.path for p in plots}
    report = client.download_artifacts(sweep.parent.info.run_id, "results/report.html")
    page = Path(report).read_text()
    assert "Successive halving: the score at each rung" in page
    assert f'"name":"winner: {winner}"' in page  # its rung curve, drawn apart

    # A rung-0 score by hand: the fold's recipe fitted on all its training rows, the model on
    # the 24 of them the rung has, scored on every row the fold holds out.
    frame = pd.read_csv(data_file("carseats.csv"))
    X, y = training_rows(frame, "Sales", seed=42)
    held = []
    for number, (fit_on, out) in enumerate(KFold(5, shuffle=True, random_state=42).split(X)):
        recipe = standard_recipe(X).fit(X.iloc[fit_on])
        chosen = fit_on[fold_sample(y.to_numpy()[fit_on], 24, ProblemType.regression, number)]
        model = clone(Lasso(alpha=1.0, max_iter=10000, random_state=42))
        model.fit(recipe.transform(X.iloc[chosen]), y.iloc[chosen])
        predicted = model.predict(recipe.transform(X.iloc[out]))
        held.append(float(np.mean((y.iloc[out].to_numpy() - predicted) ** 2)))
    assert by_rung[0]["lasso alpha=1"] == pytest.approx(np.mean(held), rel=1e-9)

    # The same command again trains nothing: every rung is found finished, before any worker
    # is started (the halving's decisions replayed on the runs found).
    again = run_sweeper(MIXED, cwd=workdir)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished before, no workers" in again.stdout
    assert len(_rung_runs(_every_run(workdir))) == len(runs)
    assert f"Best: {winner} (cv_mse" in again.stdout


def test_a_grid_sweeps_trial_is_the_last_rung(workdir: Path) -> None:
    grid = run_sweeper([*CARSEATS, "model=lasso", "-m"], cwd=workdir)
    assert grid.returncode == 0, grid.stderr[-3000:]
    finished = {r.info.run_name: r.info.run_id for r in _sweep(workdir).children}
    done = run_sweeper(MIXED, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    halving_sweep = _sweep(workdir)
    finalists = [r for r in halving_sweep.children if r.data.tags.get("halving.stopped") == "false"]
    reused = [r for r in _rung_runs(_every_run(workdir)) if "rows" not in r.data.params]
    # The last rung's lasso trials are the grid sweep's own runs, not trained again.
    assert {r.info.run_name: r.info.run_id for r in reused} == finished
    [first] = [line for line in done.stdout.splitlines() if line.startswith("│    1 │")]
    assert "lasso alpha=0.01" in first and "reused" in first
    # Still one run per configuration in this sweep: a finalist's lower rungs, under its
    # highest one here.
    assert len(halving_sweep.children) == 13
    assert {r.info.run_name for r in finalists} == {"lasso alpha=0.01", "lasso alpha=0.1"}


def test_budget_is_the_models_own_parameter(workdir: Path) -> None:
    done = run_sweeper(
        [*CARSEATS, "model=gbr", "search=halving", "search.resource=budget", "-m"], cwd=workdir
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = _rung_runs(_every_run(workdir))
    # Four configurations: two rungs, max_iter 33 then the model's own 100.
    iterations = Counter(r.data.params["model.max_iter"] for r in runs)
    assert iterations == {"33": 4, "100": 2}
    assert all("rows" not in r.data.params for r in runs)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["model=lasso", "search=halving", "search.resource=budget"],
            "model lasso has no `budget:` parameter for search.resource=budget",
        ),
        (
            ["model=rf", "search=halving", "search.resource=budget"],
            "model rf: the grid varies n_estimators, the budget search=halving gives out",
        ),
        (["model=lasso", "search=halving", "eval.cv=0"], "eval.cv must be at least 2"),
        (
            ["model=lasso", "search=halving", "search.factor=1"],
            "search.factor=1 must be at least 2",
        ),
        (
            [
                "hydra/sweeper=optuna",
                "model=lasso",
                "model.alpha=interval(0.01,1)",
                "hydra.sweeper.n_trials=2",
                "search=halving",
            ],
            "search=halving halves a grid; hydra/sweeper=optuna chooses its own trials",
        ),
    ],
)
def test_halving_refuses_what_it_cannot_do(workdir: Path, args: list[str], said: str) -> None:
    done = run_sweeper([*args, "-m"], cwd=workdir)
    assert done.returncode == 1
    assert said in done.stderr.strip().splitlines()[-1]
    assert not (workdir / "multirun").exists()


# 27 forests on carseats: four rungs (27, 9, 3, 1), long enough to stop in the middle.
FORESTS = [
    *CARSEATS,
    "model=rf",
    "model.n_estimators=60",
    "model.max_depth=null",
    "model.min_samples_leaf=range(1,28)",
    "search=halving",
    "-m",
]


def test_killed_mid_rung_then_run_again_trains_nothing_twice(workdir: Path) -> None:
    # Once rung 0 is deciding: rung 1's trials are starting.
    sweep = start_sweeper_until(FORESTS, workdir, "stopped)", stderr=subprocess.STDOUT)
    os.killpg(sweep.pid, signal.SIGKILL)  # power loss: nothing gets to clean up
    sweep.wait()
    before = Counter(r.data.tags["trial_key"] for r in _rung_runs(_every_run(workdir)))
    assert before and max(before.values()) == 1
    done = run_sweeper(FORESTS, cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    after = Counter(r.data.tags["trial_key"] for r in _rung_runs(_every_run(workdir)))
    assert max(after.values()) == 1, "a rung's trial was trained twice"
    assert set(before) < set(after)
    assert len(after) == 27 + 9 + 3 + 1


def test_two_halving_sweeps_at_once_train_each_rung_once(workdir: Path) -> None:
    """The same halving started twice together: claims per rung share the work, both decide
    the same, and no rung's trial is FINISHED twice."""
    both = [
        subprocess.Popen(
            [sys.executable, "-m", "sweeper", *FORESTS],
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [sweep.communicate(timeout=600)[0] for sweep in both]
    assert [sweep.returncode for sweep in both] == [0, 0], outputs
    keys = Counter(r.data.tags["trial_key"] for r in _rung_runs(_every_run(workdir)))
    assert len(keys) == 27 + 9 + 3 + 1 and max(keys.values()) == 1
    best = [line for out in outputs for line in out.splitlines() if line.startswith("Best: ")]
    assert len(best) == 2 and best[0] == best[1]
