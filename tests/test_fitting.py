"""Fitting and scoring, in this process: a trial's CV and test scores are scikit-learn's own,
computed here by hand from a real table (with blanks in number and text columns) and compared
with what the trial made of the split the preprocess step stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import Lasso, LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, mean_squared_error
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import Pipeline

from steps.preprocess import preprocess
from support.by_hand import standard_recipe, training_rows
from support.servers import data_file, preprocess_recipe
from sweeper.core.records import Trial
from sweeper.errors import DataError
from sweeper.trial import fitting

pytestmark = pytest.mark.unit

SEED = 7
BLANKS = ("Income", "Advertising", "Price", "ShelveLoc", "Urban")  # integer and text columns


@pytest.fixture(scope="module")
def blanks_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """carseats.csv with 30 blanks in each of BLANKS, at random rows."""
    table = pd.read_csv(data_file("carseats.csv"))
    rng = np.random.default_rng(3)
    for column in BLANKS:
        table.loc[rng.choice(len(table), 30, replace=False), column] = None
    path = tmp_path_factory.mktemp("data") / "carseats_blanks.csv"
    table.to_csv(path, index=False)
    return path


def stored(path: Path, target: str, root: Path, cv: int) -> str:
    data = {"name": "csv", "path": str(path), "target": target, "drop": [], "test_size": 0.3}
    recipe = preprocess_recipe("standard")
    return preprocess(data, recipe, seed=SEED, storage_root=str(root), cv=cv).url


def by_hand(path: Path, target: str) -> tuple[pd.DataFrame, pd.Series, ColumnTransformer]:
    X_train, y_train = training_rows(pd.read_csv(path), target, SEED)
    return X_train, y_train, standard_recipe(X_train)


@pytest.fixture(scope="module")
def sales(tmp_path_factory: pytest.TempPathFactory, blanks_csv: Path) -> str:
    return stored(blanks_csv, "Sales", tmp_path_factory.mktemp("store"), cv=5)


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory, blanks_csv: Path) -> str:
    return stored(blanks_csv, "US", tmp_path_factory.mktemp("store"), cv=4)


@pytest.mark.parametrize(
    ("model", "estimator"),
    [
        ({"_target_": "sklearn.linear_model.Lasso", "alpha": 0.05}, Lasso(alpha=0.05)),
        # k nearest neighbours live on the scaler: a leak through it would show most here
        ({"_target_": "sklearn.neighbors.KNeighborsRegressor"}, KNeighborsRegressor()),
    ],
)
def test_cv_equals_cross_validating_the_whole_pipeline(
    sales: str, blanks_csv: Path, model: dict[str, object], estimator: object
) -> None:
    """No fold's held-out rows shape the preprocessing they are scored through: the CV scores
    are `cross_validate(Pipeline(recipe, model))`'s on the same folds, to the last digits."""
    split = fitting.load_split(sales)
    score, _ = fitting.fit_and_score(model, split)

    X_train, y_train, recipe = by_hand(blanks_csv, "Sales")
    expected = cross_validate(
        Pipeline([("preprocess", recipe), ("model", estimator)]),
        X_train,
        y_train,
        cv=KFold(5, shuffle=True, random_state=SEED),
        scoring=("neg_mean_squared_error", "neg_mean_absolute_error"),
    )
    folds_mse = -expected["test_neg_mean_squared_error"]
    assert score.metrics["cv_mse"] == pytest.approx(folds_mse.mean(), rel=1e-9)
    assert score.metrics["cv_mse_std"] == pytest.approx(folds_mse.std(), rel=1e-9)
    assert score.folds["mse"] == pytest.approx(tuple(folds_mse), rel=1e-9)
    assert score.metrics["cv_mae"] == pytest.approx(
        -expected["test_neg_mean_absolute_error"].mean(), rel=1e-9
    )
    # The recipe fitted once on all training rows, then folds cut from its output: what the
    # CV was before, and measurably not the same number.
    leaky = -cross_validate(
        estimator,  # type: ignore[arg-type]
        split.X_train,
        split.y_train,
        cv=KFold(5, shuffle=True, random_state=SEED),
        scoring="neg_mean_squared_error",
    )["test_score"]
    assert abs(leaky.mean() - score.metrics["cv_mse"]) > 1e-6 * score.metrics["cv_mse"]


def test_a_regression_trial_is_tested_as_fitted_on_every_training_row(sales: str) -> None:
    model = {"_target_": "sklearn.linear_model.Lasso", "alpha": 0.05}
    split = fitting.load_split(sales)
    score, fitted = fitting.fit_and_score(model, split)

    predicted = Lasso(alpha=0.05).fit(split.X_train, split.y_train).predict(split.X_test)
    assert score.metrics["mse"] == pytest.approx(mean_squared_error(split.y_test, predicted))
    assert score.metrics["rmse"] == pytest.approx(np.sqrt(score.metrics["mse"]))
    assert score.metrics["mae"] == pytest.approx(mean_absolute_error(split.y_test, predicted))
    # The model handed back is the one fitted on every training row, not a fold's.
    assert np.allclose(fitted.predict(split.X_test), predicted)
    assert score.metrics["fit_seconds"] >= 0 and score.ended_ms >= score.started_ms


