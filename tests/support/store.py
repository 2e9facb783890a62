"""Reading a local store (`storage.root`) as a test checks it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from sweeper.core.records import TARGET_COLUMN


def baseline_mse(split_dir: Path) -> float:
    """MSE of predicting the training mean: every real model must beat it."""
    train = pd.read_parquet(split_dir / "train.parquet")[TARGET_COLUMN]
    test = pd.read_parquet(split_dir / "test.parquet")[TARGET_COLUMN]
    return float(np.mean((test - train.mean()) ** 2))


def split_dirs(root: Path) -> list[Path]:
    return sorted((root / "preprocess").iterdir())
