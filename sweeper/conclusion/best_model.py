"""The sweep's winner as a model people can use: one scikit-learn Pipeline (the preprocessing the
split was made with, then the estimator) that predicts from raw rows, logged with `mlflow.sklearn`
on the winning trial's run (signature and input example on the data's own columns), and
optionally registered.

The estimator is the one the winning trial fitted, as the process that trained it kept it
(sweeper.trial.kept: one model per process, not one per trial); only when none was kept (the
process died, its model is of types skops does not trust) is the trial's config fitted again on
the same stored training rows, as scikit-learn's searches refit their best candidate. The
preprocessing is the one the preprocess step fitted.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sweeper.conclusion.promotion import Scored, compare
from sweeper.conclusion.registered import Refused, load_model
from sweeper.core import faults
from sweeper.core.faults import Fault
from sweeper.core.metrics import NEEDS_PROBABILITIES, ProblemType, Ranking
from sweeper.tracking import registry
from sweeper.trial.fitting import read_raw_test, skops_types

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.pyfunc import PyFuncModel
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

    from sweeper.core.outcomes import Outcome
    from sweeper.core.settings import MlflowSettings, TrustSettings
    from sweeper.tracking.tracker import Tracker

MODEL_TAG = "best_model_uri"  # on the trial's run: where its fitted model was logged
# Pinned from this environment: MLflow's own inference runs the model in a subprocess (~10 s).
# (distribution, the module it is imported as)
_REQUIREMENTS = (
    ("mlflow", "mlflow"),
    ("scikit-learn", "sklearn"),
    ("numpy", "numpy"),
    ("pandas", "pandas"),
    ("scipy", "scipy"),
    ("skops", "skops"),
    ("cloudpickle", "cloudpickle"),
)


@dataclass(frozen=True)
class LoggedModel:
    uri: str  # models:/m-… (MLflow's logged model)
    model_id: str | None
    run_id: str


def log_best_model(
    tracker: Tracker,
    best: Outcome,
    split_url: str,
    fitted: BaseEstimator | None = None,
    modules: Sequence[str] = (),
) -> LoggedModel:
    """Log the best trial's model on its run: `fitted`, the estimator its trial fitted, else its
    config fitted again on the split's training rows (`modules`: the sweep's `trust.modules`).
    A trial reused from an earlier sweep keeps the model that sweep logged."""
    import mlflow
    import mlflow.sklearn

    assert best.run_id is not None
    run = tracker.get_run(best.run_id)
    if MODEL_TAG in run.data.tags:
        return LoggedModel(run.data.tags[MODEL_TAG], None, best.run_id)
    pipeline = best_pipeline(best.trial.model, split_url, fitted, modules)
    X_raw, _ = read_raw_test(split_url)
    example = X_raw.head(5)
    mlflow.set_tracking_uri(tracker.tracking_uri)  # MLflow's model logging reads it
    skip_environment_scan()
    signature = serving_signature(example, pipeline.predict(example))
    # Logged into the trial's run by its id, not by reopening it: the run's status and end time
    # stay the trial's own. Retried whole through a store's faults (each attempt is a new
    # logged model; one that failed half-way is never tagged on the run, so never used).
    with warnings.catch_warnings():
        # MLflow warns that it does not check an "any" column: the signature's choice (above).
        warnings.filterwarnings("ignore", message=".*Any type hint is inferred as AnyType")
        info = faults.retrying(
            tracker.shown,
            mlflow.sklearn.log_model,
            pipeline,
            name="model",
            run_id=best.run_id,
            signature=signature,
            input_example=example,
            pip_requirements=_pinned_requirements(),
            **_serialization(pipeline, modules),
        )
    tracker.set_tag(best.run_id, MODEL_TAG, info.model_uri)
    return LoggedModel(info.model_uri, info.model_id, best.run_id)


def serving_signature(example: pd.DataFrame, predicted: Any) -> ModelSignature:
    """What serving accepts: every input column of the data, by name, all required (the
    preprocessing reads each one); text as strings, numbers as doubles, and whole-number columns
    as any value. A blank turns a column of whole numbers into floats (NaN, or JSON's null):
    MLflow's `long` refuses those, and its `double` refuses int64 the other way round (not safely
    a double, to MLflow), while the pipeline imputes blanks and takes either."""
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

    whole = set(example.select_dtypes("integer").columns)
    # Inferred as floats: MLflow hints at integer columns with blanks otherwise, on every log.
    inferred = infer_signature(example.astype(dict.fromkeys(whole, "float64")), predicted)
    columns: list[ColSpec | TensorSpec] = [
        ColSpec(AnyType() if spec.name in whole else spec.type, spec.name, required=True)
        for spec in inferred.inputs.inputs
    ]
    return ModelSignature(Schema(columns), inferred.outputs)


def best_pipeline(
    model: Mapping[str, Any],
    split_url: str,
    fitted: BaseEstimator | None = None,
    modules: Sequence[str] = (),
) -> Pipeline:
    """The split's fitted preprocessing, then the trial's fitted estimator (or, without it, the
    model config fitted on the split's training rows exactly as its trial was: the same
    arrays), so it predicts what the trial scored."""
    from sklearn.pipeline import Pipeline

    from sweeper.trial.fitting import load_split, read_transformer, split_estimator

    if fitted is None:
        split = load_split(split_url)
        fitted = split_estimator(model, split, modules).fit(split.X_train, split.y_train)
    return Pipeline([("preprocess", read_transformer(split_url)), ("model", fitted)])


def register_if_better(
    tracker: Tracker,
    name: str,
    model: LoggedModel,
    best: Outcome,
    split_url: str,
    sweep_id: str,
    ranking: Ranking,
    trust: TrustSettings,
    rule: MlflowSettings | None = None,
    source: Mapping[str, str] | None = None,
) -> str:
    """Tonight's best as a new version of registered model `name`, `@challenger`; made
    `@champion` (the champion before it `@previous_champion`) when it beats the champion on
    evidence: both score this sweep's raw test rows (tonight's data: a champion cannot be
    cross-validated without refitting it), and the challenger must be better in a paired
    bootstrap at `rule.promote_level` and by more than `rule.promote_margin` (conclusion.
    promotion). A line saying what was decided, and why. The champion is loaded only as data
    (conclusion.registered): one that would run code is not compared, and so not replaced.
    `source`: where the sweep came from (core.provenance), tagged on a version it registers."""
    from sweeper.core.settings import MlflowSettings

    rule = rule or MlflowSettings()
    champion = registry.champion(tracker, name)
    metric, value = ranking.metric, best.metrics[ranking.metric]
    if champion is not None and champion.run_id == best.run_id:  # nothing new won tonight
        registry.set_alias(tracker, name, registry.CHAMPION, str(champion.version))
        registry.set_alias(tracker, name, registry.CHALLENGER, str(champion.version))
        return f"Registry: kept {name} version {champion.version}: it is tonight's best too"
    assert best.run_id is not None
    version = registry.version_of_run(tracker, name, best.run_id) or _register(
        tracker, name, model, best, sweep_id, metric, value, source or {}
    )
    registry.set_alias(tracker, name, registry.CHALLENGER, version)
    if champion is None:
        registry.set_alias(tracker, name, registry.CHAMPION, version)
        first = f"{metric} {value:.6g}; the first version"
        return f"Registry: {name} version {version} is the champion ({first})"
    held = str(champion.version)
    shown = f"version {held}"

    def load(uri: str, named: str) -> PyFuncModel:
        return load_model(uri, named, tracker.tracking_uri, trust.modules, trust.pickled_models)

    X_raw, y_test = read_raw_test(split_url)  # tonight's test rows, as the data has them
    try:
        # Both loaded as data: tonight's may be a reused trial's, logged by another sweep.
        challenger = _answers(load(model.uri, f"version {version}"), X_raw, ranking)
        try:
            held_answers = _answers(load(f"models:/{name}/{held}", shown), X_raw, ranking)
        except (Refused, Fault):
            raise
        except Exception as err:  # other columns than tonight's data, a flavour not loadable
            registry.set_alias(tracker, name, registry.PREVIOUS_CHAMPION, held)
            registry.set_alias(tracker, name, registry.CHAMPION, version)
            return (
                f"Registry: {name} version {version} is the champion ({metric} {value:.6g}; "
                f"{shown} cannot score this data: {type(err).__name__})"
            )
    except Refused as refused:
        # The champion stays the champion, by its alias even if it had none (the latest
        # version was: the new one would be tomorrow).
        registry.set_alias(tracker, name, registry.CHAMPION, held)
        return f"Registry: {name} version {version} registered, not made champion: {refused}"
    comparison = compare(y_test.to_numpy(), held_answers, challenger, ranking)
    said = comparison.describe(rule.promote_level, rule.promote_margin)
    if not comparison.promotes(rule.promote_level, rule.promote_margin):
        registry.set_alias(tracker, name, registry.CHAMPION, held)
        return (
            f"Registry: kept {name} {shown} as champion; version {version} is the challenger: "
            f"{said}"
        )
    registry.set_alias(tracker, name, registry.PREVIOUS_CHAMPION, held)
    registry.set_alias(tracker, name, registry.CHAMPION, version)
    return f"Registry: {name} version {version} is the champion, replacing {shown}: {said}"


def _register(
    tracker: Tracker,
    name: str,
    model: LoggedModel,
    best: Outcome,
    sweep_id: str,
    metric: str,
    value: float,
    source: Mapping[str, str],
) -> str:
    tags = {**source, metric: repr(value), "trial": best.trial.name, "sweep_id": sweep_id}
    built = ", ".join(
        f"{what} {source[key]}"
        for what, key in (("image", "provenance.image"), ("commit", "provenance.git_commit"))
        if key in source
    )
    description = f"{best.trial.name} from sweep {sweep_id}" + (f" ({built})" if built else "")
    return registry.register_version(
        tracker, name, model.uri, model.run_id, tags, description=description
    )


def _answers(model: PyFuncModel, X_raw: pd.DataFrame, ranking: Ranking) -> Scored:
    """A model's answers on raw test rows, as its users call it (and, for a metric of
    probabilities, through its scikit-learn model's `predict_proba`)."""
    predicted: np.ndarray = np.asarray(model.predict(X_raw))
    if ranking.task == ProblemType.regression or ranking.metric not in NEEDS_PROBABILITIES:
        return Scored(predicted)
    raw = model.get_raw_model()
    return Scored(predicted, raw.predict_proba(X_raw), raw.classes_)