def test_the_folds_partition_the_training_rows_and_cv0_stores_none(
    sales: str, blanks_csv: Path, tmp_path: Path
) -> None:
    split = fitting.load_split(sales)
    assert len(split.folds) == 5
    held_out = np.concatenate([fold.y_held_out for fold in split.folds])
    assert sorted(held_out) == sorted(split.y_train)  # every training row held out once
    for fold in split.folds:
        assert len(fold.y_fit) + len(fold.y_held_out) == len(split.y_train)

    without = fitting.Split.read(stored(blanks_csv, "Sales", tmp_path, cv=0))
    assert without.folds == ()
    score, _ = fitting.fit_and_score({"_target_": "sklearn.linear_model.Ridge"}, without)
    assert not any(name.startswith("cv_") for name in score.metrics) and score.folds == {}


def test_a_classification_trial_is_stratified_and_scored_on_its_labels(
    shelf: str, blanks_csv: Path
) -> None:
    model = {"_target_": "sklearn.linear_model.LogisticRegression", "C": 0.5, "max_iter": 500}
    split = fitting.load_split(shelf)
    score, fitted = fitting.fit_and_score(model, split)
    assert split.task == "classification" and set(split.y_test) == {"Yes", "No"}

    X_train, y_train, recipe = by_hand(blanks_csv, "US")
    expected = cross_validate(
        Pipeline([("preprocess", recipe), ("model", LogisticRegression(C=0.5, max_iter=500))]),
        X_train,
        y_train,
        cv=StratifiedKFold(4, shuffle=True, random_state=SEED),
        scoring=("accuracy", "neg_log_loss"),
    )
    assert score.metrics["cv_accuracy"] == pytest.approx(expected["test_accuracy"].mean())
    assert score.metrics["cv_log_loss"] == pytest.approx(
        -expected["test_neg_log_loss"].mean(), rel=1e-9
    )

    predicted = fitted.predict(split.X_test)
    assert set(predicted) <= {"Yes", "No"}
    assert score.metrics["accuracy"] == pytest.approx(accuracy_score(split.y_test, predicted))
    assert score.metrics["f1_macro"] == pytest.approx(
        f1_score(split.y_test, predicted, average="macro")
    )
    assert 0.5 < score.metrics["roc_auc"] <= 1.0


def test_folds_need_rows_and_classes_enough(
    shelf: str, sales: str, blanks_csv: Path, tmp_path: Path
) -> None:
    rows = len(fitting.load_split(sales).y_train)
    with pytest.raises(DataError, match=f"eval.cv={rows + 1} needs at least {rows + 1} training"):
        stored(blanks_csv, "Sales", tmp_path, cv=rows + 1)
    smallest = int(np.unique(fitting.load_split(shelf).y_train, return_counts=True)[1].min())
    with pytest.raises(DataError, match=f"the smallest class has {smallest}"):
        stored(blanks_csv, "US", tmp_path, cv=smallest + 1)


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
    bagging = {"_target_": "sklearn.ensemble.BaggingRegressor", "estimator": {"_target_": lasso}}
    errors = fitting.model_errors(
        [
            trial(0, {"_target_": lasso, "alpha": 1.0}),
            trial(1, {"_target_": lasso, "alpha": -1}),
            trial(2, {"_target_": lasso, "alpha": -1}),  # the same values: said once
            trial(3, {"_target_": lasso, "nonsense": 2}),
            # A shape built before: only its new value is checked, and still refused.
            trial(4, {"_target_": lasso, "alpha": 2.0, "max_iter": 0}),
            trial(5, {"_target_": lasso, "alpha": 3.0, "max_iter": 10}),
            trial(6, {"_target_": lasso, "alpha": 4.0, "max_iter": -5}),
            # Nested configs are checked as the estimators they build (not as dicts), each time.
            *(trial(7 + n, {**bagging, "n_estimators": n + 2}) for n in range(2)),
        ]
    )
    assert len(errors) == 4, errors
    assert errors[0].startswith("trial 't1': InvalidParameterError: The 'alpha' parameter of Lasso")
    assert errors[1].startswith("trial 't3': TypeError:") and "nonsense" in errors[1]
    assert errors[2].startswith("trial 't4': InvalidParameterError: The 'max_iter' parameter")
    assert errors[3].startswith("trial 't6': InvalidParameterError: The 'max_iter' parameter")


def test_scale_target_lets_svr_fit_a_target_in_large_units(
    blanks_csv: Path, tmp_path: Path
) -> None:
    """Sales in units a thousand times larger: SVR's default epsilon and C are in the target's
    units, so it predicts almost a constant (r² near 0) unless the target is standardised."""
    table = pd.read_csv(blanks_csv)
    path = tmp_path / "large.csv"
    table.assign(Sales=table["Sales"] * 1000).to_csv(path, index=False)
    data = {"name": "csv", "path": str(path), "target": "Sales", "drop": [], "test_size": 0.3}
    svr = {"_target_": "sklearn.svm.SVR"}
    scores = {}
    for scale in (False, True):
        recipe = {**preprocess_recipe("standard"), "scale_target": scale}
        split = fitting.Split.read(preprocess(data, recipe, SEED, str(tmp_path / "s"), cv=5).url)
        score, fitted = fitting.fit_and_score(svr, split)
        scores[scale] = score.metrics
    assert scores[False]["r2"] < 0.1 and scores[True]["r2"] > 0.6
    assert scores[True]["cv_r2"] > 0.6
    # Predictions come back in the target's own units.
    assert fitted.predict(split.X_test).mean() == pytest.approx(split.y_test.mean(), rel=0.1)
