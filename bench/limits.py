"""The floors a sweep tool cannot beat on this machine, measured directly (no sweep tool involved).

    python bench/limits.py mlflow --runs 200 --uri sqlite:///mlflow.db --spawned-at <epoch s>
    python bench/limits.py fits --data diamonds.csv --target price --spawned-at <epoch s> \
        --grid '{"n_estimators": [20], "max_depth": [4, 6], "min_samples_leaf": [1, 5]}'

`mlflow`: interpreter start-up to a ready MLflow client, then MLflow's own cost of logging N runs
(create, one log_batch of the trial's params and metrics, terminate) with its defaults.
`fits`: start-up, the project's preprocess step once, then every random-forest config fitted one
after another on one thread, and once more with one process per core fitting at the same time
(longest first): on a real machine cores share caches and memory bandwidth, so Σ fit / cores is
not quite reachable. Prints the seconds of each phase as JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor


def mlflow_floor(uri: str, runs: int, spawned_at: float) -> dict[str, float]:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("floor")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment("floor")
    ready = time.time()
    for index in range(runs):
        run = client.create_run(experiment_id, run_name=f"lasso alpha={index + 1}")
        now = int(time.time() * 1000)
        metrics = [Metric(k, 1.0 / (index + 1), now, 0) for k in ("mse", "rmse", "mae", "r2")]
        params = [Param("alpha", str(index + 1)), Param("max_iter", "10000")]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)
    return {"startup_s": ready - spawned_at, "logging_s": time.time() - ready}


def fit_floor(data: str, target: str, grid: dict[str, list], spawned_at: float) -> dict[str, float]:
    import sklearn.ensemble  # noqa: F401  (start-up: what a trial needs loaded)
    from threadpoolctl import threadpool_limits

    from steps.preprocess import preprocess
    from sweeper.trial.fitting import load_split

    threadpool_limits(1)
    ready = time.time()
    configs = [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]
    standard = {
        "impute_numeric": "median",
        "impute_categorical": "most_frequent",
        "scale": "standard",
    }  # (conf/preprocess/standard.yaml)
    with tempfile.TemporaryDirectory() as root:
        split = preprocess({"path": data, "target": target, "test_size": 0.3}, standard, 42, root)
        load_split(split.url)
        preprocessed = time.time()
        fits = [_fit(split.url, params) for params in configs]
        longest_first = [configs[i] for i in sorted(range(len(fits)), key=lambda i: -fits[i])]
        cores = os.cpu_count() or 1
        context = multiprocessing.get_context("fork")  # workers inherit the loaded split
        with ProcessPoolExecutor(cores, mp_context=context) as pool:
            tic = time.perf_counter()
            parallel = list(pool.map(_fit, [split.url] * len(configs), longest_first))
            parallel_wall = time.perf_counter() - tic
    return {
        "startup_s": ready - spawned_at,
        "preprocess_s": preprocessed - ready,
        "fit_sum_s": sum(fits),
        "fit_max_s": max(fits),
        "fit_sum_parallel_s": sum(parallel),
        "fit_parallel_wall_s": parallel_wall,
    }


def _fit(split_url: str, params: dict) -> float:
    from sklearn.ensemble import RandomForestRegressor

    from sweeper.trial.fitting import load_split

    arrays = load_split(split_url)  # cached in this process
    model = RandomForestRegressor(random_state=42, n_jobs=1, **params)
    tic = time.perf_counter()
    model.fit(arrays.X_train, arrays.y_train)
    return time.perf_counter() - tic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("floor", choices=["mlflow", "fits"])
    parser.add_argument("--spawned-at", type=float, required=True)
    parser.add_argument("--uri")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--data")
    parser.add_argument("--target")
    parser.add_argument("--grid", type=json.loads)
    args = parser.parse_args()
    if args.floor == "mlflow":
        result = mlflow_floor(args.uri, args.runs, args.spawned_at)
    else:
        result = fit_floor(args.data, args.target, args.grid, args.spawned_at)
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
