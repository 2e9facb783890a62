"""The sweep's HTML report (sweeper.conclusion.report_page) at the size the tool is for: a result
of 100,000 trials over two models, written and opened in headless Chromium; and the importance
it shows, on trials whose score depends on one setting only."""

from __future__ import annotations

import dataclasses
import math
import random
import re
from pathlib import Path

import pandas as pd
import pytest

from support.browser import render_file
from support.in_process import batch, hydra_configs, local_settings
from sweeper.conclusion.artifacts import results_table
from sweeper.conclusion.report_page import (
    BEST_ALWAYS,
    PARALLEL_LINES,
    POINTS_PER_MODEL,
    TOP_ROWS,
    sample,
    setting_importance,
    write_report,
)
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.records import Trial
from sweeper.planning.plan import build_plan

TRIALS = 100_000


def many_trials(tmp_path: Path, n: int) -> SweepResult:
    """n trials, lasso and rf alternating, scored by a known function of their settings plus
    noise; every 97th fails."""
    settings = local_settings(tmp_path)
    with hydra_configs():
        plan = build_plan(
            batch(
                [
                    ["model=lasso", "model.alpha=0.1", *settings],
                    ["model=rf", "model.n_estimators=10", "model.max_depth=3", *settings],
                ]
            ).jobs()
        )
    lasso, rf = plan.trials
    draw = random.Random(0)
    trials: list[Trial] = []
    for i in range(n):
        if i % 2:
            alpha = 10 ** draw.uniform(-4, 1)
            model, name = {**lasso.model, "alpha": alpha}, f"lasso alpha={alpha:.6g} #{i}"
            trials.append(dataclasses.replace(lasso, index=i, name=name, model=model))
        else:
            n_estimators, depth = draw.choice([10, 50, 100, 200]), draw.choice([None, 2, 4, 8])
            model = {**rf.model, "n_estimators": n_estimators, "max_depth": depth}
            name = f"rf n_estimators={n_estimators} max_depth={depth} #{i}"
            trials.append(dataclasses.replace(rf, index=i, name=name, model=model))
    result = SweepResult(dataclasses.replace(plan, trials=trials), "parent")

    def cv_mse(trial: Trial) -> float:
        if trial.model_name == "lasso":
            return 4 + 0.3 * (math.log10(trial.model["alpha"]) + 2) ** 2 + draw.gauss(0, 0.1)
        depth = trial.model["max_depth"]
        return (
            3.5 + 5 / trial.model["n_estimators"] + (2 / depth if depth else 0) + draw.gauss(0, 0.2)
        )

    result.outcomes = [
        Outcome.failed(t, "ValueError: boom", None)
        if t.index % 97 == 0
        else Outcome.finished(t, {"cv_mse": (s := cv_mse(t)), "mse": s + 0.1}, f"run-{t.index}")
        for t in trials
    ]
    return result