def _serialization(estimator: BaseEstimator, modules: Sequence[str] = ()) -> dict[str, Any]:
    """skops (MLflow's safe default) when the model is made of scikit-learn's, NumPy's, SciPy's
    and `modules`' types (the sweep's `trust.modules`), which this process built and so
    trusts; cloudpickle for anything skops cannot store."""
    try:
        import skops.io

        untrusted, foreign = skops_types(skops.io.dumps(estimator), modules)
    except Exception:  # a type skops cannot write
        return {"serialization_format": "cloudpickle"}
    if not foreign:
        return {"skops_trusted_types": untrusted}
    return {"serialization_format": "cloudpickle"}


def skip_environment_scan() -> None:
    """MLflow checks a model's given requirements against this environment by first mapping
    every installed distribution to the modules it provides (~0.7 s, once per process). Ours
    are this environment's own pins: the map needs only them. MLflow's private cache; should
    it change, MLflow scans as before."""
    with contextlib.suppress(Exception):
        from mlflow.utils import requirements_utils

        if requirements_utils._MODULES_TO_PACKAGES is None:
            known = {module: [package] for package, module in _REQUIREMENTS}
            vars(requirements_utils)["_MODULES_TO_PACKAGES"] = known


def _pinned_requirements() -> list[str]:
    pins = []
    for package, _ in _REQUIREMENTS:
        try:
            pins.append(f"{package}=={importlib.metadata.version(package)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins
