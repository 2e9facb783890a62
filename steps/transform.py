"""How the preprocess step turns a table into a split: check the columns, drop rows without a
target, split train/test, fit the imputers, encoders and scalers on the training rows, and say
what was done (the counts of records.SPLIT_REPORT, and warnings)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sweeper.core.metrics import ProblemType
from sweeper.core.records import TARGET_COLUMN
from sweeper.errors import DataError
from sweeper.safe_text import redact
from sweeper.trial.splits import folds_refused

if TYPE_CHECKING:
    from sklearn.compose import ColumnTransformer

SMALL_TEST_SET = 20  # rows: fewer, and test scores are too noisy to trust; said aloud
MIN_ROWS = 2  # test rows, and training rows, that a score needs at the very least


@dataclass(frozen=True)
class Prepared:
    train: pd.DataFrame  # transformed features and the target
    test: pd.DataFrame
    raw_test: pd.DataFrame  # the test rows as the data has them
    transformer: ColumnTransformer  # fitted on the training rows
    report: dict[str, int]  # records.SPLIT_REPORT's counts
    warnings: tuple[str, ...]
    task: ProblemType
    classes: tuple[str, ...] = ()  # a classification's labels, as text
    smallest_class: int = 0  # training rows of its rarest class
    folds: tuple[Fold, ...] = ()  # the CV folds of the training rows, each preprocessed apart


@dataclass(frozen=True)
class Fold:
    """One CV fold of the training rows, preprocessed as a pipeline would be inside
    `cross_val_score`: the recipe fitted on the rows the fold fits on only, so the rows it holds
    out shape nothing they are scored through."""

    fit: pd.DataFrame  # transformed features and the target
    held_out: pd.DataFrame


def transform(
    frame: pd.DataFrame,
    data: Mapping[str, Any],
    preprocess: Mapping[str, Any],
    seed: int,
    cv: int = 0,
) -> Prepared:
    """The transformed train and test tables, the raw test rows (input columns and target), the
    transformer fitted on the training rows, `cv` folds of the training rows (shuffled with
    `seed`) each transformed by a recipe fitted on its own fitting rows, and what was done to
    the data."""
    from sklearn.model_selection import train_test_split

    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    shown = redact(data.get("path")) or data.get("name")
    if frame.empty:
        raise DataError(f"data.path {shown} has no rows (columns: {columns})")
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise DataError(
            f"data.path {shown} has more than one column named {repeated[0]!r}: "
            "give each column a name of its own"
        )
    if TARGET_COLUMN in columns:
        raise DataError(
            f"column {TARGET_COLUMN!r} has the name the stored splits keep the "
            "target under: rename it"
        )
    rows_in = len(frame)
    # A blank is NaN however the table was read (a Parquet file's text columns may hold None).
    for column in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
        frame[column] = frame[column].where(frame[column].notna(), np.nan)
    target = data["target"]
    drop = list(data.get("drop") or [])
    missing = [c for c in drop if c not in columns]
    if missing:
        raise DataError(f"data.drop names columns that do not exist: {missing}; columns: {columns}")
    if target not in columns:
        raise DataError(f"data.target '{target}' is not a column; columns: {columns}")
    task = _task(frame[target], target, data.get("task", "auto"))
    frame = frame.drop(columns=drop).dropna(subset=[target])
    if frame.empty:
        raise DataError(f"data.target '{target}' is missing in every row")
    y = frame.pop(target)
    y = y.astype("float64") if task == ProblemType.regression else y
    if frame.shape[1] == 0:
        raise DataError(f"no feature columns are left after dropping {drop} and the target")
    test_size = _test_size(data["test_size"], len(frame))
    _check_infinite(frame)
    if task == ProblemType.classification:
        _check_classes(y, target)
    else:
        _check_numbers(y, target)

    # A classification's split keeps each class's share on both sides (stratified).
    X_train, X_test, y_train, y_test = train_test_split(
        frame,
        y,
        test_size=test_size,
        random_state=seed,
        stratify=y if task == ProblemType.classification else None,
    )
    # A column with no value in any training row tells the models nothing: left out, said once.
    empty = [c for c in X_train.columns if X_train[c].isna().all()]
    X_train, X_test = X_train.drop(columns=empty), X_test.drop(columns=empty)
    if X_train.shape[1] == 0:
        raise DataError(f"no feature column has a value in the training rows (columns: {empty})")
    # Fitted on the training rows only, so nothing about the test rows leaks into the trials.
    transformer = _transformer(X_train, preprocess, served=True).fit(X_train)
    features = [str(f) for f in transformer.get_feature_names_out()]
    train = _as_table(transformer.transform(X_train), features, y_train)
    test = _as_table(transformer.transform(X_test), features, y_test)
    for rows, table in (("training", train), ("test", test)):
        _check_finite(table[features], rows)
    raw_test = X_test.assign(**{TARGET_COLUMN: y_test.to_numpy()})
    report = {
        "rows_in": rows_in,
        "rows_dropped_missing_target": rows_in - len(frame),
        "rows_train": len(train),
        "rows_test": len(test),
        "columns_in": X_train.shape[1],
        "features_out": len(features),
    }
    warnings = [
        f"column '{c}' has no value in any training row: left out of the features" for c in empty
    ]
    warnings += _grouped_levels(X_train, preprocess)
    scale_target = preprocess.get("scale_target", False)
    if not isinstance(scale_target, bool):
        raise DataError(f"preprocess.scale_target={scale_target} must be true or false")
    if scale_target and task == ProblemType.classification:
        warnings.append(
            "preprocess.scale_target is for a regression's target: labels are not scaled"
        )
    if len(test) < SMALL_TEST_SET:
        warnings.append(
            f"the test set has only {len(test)} rows (data.test_size={data['test_size']}): its "
            "scores are noisy; more rows or a larger data.test_size give ones to trust"
        )
    counts = y_train.value_counts()
    smallest = int(counts.min()) if task == ProblemType.classification else 0
    refused = folds_refused(cv, len(y_train), task, smallest) if cv else None
    if refused:
        raise DataError(refused)
    folds = tuple(
        _fold(X_train, y_train, rows, preprocess) for rows in cut_folds(y_train, task, cv, seed)
    )
    if task == ProblemType.regression:
        return Prepared(
            train, test, raw_test, transformer, report, tuple(warnings), task, folds=folds
        )
    classes = tuple(str(c) for c in sorted(counts.index, key=str))
    return Prepared(
        train, test, raw_test, transformer, report, tuple(warnings), task, classes, smallest, folds
    )


def cut_folds(
    y: pd.Series, task: ProblemType, cv: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """The `cv` folds of the training rows as (fit on, held out) row numbers: shuffled with the
    sweep's `seed`, stratified by class for a classification; scikit-learn's own KFold and
    StratifiedKFold, so `cross_val_score(..., cv=KFold(cv, shuffle=True, random_state=seed))`
    cuts the same ones."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if not cv:
        return []
    if task == ProblemType.classification:
        return list(StratifiedKFold(cv, shuffle=True, random_state=seed).split(y, y))
    return list(KFold(cv, shuffle=True, random_state=seed).split(np.zeros((len(y), 1))))


