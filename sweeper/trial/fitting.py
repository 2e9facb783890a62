"""Fitting and scoring one model config on a stored split: the heart of every trial.

A stored split is read once per process and kept, so a warm worker serves every trial of a group
from memory. Importing this module loads pandas and NumPy; scikit-learn is loaded when a model is.
"""

from __future__ import annotations

import functools
import io
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from sweeper.core import storage, trust
from sweeper.core.evidence import FoldStop
from sweeper.core.metrics import FIT_SECONDS, METRICS, ProblemType, cv_mean, cv_std
from sweeper.core.records import TARGET_COLUMN, Trial, TrialScore, TrialValues, now_ms
from sweeper.safe_text import first_line

if TYPE_CHECKING:
    from numpy.typing import ArrayLike
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer


@dataclass(frozen=True)
class Fold:
    """One CV fold as the preprocess step stored it: the rows it fits on and the rows it holds
    out, both transformed by the recipe fitted on the first (no held-out row shaped it)."""

    X_fit: np.ndarray
    y_fit: np.ndarray
    X_held_out: np.ndarray
    y_held_out: np.ndarray

    @classmethod
    def read(cls, url: str, number: int) -> Fold:
        fit, held_out = storage.fold_tables(number)
        X_fit, y_fit = read_table(url, fit)
        X_held_out, y_held_out = read_table(url, held_out)
        return cls(
            X_fit.to_numpy(dtype="float64"),
            y_fit.to_numpy(),
            X_held_out.to_numpy(dtype="float64"),
            y_held_out.to_numpy(),
        )


@dataclass(frozen=True)
class Split:
    """A stored split's arrays, and its CV folds (the sweep's `eval.cv`; none for 0), cut and
    preprocessed once by the preprocess step: every trial of the split is scored on the same
    folds, so their CV scores compare, fold by fold."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray  # numbers for a regression, the labels as the data has them otherwise
    task: ProblemType = ProblemType.regression
    folds: tuple[Fold, ...] = field(default=(), repr=False)
    scale_target: bool = False  # the recipe's `scale_target`: models fit the standardised target

    @classmethod
    def read(cls, url: str) -> Split:
        X_train, y_train = read_table(url, storage.TRAIN)
        X_test, y_test = read_table(url, storage.TEST)
        meta = json.loads(storage.read_bytes(storage.join(url, storage.META)))
        return cls(
            X_train=X_train.to_numpy(dtype="float64"),
            y_train=y_train.to_numpy(),
            X_test=X_test.to_numpy(dtype="float64"),
            y_test=y_test.to_numpy(),
            task=ProblemType(meta.get("task", ProblemType.regression)),
            folds=tuple(Fold.read(url, number) for number in range(meta.get("cv", 0))),
            scale_target=bool((meta.get("preprocess") or {}).get("scale_target")),
        )


# The stored splits this process has read: a warm worker serves every trial of a group from one.
load_split = functools.lru_cache(maxsize=4)(Split.read)


def read_table(split_url: str, name: str) -> tuple[pd.DataFrame, pd.Series]:
    """One table of a stored split: its features (as floats) and its target."""
    table = pd.read_parquet(io.BytesIO(storage.read_bytes(storage.join(split_url, name))))
    return table.drop(columns=TARGET_COLUMN).astype("float64"), table[TARGET_COLUMN]


def read_raw_test(split_url: str) -> tuple[pd.DataFrame, pd.Series]:
    """The split's test rows as the data has them (its input columns), and their target."""
    table = pd.read_parquet(
        io.BytesIO(storage.read_bytes(storage.join(split_url, storage.TEST_RAW)))
    )
    return table.drop(columns=TARGET_COLUMN), table[TARGET_COLUMN]


def skops_types(data: bytes, modules: Sequence[str] = ()) -> tuple[list[str], list[str]]:
    """The types skops data holds that skops does not trust by itself, and those of them this
    project does not trust either: outside scikit-learn, NumPy, SciPy and `modules` (the
    sweep's `trust.modules`; see core.trust)."""
    import skops.io

    types = skops.io.get_untrusted_types(data=data)
    return types, trust.loadable_types(types, modules)


