"""The original pipeline's model container: read the split's CSVs, fit one model per setting,
report its test MSE and log it to MLflow, one setting after another.

    python bench/peers/article/train.py --split split/ --model sklearn.linear_model.Lasso \
        --grid '{"alpha": [1, 2, 3]}'
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", type=Path, required=True)
    parser.add_argument("--model", required=True, help="estimator class, module.Class")
    parser.add_argument("--grid", type=json.loads, required=True, help="name → list of values")
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    args = parser.parse_args()
    X_train = pd.read_csv(args.split / "X_train.csv").to_numpy()
    X_test = pd.read_csv(args.split / "X_test.csv").to_numpy()
    y_train = pd.read_csv(args.split / "y_train.csv").iloc[:, 0].to_numpy()
    y_test = pd.read_csv(args.split / "y_test.csv").iloc[:, 0].to_numpy()
    module, _, name = args.model.rpartition(".")
    estimator = getattr(importlib.import_module(module), name)

    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_experiment("article")
    for values in itertools.product(*args.grid.values()):
        params = dict(zip(args.grid, values, strict=True))
        model = estimator(random_state=42, **params).fit(X_train, y_train)
        predicted = model.predict(X_test)
        mse = float(mean_squared_error(y_test, predicted))
        print(f"{name} {params}: Mean Squared Error {mse:.4f}")
        with mlflow.start_run(run_name=f"{name} {params}"):
            mlflow.log_params(params)
            mlflow.log_metrics(
                {
                    "mse": mse,
                    "rmse": float(np.sqrt(mse)),
                    "mae": float(mean_absolute_error(y_test, predicted)),
                    "r2": float(r2_score(y_test, predicted)),
                }
            )


if __name__ == "__main__":
    main()