def _fold(
    X: pd.DataFrame,
    y: pd.Series,
    rows: tuple[np.ndarray, np.ndarray],
    preprocess: Mapping[str, Any],
) -> Fold:
    fit_on, held_out = rows
    X_fit, X_held = X.iloc[fit_on], X.iloc[held_out]
    recipe = _transformer(X_fit, preprocess).fit(X_fit)
    features = [str(f) for f in recipe.get_feature_names_out()]
    fit = _as_table(recipe.transform(X_fit), features, y.iloc[fit_on])
    held = _as_table(recipe.transform(X_held), features, y.iloc[held_out])
    for name, table in (("fold's fitting", fit), ("fold's held-out", held)):
        _check_finite(table[features], name)
    return Fold(fit, held)


def _task(target: pd.Series, name: str, asked: str) -> ProblemType:
    """`auto`: a number is a regression's target; text, booleans and categories are labels."""
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    if asked == "auto":
        return ProblemType.regression if numeric else ProblemType.classification
    if asked not in tuple(ProblemType):
        raise DataError(f"data.task={asked} is not one of auto, regression, classification")
    if asked == ProblemType.regression and not numeric:
        raise DataError(
            f"data.target '{name}' is not numeric (dtype {target.dtype}): a regression target "
            "must be a number (data.task=classification, or auto, treats it as labels)"
        )
    return ProblemType(asked)


def _check_classes(y: pd.Series, target: str) -> None:
    counts = y.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"data.target '{target}' has one class ({counts.index[0]!r}): "
            "a classification needs at least two"
        )
    rare = counts[counts < 2]
    if len(rare):
        raise DataError(
            f"data.target '{target}': class {rare.index[0]!r} has only {int(rare.iloc[0])} row; "
            "a stratified train/test split needs at least 2 of each class"
        )


def _check_numbers(y: pd.Series, target: str) -> None:
    """A regression's target: finite, varying, and small enough that squared errors are too."""
    infinite = int((~np.isfinite(y)).sum())
    if infinite:
        raise DataError(
            f"data.target '{target}' is infinite in {infinite} rows: "
            "a target must be a finite number"
        )
    if y.nunique() < 2:
        raise DataError(
            f"data.target '{target}' is {y.iloc[0]:g} in every row: a constant "
            "target leaves nothing to learn, and every model scores perfectly"
        )
    largest = float(y.abs().max())
    if largest > 1e150:  # its squares overflow float64, and MSE with them
        raise DataError(
            f"data.target '{target}' reaches {largest:g}: squared errors of values "
            "this large overflow; rescale the target"
        )


def _check_infinite(X: pd.DataFrame) -> None:
    numbers = X.select_dtypes("number")
    counts = np.isinf(numbers.to_numpy(dtype="float64")).sum(axis=0)
    for column, count in zip(numbers.columns, counts, strict=True):
        if count:
            raise DataError(
                f"column '{column}' is infinite in {count} rows: imputation fills "
                "missing values, not infinite ones; fix or drop it (data.drop)"
            )