def test_the_report_of_100000_trials_opens_in_chromium_sampled_and_with_the_winner_marked(
    tmp_path: Path,
) -> None:
    result = many_trials(tmp_path, TRIALS)
    page = write_report(result, results_table(result), tmp_path / "report.html")
    finished = [o for o in result.outcomes if o.ok]
    winner = min(finished, key=lambda o: o.metrics["cv_mse"])
    rendered = render_file(page, tmp_path)
    assert rendered.errors == []
    dom = rendered.dom
    assert f"Sweep {result.plan.sweep_id}: 100,000 trials" in dom
    assert f"{len(finished):,} finished, {TRIALS - len(finished):,} failed." in dom
    assert f"★ {winner.trial.name}</span> with cv_mse {winner.metrics['cv_mse']:.6g}" in dom
    # The table: the best TOP_ROWS, the winner first and marked.
    rows = re.findall(r"<tr[^>]*><td>(\d+)</td><td>([^<]+)</td>", dom)
    assert [int(rank) for rank, _ in rows] == list(range(1, TOP_ROWS + 1))
    ranked = sorted(finished, key=lambda o: o.metrics["cv_mse"])
    assert [name for _, name in rows] == [o.trial.name for o in ranked[:TOP_ROWS]]
    assert f'<tr class="winner-row"><td>1</td><td>{winner.trial.name}</td>' in dom
    # Drawn: parallel coordinates, then per model its settings and, for rf's two, their
    # importance (lasso varies alpha alone: nothing to rank).
    assert dom.count('class="plotly-graph-div') == 4
    assert "rf: which settings matter" in dom and "lasso: which settings matter" not in dom
    assert dom.count('class="parcoords"') == 1
    assert "log10(alpha)" in dom and "n_estimators" in dom and "max_depth" in dom
    # Sampled, and said so: the best and an even sample over the rest.
    kept = min(BEST_ALWAYS, PARALLEL_LINES // 2)
    assert f"{PARALLEL_LINES:,} of {len(finished):,} trials drawn: the best {kept:,}" in dom
    per_model = {m: sum(o.trial.model_name == m for o in finished) for m in ("rf", "lasso")}
    for count in per_model.values():
        best = min(BEST_ALWAYS, POINTS_PER_MODEL // 2)
        assert f"{POINTS_PER_MODEL:,} of {count:,} trials drawn: the best {best:,}" in dom
    assert f"winner: {winner.trial.name}" in dom


@pytest.mark.unit
def test_importance_goes_to_the_setting_the_score_depends_on() -> None:
    draw = random.Random(1)
    rows = pd.DataFrame(
        [
            {
                "alpha": (alpha := 10 ** draw.uniform(-3, 2)),
                "fit_intercept": draw.choice([True, False]),
                "selection": draw.choice(["cyclic", "random"]),
                "cv_mse": (math.log10(alpha) - 0.5) ** 2 + draw.gauss(0, 0.05),
            }
            for _ in range(400)
        ]
    )
    found = setting_importance(rows, ["alpha", "fit_intercept", "selection"], "cv_mse")
    assert found is not None
    shares, fit = found
    assert sum(shares.values()) == pytest.approx(1.0)
    assert shares["alpha"] > 0.9
    assert fit.trials == 400 and fit.r2 > 0.9
    rows["cv_mse"] = 1.0  # every trial scored the same: nothing to attribute
    assert setting_importance(rows, ["alpha", "fit_intercept", "selection"], "cv_mse") is None


def test_a_sweep_where_nothing_finished_gets_a_report_that_says_so(tmp_path: Path) -> None:
    result = many_trials(tmp_path, 4)
    result.outcomes = [Outcome.failed(o.trial, "ValueError: boom", None) for o in result.outcomes]
    page = write_report(result, results_table(result), tmp_path / "report.html")
    rendered = render_file(page, tmp_path)
    assert rendered.errors == []
    assert "No trial finished: there is no winner." in rendered.dom
    assert "4 failed." in rendered.dom
    assert 'class="plotly-graph-div' not in rendered.dom  # nothing scored, nothing drawn
    empty = SweepResult(result.plan, "parent")  # read back with no rows at all
    page = write_report(empty, results_table(empty), tmp_path / "empty.html")
    assert "No trial finished" in page.read_text()


def test_list_settings_infinite_scores_and_early_stops_leave_the_report_whole(
    tmp_path: Path,
) -> None:
    """A setting swept as lists (MLPRegressor's hidden_layer_sizes), a trial whose score
    overflowed to inf, and a grid trial eval.early_stop stopped (no rungs)."""
    result = many_trials(tmp_path, 40)
    listed = {
        t.index: dataclasses.replace(t, model={**t.model, "max_depth": [t.index % 3 + 1, 2]})
        for t in result.plan.trials
        if t.model_name == "rf"
    }
    result.plan = dataclasses.replace(
        result.plan, trials=tuple(listed.get(t.index, t) for t in result.plan.trials)
    )
    outcomes = [
        dataclasses.replace(o, trial=listed.get(o.trial.index, o.trial)) for o in result.outcomes
    ]
    diverged, stopped = outcomes[1], outcomes[3]
    outcomes[1] = dataclasses.replace(diverged, metrics={**diverged.metrics, "cv_mse": math.inf})
    outcomes[3] = dataclasses.replace(stopped, stopped=True)
    result.outcomes = outcomes
    page = write_report(result, results_table(result), tmp_path / "report.html")
    rendered = render_file(page, tmp_path)
    assert rendered.errors == []
    assert "[1, 2]" in rendered.dom and "[3, 2]" in rendered.dom  # categories of the list values
    assert "Successive halving" not in rendered.dom  # an early stop is no rung
    assert rendered.dom.count('class="plotly-graph-div') == 4  # lasso's one setting: no importance


@pytest.mark.unit
def test_a_sample_keeps_the_best_an_even_spread_and_the_winner_wherever_it_ranks() -> None:
    rows = pd.DataFrame({"trial": [f"t{i}" for i in range(5_000)], "score": range(5_000)})
    drawn = sample(rows, 2_000, winner="t4321")
    assert len(drawn) == 2_000 and "t4321" in set(drawn["trial"])
    kept = min(BEST_ALWAYS, 1_000)
    assert list(drawn["trial"][:kept]) == [f"t{i}" for i in range(kept)]
    spread = drawn["score"].iloc[kept:-1]  # the winner's row last
    assert spread.is_monotonic_increasing and spread.min() == kept and spread.max() > 4_990
    assert sample(rows, 10_000) is rows  # small enough: all of it
