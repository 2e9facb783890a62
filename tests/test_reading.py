"""Tables as spreadsheets write them are read as the numbers they hold: another delimiter, a
decimal comma, thousands separators; what was done is said once, as the split's warnings, and
scikit-learn says nothing a user cannot act on."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from steps.preprocess import preprocess
from support.servers import data_file, preprocess_recipe
from sweeper.core import storage
from sweeper.trial.fitting import read_raw_test

pytestmark = pytest.mark.unit


def stored(path: Path, target: str, root: Path) -> tuple[dict[str, object], pd.DataFrame]:
    data = {"name": "csv", "path": str(path), "target": target, "drop": [], "test_size": 0.3}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning of pandas or scikit-learn fails the test
        split = preprocess(data, preprocess_recipe(), seed=3, storage_root=str(root), cv=5)
    meta = json.loads(Path(storage.join(split.url, storage.META)).read_text())
    X, y = read_raw_test(split.url)
    return meta, X.assign(target=y)


@pytest.fixture(scope="module")
def carseats() -> pd.DataFrame:
    return pd.read_csv(data_file("carseats.csv"))


def test_a_semicolon_table_with_decimal_commas(carseats: pd.DataFrame, tmp_path: Path) -> None:
    european = carseats.map(lambda v: str(v).replace(".", ",") if isinstance(v, float) else v)
    path = tmp_path / "seats.csv"
    european.to_csv(path, sep=";", index=False)
    assert "9,5;138" in path.read_text()  # as such a spreadsheet writes it
    meta, rows = stored(path, "Sales", tmp_path)
    assert meta["task"] == "regression" and meta["schema"]["Sales"] == "double"
    assert meta["warnings"][:2] == [
        f"data.path {path} is read as separated by ';'",
        "column 'Sales' has numbers written with decimal commas ('9,5'): read as numbers",
    ]
    assert set(rows["target"]) <= set(carseats["Sales"])


def test_thousands_separators_in_a_target_make_numbers(
    carseats: pd.DataFrame, tmp_path: Path
) -> None:
    written = carseats.assign(Sales=(carseats["Sales"] * 1000).round().map("{:,.0f}".format))
    path = tmp_path / "thousands.csv"
    written.to_csv(path, index=False)
    assert '"9,500"' in path.read_text()
    meta, rows = stored(path, "Sales", tmp_path)
    assert meta["task"] == "regression"  # not 300-odd classes of text
    assert "column 'Sales' has numbers written with thousands separators ('9,500')" in str(
        meta["warnings"]
    )
    assert set(rows["target"]) <= set((carseats["Sales"] * 1000).round())


def test_a_column_without_values_is_left_out_in_one_line(
    carseats: pd.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "gap.csv"
    carseats.assign(Empty=float("nan")).to_csv(path, index=False)
    meta, _ = stored(path, "Sales", tmp_path)
    assert meta["warnings"] == [
        "column 'Empty' has no value in any training row: left out of the features"
    ]
    assert "Empty" not in meta["inputs"]
