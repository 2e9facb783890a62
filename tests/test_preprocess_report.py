"""What the preprocess step says it did to the data, in this process, on tables made here."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from steps.preprocess import preprocess
from support.servers import data_file, preprocess_recipe

pytestmark = pytest.mark.unit

STANDARD = preprocess_recipe("standard")


def small_table(folder: Path, rows: int) -> Path:
    """carseats.csv's first rows, a few of them without Sales, with a 40-level text column."""
    table = pd.read_csv(data_file("carseats.csv")).head(rows)
    table.loc[[0, 5, 9], "Sales"] = np.nan
    table["Code"] = [f"c{i % 40}" for i in range(rows)]
    path = folder / "small.csv"
    table.to_csv(path, index=False)
    return path


def test_a_small_test_set_and_many_levels_are_said_and_counted(tmp_path: Path) -> None:
    path = small_table(tmp_path, 60)
    data = {"path": str(path), "target": "Sales", "drop": [], "test_size": 0.25}
    split = preprocess(data, STANDARD, 42, str(tmp_path / "store"))
    assert split.report == {
        "rows_in": 60,
        "rows_dropped_missing_target": 3,
        "rows_train": 42,
        "rows_test": 15,
        "columns_in": 11,
        "features_out": 7 + 3 + 2 + 2 + 20,  # numbers, 3 texts, Code's 20
    }
    assert any("the test set has only 15 rows (data.test_size=0.25)" in w for w in split.warnings)
    [grouped] = [w for w in split.warnings if "'Code'" in w]
    assert "the 19 most frequent are kept" in grouped and "max_categories=20" in grouped
    # Stored beside the split, and given back as they were when the split is reused.
    meta = json.loads(Path(split.url, "meta.json").read_text())
    assert meta["report"] == split.report and meta["warnings"] == list(split.warnings)
    again = preprocess(data, STANDARD, 42, str(tmp_path / "store"))
    assert again.reused and (again.report, again.warnings) == (split.report, split.warnings)


def test_every_level_is_kept_when_asked(tmp_path: Path) -> None:
    path = small_table(tmp_path, 400)  # each of the 40 levels 10 times: all in the training rows
    data = {"path": str(path), "target": "Sales", "drop": [], "test_size": 0.3}
    split = preprocess(data, {**STANDARD, "max_categories": None}, 42, str(tmp_path / "store"))
    assert split.report["features_out"] == 7 + 3 + 2 + 2 + 40
    assert split.warnings == ()  # 120 test rows, no level grouped
