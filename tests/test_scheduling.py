"""How the local executor orders trials: longest first, by a work estimate of the model config."""

from __future__ import annotations

from sweeper.core.cost import work_estimate


def test_more_and_deeper_trees_are_estimated_to_take_longer() -> None:
    rf = {"_target_": "sklearn.ensemble.RandomForestRegressor", "n_estimators": 20}
    by_depth = [work_estimate({**rf, "max_depth": d}) for d in (4, 6, 8, 10)]
    assert by_depth == sorted(by_depth) and len(set(by_depth)) == 4
    assert work_estimate({**rf, "max_depth": None}) > work_estimate({**rf, "max_depth": 10})
    assert work_estimate({**rf, "n_estimators": 200, "max_depth": 4}) > by_depth[-1]
    # Bigger leaves stop trees earlier.
    assert work_estimate({**rf, "max_depth": 8, "min_samples_leaf": 5}) < by_depth[2]


def test_configs_without_those_knobs_count_the_same() -> None:
    lasso = {"_target_": "sklearn.linear_model.Lasso", "alpha": 0.1}
    assert work_estimate(lasso) == work_estimate({**lasso, "alpha": 100})
    assert work_estimate(lasso) < work_estimate({"n_estimators": 20, "max_depth": 4})
