"""The trial step: fit one configured model on a stored split and score it on the test rows.

    python -m steps.train --split s3://b/sweeps/preprocess/<key> \
        --model '{"_target_": "sklearn.linear_model.Lasso", "alpha": 0.1}' \
        --tracking-uri http://mlflow:5000 --experiment sweeper --parent-run-id <id> \
        --sweep-id <id> --name "lasso alpha=0.1" --params '{"model": "lasso", ...}'

logs the trial as a child run of the sweep's parent run and prints its metrics as JSON.
With `--plan <plan.json URL> --trials 3,4,5` the trials come from a stored plan instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import io
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from steps.records import TARGET_COLUMN, TrialScore
from sweeper import storage


@dataclass(frozen=True)
class Split:
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


@functools.lru_cache(maxsize=4)
def load_split(url: str) -> Split:
    """Read a stored split once per process: a warm worker serves every trial of a group from it."""
    train = _read_table(storage.join(url, "train.parquet"))
    test = _read_table(storage.join(url, "test.parquet"))
    return Split(
        X_train=train.drop(columns=TARGET_COLUMN).to_numpy(dtype="float64"),
        y_train=train[TARGET_COLUMN].to_numpy(),
        X_test=test.drop(columns=TARGET_COLUMN).to_numpy(dtype="float64"),
        y_test=test[TARGET_COLUMN].to_numpy(),
    )


def _read_table(url: str) -> pd.DataFrame:
    return pd.read_parquet(io.BytesIO(storage.read_bytes(url)))


def score(model: Mapping[str, Any], split_url: str) -> TrialScore:
    """Instantiate the model config (a Hydra `_target_` mapping), fit it, score it on test rows."""
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    started_ms = _now_ms()
    split = load_split(split_url)
    estimator = build_estimator(model)
    tic = time.perf_counter()
    estimator.fit(split.X_train, split.y_train)
    fit_seconds = time.perf_counter() - tic
    predicted = estimator.predict(split.X_test)
    mse = float(mean_squared_error(split.y_test, predicted))
    metrics = {
        "mse": mse,
        "rmse": float(np.sqrt(mse)),
        "mae": float(mean_absolute_error(split.y_test, predicted)),
        "r2": float(r2_score(split.y_test, predicted)),
        "fit_seconds": fit_seconds,
    }
    return TrialScore(metrics=metrics, started_ms=started_ms, ended_ms=_now_ms())


def build_estimator(model: Mapping[str, Any]) -> Any:
    """The estimator a model config describes. A flat config (the usual case) is a class and its
    keyword arguments, built directly; anything richer (nested `_target_`s, `_args_`,
    `_partial_`) goes through Hydra's `instantiate`, which costs milliseconds per call."""
    from hydra.utils import get_class, instantiate

    flat = all(not k.startswith("_") or k == "_target_" for k in model) and not any(
        isinstance(v, Mapping | list) for v in model.values()
    )
    if not flat:
        return instantiate(dict(model), _convert_="all")
    kwargs = {k: v for k, v in model.items() if k != "_target_"}
    return get_class(model["_target_"])(**kwargs)


def limit_threads(threads: int) -> None:
    """Hold BLAS/OpenMP pools to this process's share of the cores (no oversubscription)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=max(1, threads))


def _now_ms() -> int:
    return int(time.time() * 1000)


def train_planned(plan_url: str, indices: Sequence[int]) -> int:
    """Trials of a stored plan, each logged as a child run; the number that failed.

    A trial that a sweep of the experiment already finished on the same split is skipped.
    """
    from steps.preprocess import recorded_split
    from sweeper.plan import Plan, trial_key
    from sweeper.tracking import Tracker, TrialRecord

    plan = Plan.from_json(storage.read_bytes(plan_url).decode())
    assert plan.parent_run_id is not None, "the plan step opens the sweep's run"
    tracker = Tracker(plan.settings.tracking_uri, plan.settings.experiment)
    splits: dict[str, dict[str, Any]] = {}  # a pod's trials usually share one group
    finished: dict[str, dict[str, Any]] = {}
    failed = 0
    for index in indices:
        trial = plan.trials[index]
        if trial.group not in splits:
            splits[trial.group] = recorded_split(plan, trial.group)
            key_of_split = splits[trial.group]["key"]
            finished[trial.group] = (
                {} if plan.settings.rerun else tracker.finished_trials(key_of_split)
            )
        split = splits[trial.group]
        key = trial_key(split["key"], trial.model)
        if key in finished[trial.group]:
            print(json.dumps({"trial": trial.name, "reused": True}))
            continue
        record = dataclasses.replace(TrialRecord.of(trial), key=key, split_key=split["key"])
        failed += not _score_and_log(tracker, plan.parent_run_id, plan.sweep_id, record,
                                     trial.model, split["url"])  # fmt: skip
    return failed


def _score_and_log(
    tracker: Any, parent_run_id: str, sweep_id: str, record: Any, model: Any, split_url: str
) -> bool:
    try:
        result = score(model, split_url)
    except Exception as err:
        tracker.log_trial(parent_run_id, sweep_id, record, error=err)
        print(f"FAILED {record.name}: {type(err).__name__}: {err}", file=sys.stderr)
        return False
    tracker.log_trial(parent_run_id, sweep_id, record, score=result)
    print(json.dumps({"trial": record.name, **result.metrics}))
    return True


def main(argv: Sequence[str] | None = None) -> int:
    from sweeper.tracking import Tracker, TrialRecord

    parser = argparse.ArgumentParser(prog="python -m steps.train", description=__doc__)
    parser.add_argument("--plan", help="URL of a stored plan: train --trials of it")
    parser.add_argument("--trials", help="comma-separated trial indices of the plan")
    parser.add_argument("--split", help="URL of a stored split")
    parser.add_argument("--model", help="model config as JSON (with _target_)")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--experiment")
    parser.add_argument("--parent-run-id")
    parser.add_argument("--sweep-id")
    parser.add_argument("--name", help="run name, e.g. 'lasso alpha=0.1'")
    parser.add_argument("--params", default="{}", help="MLflow params as a JSON object")
    args = parser.parse_args(argv)

    if args.plan:
        if not args.trials:
            parser.error("--plan needs --trials")
        return 1 if train_planned(args.plan, [int(i) for i in args.trials.split(",")]) else 0
    needed = ("split", "model", "tracking_uri", "experiment", "parent_run_id", "sweep_id", "name")
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        parser.error(f"without --plan these are required: {' '.join(missing)}")
    tracker = Tracker(args.tracking_uri, args.experiment)
    record = TrialRecord(name=args.name, params=json.loads(args.params))
    ok = _score_and_log(tracker, args.parent_run_id, args.sweep_id, record,
                        json.loads(args.model), args.split)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
