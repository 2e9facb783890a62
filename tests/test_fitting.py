"""Fitting and scoring, in this process: a trial's CV and test scores are scikit-learn's own,
computed here by hand on the split the preprocess step stored from a real table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate

from steps.preprocess import preprocess
from support.servers import data_file, preprocess_recipe
from sweeper.core.records import Trial
from sweeper.trial import fitting

pytestmark = pytest.mark.unit


def carseats(target: str, root: Path) -> str:
    data = {
        "name": "csv",
        "path": str(data_file("carseats.csv")),
        "target": target,
        "drop": [],
        "test_size": 0.3,
        "task": "auto",
    }
    return preprocess(data, preprocess_recipe("standard"), seed=7, storage_root=str(root)).url


@pytest.fixture(scope="module")
def sales(tmp_path_factory: pytest.TempPathFactory) -> str:
    return carseats("Sales", tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> str:
    return carseats("ShelveLoc", tmp_path_factory.mktemp("store"))


def test_a_regression_trial_scores_as_scikit_learn_does(sales: str) -> None:
    model = {"_target_": "sklearn.linear_model.Lasso", "alpha": 0.05}
    split = fitting.load_split(sales)
    score, fitted = fitting.fit_and_score(model, split, cv=5, seed=7)

    by_hand = cross_validate(
        Lasso(alpha=0.05),
        split.X_train,
        split.y_train,
        cv=KFold(5, shuffle=True, random_state=7),
        scoring=("neg_mean_squared_error", "neg_mean_absolute_error"),
    )
    folds_mse = -by_hand["test_neg_mean_squared_error"]
    assert score.metrics["cv_mse"] == pytest.approx(folds_mse.mean(), rel=1e-12)
    assert score.metrics["cv_mse_std"] == pytest.approx(folds_mse.std(), rel=1e-12)
    assert score.metrics["cv_mae"] == pytest.approx(
        -by_hand["test_neg_mean_absolute_error"].mean(), rel=1e-12
    )

    predicted = Lasso(alpha=0.05).fit(split.X_train, split.y_train).predict(split.X_test)
    assert score.metrics["mse"] == pytest.approx(mean_squared_error(split.y_test, predicted))
    assert score.metrics["rmse"] == pytest.approx(np.sqrt(score.metrics["mse"]))
    assert score.metrics["mae"] == pytest.approx(mean_absolute_error(split.y_test, predicted))
    # The model handed back is the one fitted on every training row, not a fold's.
    assert np.allclose(fitted.predict(split.X_test), predicted)
    assert score.metrics["fit_seconds"] >= 0 and score.ended_ms >= score.started_ms


def test_every_trial_of_a_split_gets_the_same_folds_and_cv0_none(sales: str) -> None:
    split = fitting.load_split(sales)
    first = split.folds(5, 7)
    assert split.folds(5, 7) is first  # cut once, kept with the split
    again = fitting.Split.read(sales).folds(5, 7)  # read and cut anew: the same rows
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    held_out = np.concatenate([held for _, held in first])
    assert sorted(held_out) == list(range(len(split.y_train)))
    other_seed = split.folds(5, 8)
    assert not np.array_equal(first[0][1], other_seed[0][1])

    ridge = {"_target_": "sklearn.linear_model.Ridge"}
    score, _ = fitting.fit_and_score(ridge, split, cv=0)
    assert not any(name.startswith("cv_") for name in score.metrics)


def test_a_classification_trial_is_stratified_and_scored_on_its_labels(shelf: str) -> None:
    model = {"_target_": "sklearn.linear_model.LogisticRegression", "C": 0.5, "max_iter": 500}
    split = fitting.load_split(shelf)
    score, fitted = fitting.fit_and_score(model, split, cv=4, seed=7)
    assert split.task == "classification" and set(split.y_test) == {"Bad", "Good", "Medium"}

    folds = StratifiedKFold(4, shuffle=True, random_state=7)
    by_hand = cross_validate(
        LogisticRegression(C=0.5, max_iter=500),
        split.X_train,
        split.y_train,
        cv=folds,
        scoring=("accuracy", "neg_log_loss"),
    )
    assert score.metrics["cv_accuracy"] == pytest.approx(by_hand["test_accuracy"].mean())
    assert score.metrics["cv_log_loss"] == pytest.approx(-by_hand["test_neg_log_loss"].mean())

    predicted = fitted.predict(split.X_test)
    assert set(predicted) <= {"Bad", "Good", "Medium"}
    assert score.metrics["accuracy"] == pytest.approx(accuracy_score(split.y_test, predicted))
    assert score.metrics["f1_macro"] == pytest.approx(
        f1_score(split.y_test, predicted, average="macro")
    )
    assert 0.5 < score.metrics["roc_auc"] <= 1.0


def test_folds_need_rows_and_classes_enough(shelf: str, sales: str) -> None:
    rows = len(fitting.load_split(sales).y_train)
    with pytest.raises(ValueError, match=f"eval.cv={rows + 1} needs at least {rows + 1} training"):
        fitting.load_split(sales).folds(rows + 1, 7)
    smallest = int(np.unique(fitting.load_split(shelf).y_train, return_counts=True)[1].min())
    with pytest.raises(ValueError, match=f"the smallest class has {smallest}"):
        fitting.load_split(shelf).folds(smallest + 1, 7)


def test_a_score_that_is_not_a_number_fails_the_trial() -> None:
    assert fitting.finite({"mse": 1.5}) == {"mse": 1.5}
    with pytest.raises(ValueError, match=r"mse=inf, r2=nan: the model's predictions cannot"):
        fitting.finite({"mse": float("inf"), "mae": 2.0, "r2": float("nan")})
    exact = fitting.score([1.0, 2.0, 3.0], [1.0, 2.0, 5.0])
    assert exact == pytest.approx({"mse": 4 / 3, "rmse": np.sqrt(4 / 3), "mae": 2 / 3, "r2": -1.0})


def test_a_model_config_is_built_as_written_and_checked_before_a_fit() -> None:
    built = fitting.build_estimator({"_target_": "sklearn.linear_model.Lasso", "alpha": 0.3})
    assert isinstance(built, Lasso) and built.alpha == 0.3
    nested = fitting.build_estimator(
        {
            "_target_": "sklearn.ensemble.BaggingRegressor",
            "estimator": {"_target_": "sklearn.tree.DecisionTreeRegressor", "max_depth": 2},
            "n_estimators": 3,
        }
    )
    assert nested.estimator.max_depth == 2 and nested.n_estimators == 3


def test_model_values_scikit_learn_refuses_are_found_without_a_fit() -> None:
    def trial(index: int, model: dict[str, object]) -> Trial:
        return Trial(index, f"t{index}", "lasso", model, "g", (), {})

    lasso = "sklearn.linear_model.Lasso"
    errors = fitting.model_errors(
        [
            trial(0, {"_target_": lasso, "alpha": 1.0}),
            trial(1, {"_target_": lasso, "alpha": -1}),
            trial(2, {"_target_": lasso, "alpha": -1}),  # the same values: said once
            trial(3, {"_target_": lasso, "nonsense": 2}),
        ]
    )
    assert len(errors) == 2
    assert errors[0].startswith("trial 't1': InvalidParameterError: The 'alpha' parameter of Lasso")
    assert errors[1].startswith("trial 't3': TypeError:") and "nonsense" in errors[1]