def read_transformer(split_url: str) -> ColumnTransformer:
    """The preprocessing the split was made with, fitted on its training rows. Stored with skops
    by the preprocess step; only scikit-learn's, NumPy's and SciPy's own types are loaded."""
    import skops.io

    data = storage.read_bytes(storage.join(split_url, storage.TRANSFORMER))
    types, foreign = skops_types(data)
    if foreign:
        raise ValueError(f"{split_url}/{storage.TRANSFORMER} holds types not trusted: {foreign}")
    transformer: ColumnTransformer = skops.io.loads(data, trusted=types)
    return transformer


def fit_and_score(
    model: Mapping[str, Any],
    split: Split,
    modules: Sequence[str] = (),
    rows: int | None = None,
    final: bool = True,
    early_stop: FoldStop | None = None,
) -> tuple[TrialScore, BaseEstimator | None]:
    """Instantiate the model config (a Hydra `_target_` mapping); score it on each of the
    split's CV folds (the mean and spread rank it, the per-fold scores tell ties apart); then
    fit it on all training rows and score it on the test rows (the honest estimate, once it is
    chosen). The scores, and the model fitted on all training rows (the one a winner is logged
    as). A halving rung below the last (not `final`) is scored by CV only, each fold fitting on
    `rows` of its training rows (None: all): no test score, no model; so is a trial
    `early_stop` stopped, over the folds it had."""
    started_ms = now_ms()
    estimator = split_estimator(model, split, modules)
    tic = time.perf_counter()
    metrics, per_fold = (
        cross_validate(estimator, split, rows, early_stop) if split.folds else ({}, {})
    )
    stopped = bool(per_fold) and len(next(iter(per_fold.values()))) < len(split.folds)
    if not final or stopped:
        metrics[FIT_SECONDS] = time.perf_counter() - tic
        return TrialScore(metrics, started_ms, now_ms(), per_fold, stopped), None
    tic = time.perf_counter()
    estimator.fit(split.X_train, split.y_train)
    fit_seconds = time.perf_counter() - tic
    metrics.update(evaluate(estimator, split.X_test, split.y_test, split.task))
    metrics[FIT_SECONDS] = fit_seconds
    score = TrialScore(metrics, started_ms, now_ms(), per_fold)
    return score, estimator


def cross_validate(
    estimator: BaseEstimator,
    split: Split,
    rows: int | None = None,
    early_stop: FoldStop | None = None,
) -> tuple[dict[str, float], dict[str, tuple[float, ...]]]:
    """`cv_<metric>` (the mean over the split's folds) and `cv_<metric>_std` for every metric,
    and each metric's score on each fold; each fold is fitted once, on a fresh clone, and scored
    on the rows it left out. `rows`: each fold fits on that many of its training rows (the
    same ones for every model: `fold_sample`), and is scored on all it left out. `early_stop`:
    the folds end once it says the scores so far are worse than the best's."""
    from sklearn.base import clone

    scores = []
    for number, fold in enumerate(split.folds):
        X_fit, y_fit = fold.X_fit, fold.y_fit
        if rows is not None and rows < len(y_fit):
            chosen = fold_sample(y_fit, rows, split.task, seed=number)
            X_fit, y_fit = X_fit[chosen], y_fit[chosen]
        fitted = clone(estimator).fit(X_fit, y_fit)
        scores.append(evaluate(fitted, fold.X_held_out, fold.y_held_out, split.task))
        if early_stop is not None and early_stop.worse([s[early_stop.metric] for s in scores]):
            break
    metrics, per_fold = {}, {}
    for metric in scores[0]:
        values = np.array([fold[metric] for fold in scores])
        metrics[cv_mean(metric)] = float(values.mean())
        metrics[cv_std(metric)] = float(values.std())
        per_fold[metric] = tuple(float(v) for v in values)
    return metrics, per_fold


