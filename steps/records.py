"""What the steps hand back: plain records, importable without pandas or scikit-learn, so a
process that only schedules steps (the local sweep's main process) never loads them."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_COLUMN = "__target__"  # the target's column in a stored split's tables


@dataclass(frozen=True)
class StoredSplit:
    url: str  # folder holding train.parquet, test.parquet and meta.json
    key: str
    reused: bool  # True when an earlier run had already stored this split


@dataclass(frozen=True)
class TrialScore:
    metrics: dict[str, float]  # mse, rmse, mae, r2 on the test split; fit_seconds
    started_ms: int
    ended_ms: int
