"""What a scikit-learn user would write by hand to check a sweep's numbers: the raw training rows
scikit-learn's own split cuts, and the standard recipe (conf/preprocess/standard.yaml) spelled
out as a ColumnTransformer, to put in a Pipeline with the model."""

from __future__ import annotations

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def training_rows(
    frame: pd.DataFrame, target: str, seed: int, test_size: float = 0.3
) -> tuple[pd.DataFrame, pd.Series]:
    """The raw training rows and their target (stratified by class for a label target)."""
    X = frame.drop(columns=target)
    y = frame[target]
    stratify = None if pd.api.types.is_numeric_dtype(y) else y
    X_train, _, y_train, _ = train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=stratify
    )
    return X_train, y_train


def standard_recipe(X: pd.DataFrame) -> ColumnTransformer:
    """Median-imputed, standardised numbers; most-frequent-imputed, one-hot text."""
    numbers = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in numbers]
    return ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                text,
            ),
        ]
    )
