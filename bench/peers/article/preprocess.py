"""The original pipeline's first container: read the data, split it, scale it, write CSVs.

python bench/peers/article/preprocess.py --data diamonds.csv --target price --out split/
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", help="a CSV; the bundled diabetes data set when left out")
    parser.add_argument("--target", default="target")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.data:
        frame = pd.read_csv(args.data)
    else:
        from sklearn.datasets import load_diabetes

        frame = load_diabetes(as_frame=True).frame
    frame = frame.dropna(subset=[args.target])
    features = pd.get_dummies(frame.drop(columns=[args.target]), dtype=float)
    features = features.fillna(features.median())
    X_train, X_test, y_train, y_test = train_test_split(
        features, frame[args.target], test_size=0.3, random_state=42
    )
    scaler = StandardScaler().fit(X_train)
    args.out.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(scaler.transform(X_train)).to_csv(args.out / "X_train.csv", index=False)
    pd.DataFrame(scaler.transform(X_test)).to_csv(args.out / "X_test.csv", index=False)
    y_train.to_csv(args.out / "y_train.csv", index=False)
    y_test.to_csv(args.out / "y_test.csv", index=False)


if __name__ == "__main__":
    main()