def fold_sample(y: np.ndarray, rows: int, task: ProblemType, seed: int) -> np.ndarray:
    """Which `rows` of a fold's training rows a halving rung fits on, in their order: the same
    for every configuration (fixed by the fold), nested (a larger rung keeps a smaller one's
    rows: the first of one permutation), and for a classification stratified: each class
    in its share, every class at least once (as scikit-learn's StratifiedShuffleSplit)."""
    order = np.random.default_rng(seed).permutation(len(y))
    if task == ProblemType.regression:
        return np.sort(order[:rows])
    # Round-robin over the classes in proportion: the first `rows` of a per-class interleave.
    labels = np.asarray(y)[order]
    classes, counts = np.unique(labels, return_counts=True)
    rank = np.empty(len(order), dtype="float64")
    for label, count in zip(classes, counts, strict=True):
        mine = np.flatnonzero(labels == label)
        # The i-th row of a class sits at (i + 0.5) / count of the way: classes interleave.
        rank[mine] = (np.arange(len(mine)) + 0.5) / count
    by_rank = order[np.argsort(rank, kind="stable")]
    return np.sort(by_rank[:rows])


def evaluate(
    fitted: BaseEstimator, X: np.ndarray, y: np.ndarray, task: ProblemType
) -> dict[str, float]:
    """Every metric of the task, for a fitted model on these rows."""
    predicted = fitted.predict(X)
    if task == ProblemType.regression:
        return finite(score(y, predicted))
    with_probabilities = hasattr(fitted, "predict_proba")  # SVC(probability=False) has none
    proba = fitted.predict_proba(X) if with_probabilities else None
    return finite(score_labels(y, predicted, proba, getattr(fitted, "classes_", None)))


def finite(metrics: dict[str, float]) -> dict[str, float]:
    """The metrics, or the trial fails: a score that is not a number is never the best."""
    bad = [name for name, value in metrics.items() if not np.isfinite(value)]
    if bad:
        shown = ", ".join(f"{name}={metrics[name]}" for name in bad)
        raise ValueError(f"{shown}: the model's predictions cannot be scored (overflow?)")
    return metrics


def score_labels(
    y_true: ArrayLike,
    predicted: ArrayLike,
    proba: np.ndarray | None = None,
    classes: ArrayLike | None = None,
) -> dict[str, float]:
    """A classification's metrics: accuracy, balanced accuracy, macro F1 and, given the
    probabilities of `classes` (in the model's order), log loss and ROC AUC (one-vs-rest macro
    for more than two classes)."""
    from sklearn.metrics import (
        accuracy_score,
        balanced_accuracy_score,
        f1_score,
        log_loss,
        roc_auc_score,
    )

    metrics = {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(y_true, predicted)),
        "f1_macro": float(f1_score(y_true, predicted, average="macro")),
    }
    if proba is not None and classes is not None:
        labels = np.asarray(classes)
        metrics["log_loss"] = float(log_loss(y_true, proba, labels=labels))
        if len(labels) == 2:
            positive = np.asarray(y_true) == labels[1]
            metrics["roc_auc"] = float(roc_auc_score(positive, proba[:, 1]))
        else:
            metrics["roc_auc"] = float(
                roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
            )
    return metrics


