"""What a data scientist writes instead of a cross-validated sweep: scikit-learn's GridSearchCV
over a Pipeline of the same preprocessing and the model, on the same split, folds and grid as
sweeper's `eval.cv=5` default, then the winner scored on the test rows. Nothing is logged.
`--halving`: HalvingGridSearchCV (factor 3, resource: rows), what `search=halving` is compared
with.

    python bench/peers/gridsearch.py --data diamonds.csv --target price \
        --model sklearn.linear_model.Lasso --grid '{"alpha": [1, 2, 3]}' --jobs 2
"""

from __future__ import annotations

import argparse
import importlib
import json

import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.metrics import mean_squared_error
from sklearn.model_selection import GridSearchCV, KFold, train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

SEED = 42  # sweeper's default seed: the same split and the same folds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--model", required=True, help="estimator class, module.Class")
    parser.add_argument("--grid", type=json.loads, required=True, help="name → list of values")
    parser.add_argument("--cv", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--halving", action="store_true", help="HalvingGridSearchCV, factor 3")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()

    frame = pd.read_csv(args.data).dropna(subset=[args.target])
    y = frame.pop(args.target)
    seed = args.seed
    X_train, X_test, y_train, y_test = train_test_split(frame, y, test_size=0.3, random_state=seed)
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    preprocess = ColumnTransformer(
        [
            ("numeric", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", max_categories=20, sparse_output=False
                    ),
                ),
                categorical,
            ),
        ]
    )
    module, _, name = args.model.rpartition(".")
    model = getattr(importlib.import_module(module), name)(random_state=seed)
    search_class = GridSearchCV
    options: dict[str, object] = {}
    if args.halving:
        from sklearn.experimental import enable_halving_search_cv  # noqa: F401
        from sklearn.model_selection import HalvingGridSearchCV

        search_class, options = HalvingGridSearchCV, {"factor": 3, "random_state": seed}
    search = search_class(
        Pipeline([("preprocess", preprocess), ("model", model)]),
        {f"model__{key}": values for key, values in args.grid.items()},
        cv=KFold(args.cv, shuffle=True, random_state=seed),
        scoring="neg_mean_squared_error",
        n_jobs=args.jobs,
        **options,
    )
    search.fit(X_train, y_train)
    mse = float(mean_squared_error(y_test, search.predict(X_test)))
    print(f"best {search.best_params_}: cv mse {-search.best_score_:.6g}, test mse {mse:.6g}")


if __name__ == "__main__":
    main()