def _check_finite(features: pd.DataFrame, rows: str) -> None:
    """Imputation fills missing values, not infinite ones: what would reach the models."""
    bad = features.columns[~np.isfinite(features.to_numpy()).all(axis=0)]
    if len(bad):
        raise DataError(
            f"feature '{bad[0]}' is not finite in some {rows} rows after "
            "preprocessing (a value too large to scale): fix or drop it (data.drop)"
        )


def _test_size(value: Any, rows: int) -> float | int:
    """scikit-learn's rule, said before any split: a fraction in (0, 1) or a number of rows,
    leaving at least one row on each side."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fraction = number and isinstance(value, float)
    n_test = math.ceil(value * rows) if fraction else value
    if not number or (fraction and not 0 < value < 1) or not 1 <= n_test < rows:
        raise DataError(
            f"data.test_size={value} must be a fraction between 0 and 1 or a number of rows, "
            f"leaving rows to train on and to test on (the data has {rows} rows with a target)"
        )
    if n_test < MIN_ROWS or rows - n_test < MIN_ROWS:  # r² of one row is not a number
        needed = max(2 * MIN_ROWS, math.ceil(MIN_ROWS / value) if fraction else MIN_ROWS + n_test)
        raise DataError(
            f"data.test_size={value} leaves {n_test} test and {rows - n_test} training rows of "
            f"the {rows} with a target: scoring needs at least {MIN_ROWS} of each, so at least "
            f"{needed} rows at this test size"
        )
    return value  # type: ignore[no-any-return]


def _grouped_levels(X: pd.DataFrame, preprocess: Mapping[str, Any]) -> list[str]:
    """A warning for each text column with more levels than `preprocess.max_categories`."""
    limit = preprocess.get("max_categories")
    if limit is None:
        return []
    found = []
    for column in X.columns:
        if pd.api.types.is_numeric_dtype(X[column]):
            continue
        levels = X[column].nunique()
        if levels > limit:
            found.append(
                f"column '{column}' has {levels} levels in the training rows: the {limit - 1} "
                f"most frequent are kept and the rest grouped as one "
                f"(preprocess.max_categories={limit})"
            )
    return found


def _transformer(
    X: pd.DataFrame, preprocess: Mapping[str, Any], served: bool = False
) -> ColumnTransformer:
    """The recipe as a ColumnTransformer for these columns; `served`: the one the winner's
    pipeline carries, which also fills a text blank given as None (rows built in Python)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    scalers = {"standard": StandardScaler, "minmax": MinMaxScaler, "none": None}
    scale = preprocess.get("scale", "standard")
    if scale not in scalers:
        raise DataError(f"preprocess.scale '{scale}' is not one of {list(scalers)}")
    max_categories = preprocess.get("max_categories")
    if max_categories is not None and (not isinstance(max_categories, int) or max_categories < 2):
        raise DataError(
            f"preprocess.max_categories={max_categories} must be at least 2 (or null: every level)"
        )
    numeric = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    categorical = [c for c in X.columns if c not in numeric]
    # Counting each level's rows (for max_categories) is a Python loop over every value in
    # scikit-learn: done only when some text column has more levels than that; fewer give the
    # same features either way.
    if max_categories is not None and all(X[c].nunique() <= max_categories for c in categorical):
        max_categories = None

    # Kept when a CV fold's fitting rows happen to have no value of it (filled with 0), so
    # every fold has the features the whole training set has.
    numeric_steps: list[Any] = [
        SimpleImputer(strategy=preprocess.get("impute_numeric", "median"), keep_empty_features=True)
    ]
    if scalers[scale] is not None:
        numeric_steps.append(scalers[scale]())
    impute_categorical = preprocess.get("impute_categorical", "most_frequent")
    # A blank in a text column is NaN as pandas reads a file (and as `transform` leaves the
    # rows), and None in rows built in Python (a served model's callers): the first imputer sees
    # only NaN, the second, in the served recipe only, None; on the training rows it changes
    # nothing, so the CV folds' recipes go without it.
    fills_none = [
        SimpleImputer(missing_values=None, strategy=impute_categorical, fill_value="missing")
    ]
    categorical_steps = [
        SimpleImputer(strategy=impute_categorical, fill_value="missing"),
        *(fills_none if served else []),
        # Rarer levels beyond max_categories become one "infrequent" feature, as do levels
        # the training rows never had.
        OneHotEncoder(
            handle_unknown="infrequent_if_exist" if max_categories else "ignore",
            max_categories=max_categories,
            sparse_output=False,
        ),
    ]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(*numeric_steps), numeric),
            ("categorical", make_pipeline(*categorical_steps), categorical),
        ],
        verbose_feature_names_out=False,
    )


def _as_table(values: Any, features: Sequence[str], y: pd.Series) -> pd.DataFrame:
    table = pd.DataFrame(values, columns=list(features), dtype="float64")
    table[TARGET_COLUMN] = y.to_numpy()
    return table