def score(y_true: ArrayLike, predicted: ArrayLike) -> dict[str, float]:
    """A regression's metrics (metrics.METRICS), for these predictions."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    mse = float(mean_squared_error(y_true, predicted))
    values = (
        mse,
        float(np.sqrt(mse)),
        float(mean_absolute_error(y_true, predicted)),
        float(r2_score(y_true, predicted)),
    )
    return dict(zip(METRICS, values, strict=True))  # mse, rmse, mae, r2


def split_estimator(
    model: Mapping[str, Any], split: Split, modules: Sequence[str] = ()
) -> BaseEstimator:
    """The model config's estimator as the split's recipe has it fitted: with `scale_target`, a
    regressor fits the standardised target and predicts in the target's own units (scikit-learn's
    TransformedTargetRegressor), which models that are not scale-free (SVR, kNN, MLPs) need."""
    estimator = build_estimator(model, modules)
    if not split.scale_target or split.task != ProblemType.regression:
        return estimator
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.preprocessing import StandardScaler

    return TransformedTargetRegressor(regressor=estimator, transformer=StandardScaler())


def build_estimator(model: Mapping[str, Any], modules: Sequence[str] = ()) -> BaseEstimator:
    """The estimator a model config describes, once every class it names is trusted
    (core.trust; `modules`: the sweep's `trust.modules`). A flat config (the usual case) is a
    class and its keyword arguments, built directly; anything richer (nested `_target_`s,
    `_args_`) goes through Hydra's `instantiate`, which costs milliseconds per call."""
    from hydra.utils import instantiate

    cls = trust.check_classes(model, modules)
    flat = all(not k.startswith("_") or k == "_target_" for k in model) and not any(
        isinstance(v, Mapping | list) for v in model.values()
    )
    if not flat:
        estimator: BaseEstimator = instantiate(dict(model), _convert_="all")
        return estimator
    kwargs = {k: v for k, v in model.items() if k != "_target_"}
    built: BaseEstimator = cls(**kwargs)
    return built


def model_errors(trials: Sequence[Trial | TrialValues], modules: Sequence[str] = ()) -> list[str]:
    """What fitting would refuse in the trials' model values, one line each (the same values
    once), found without fitting: a class that does not exist, an unknown argument, `alpha=-1`.
    The sweep's run opens only when there are none. scikit-learn checks each parameter on its
    own, so each distinct (class, parameter, value) is checked once, and a flat config of a
    shape built before is not built again: 100,000 alphas cost a second, not minutes."""
    errors, said = [], set()
    check = ModelCheck(modules)
    for trial in trials:
        try:
            check(trial.model)
        except Exception as err:
            identity = json.dumps(trial.model, sort_keys=True, default=str)
            if identity not in said:
                said.add(identity)
                errors.append(f"trial '{trial.name}': {type(err).__name__}: {first_line(err)}")
    return errors


class ModelCheck:
    """Raises what fitting a model config would raise for its values: scikit-learn's own
    parameter check, which its estimators run first thing in `fit`. Remembers what it checked:
    the (class, parameter, value) triples that passed, and the flat shapes (a target and its
    keys) whose estimator was built, so that a config differing from those only in values is
    checked on its new values alone, without building it again."""

    def __init__(self, modules: Sequence[str] = ()) -> None:
        self.modules = modules
        self.accepted: set[tuple[str, str, str]] = set()
        self._defaults: set[str] = set()  # classes whose default values were checked
        self._built: dict[tuple[str, ...], tuple[type, dict[str, Any]]] = {}

    def __call__(self, model: Mapping[str, Any]) -> None:
        flat = all(isinstance(v, trust.SCALARS) for v in model.values())
        shape = (str(model.get("_target_")), *map(str, model)) if flat else None
        known = self._built.get(shape) if shape is not None else None
        if known is not None and not any(
            isinstance(v, str) and "${" in v for v in model.values()
        ):  # the names were checked with this shape; its text values hold no interpolation
            cls, constraints = known
            given = {k: v for k, v in model.items() if not k.startswith("_")}
        else:
            estimator = build_estimator(model, self.modules)
            cls = type(estimator)
            found = getattr(estimator, "_parameter_constraints", None)  # scikit-learn >= 1.2's
            if not isinstance(found, dict):
                return
            constraints = found
            if shape is not None:
                self._built[shape] = (cls, constraints)
            params = estimator.get_params(deep=False)  # nested configs built into estimators
            if self._name(cls) not in self._defaults:
                self._check(cls, constraints, params)
                self._defaults.add(self._name(cls))
            given = {k: params[k] for k in model if not k.startswith("_") and k in params}
        self._check(cls, constraints, given)

    def _check(self, cls: type, constraints: dict[str, Any], params: Mapping[str, Any]) -> None:
        from sklearn.utils._param_validation import validate_parameter_constraints

        name = self._name(cls)
        keys = {k: (name, k, repr(v)) for k, v in params.items()}
        new = {k: params[k] for k, key in keys.items() if key not in self.accepted}
        if new:
            validate_parameter_constraints(constraints, new, caller_name=cls.__name__)
            self.accepted.update(keys[k] for k in new)

    @staticmethod
    def _name(cls: type) -> str:
        return f"{cls.__module__}.{cls.__qualname__}"


def limit_threads(threads: int) -> None:
    """Hold BLAS/OpenMP pools to this process's share of the cores (no oversubscription)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, threads))
