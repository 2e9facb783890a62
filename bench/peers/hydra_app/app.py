"""The peer a Hydra user writes without the project: every job loads, preprocesses, fits, logs.

    python bench/peers/hydra_app/app.py model=lasso 'model.alpha=range(1,201)' -m \
        hydra/launcher=joblib hydra.launcher.n_jobs=2
"""

from __future__ import annotations

import hydra
import mlflow
import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def load(data: DictConfig) -> tuple[pd.DataFrame, pd.Series]:
    if data.path is None:
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True).frame
    else:
        frame = pd.read_csv(data.path)
    frame = frame.dropna(subset=[data.target])
    return frame.drop(columns=[data.target]), frame[data.target]


def preprocessor(features: pd.DataFrame) -> ColumnTransformer:
    numeric = features.select_dtypes("number").columns
    categorical = features.columns.difference(numeric)
    return ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                categorical,
            ),
        ]
    )


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    features, target = load(cfg.data)
    X_train, X_test, y_train, y_test = train_test_split(
        features, target, test_size=cfg.data.test_size, random_state=cfg.seed
    )
    prep = preprocessor(X_train)
    X_train, X_test = prep.fit_transform(X_train), prep.transform(X_test)
    model = hydra.utils.instantiate(cfg.model)
    model.fit(X_train, y_train)
    predicted = model.predict(X_test)
    mse = float(mean_squared_error(y_test, predicted))

    mlflow.set_tracking_uri(cfg.mlflow.tracking_uri)
    mlflow.set_experiment(cfg.mlflow.experiment)
    with mlflow.start_run():
        params = OmegaConf.to_container(cfg.model)
        mlflow.log_params({k: v for k, v in params.items() if k != "_target_"})
        mlflow.log_metrics(
            {
                "mse": mse,
                "rmse": float(np.sqrt(mse)),
                "mae": float(mean_absolute_error(y_test, predicted)),
                "r2": float(r2_score(y_test, predicted)),
            }
        )
    return mse


if __name__ == "__main__":
    main()
