"""What a sweep prints or writes cannot be turned against its reader: data cannot forge a line
or send a terminal escape, a spreadsheet opens its CSVs as text, and a printed command pastes
as the command it says."""

from __future__ import annotations

import csv
import shlex
from pathlib import Path

import pandas as pd

from support.servers import data_file, run_sweeper, with_database

# A column name that retitles a terminal (OSC 0), colours it (CSI) and starts a line of its own.
EVIL_COLUMN = "Shelve\x1b]0;pwned\x07Loc\x1b[31m\nFORGED: all good"
FORMULA = "=cmd|' /C calc'!A0"


def evil_table(folder: Path) -> Path:
    table = pd.read_csv(data_file("carseats.csv")).rename(columns={"ShelveLoc": EVIL_COLUMN})
    table["US"] = table["US"].replace({"Yes": FORMULA})
    path = folder / "evil.csv"
    table.to_csv(path, index=False)
    return path


def test_data_cannot_forge_a_line_or_send_an_escape(workdir: Path) -> None:
    data = ["data=csv", f"data.path={evil_table(workdir)}", "eval.cv=0", "-m"]
    # Two levels kept of the column's three: the sweep warns about it, by its name.
    regression = run_sweeper(
        [*data, "data.target=Sales", "model=lasso", "preprocess.max_categories=2"], cwd=workdir
    )
    assert regression.returncode == 0, regression.stderr[-2000:]
    printed = regression.stdout + regression.stderr
    assert "\x1b" not in printed and "\x07" not in printed
    assert not [line for line in printed.splitlines() if line.startswith("FORGED")]
    warned = [line for line in printed.splitlines() if "has 3 levels" in line]
    assert warned and "Shelve\\x1b]0;pwned\\x07Loc\\x1b[31m\\nFORGED: all good" in warned[0]

    classification = run_sweeper([*data, "data.target=US", "model=logistic"], cwd=workdir)
    assert classification.returncode == 0, classification.stderr[-2000:]
    [report] = workdir.glob("mlartifacts/**/classification_report.csv")
    with report.open(newline="") as file:
        cells = {row[0]: row for row in csv.reader(file)}
    assert "'" + FORMULA in cells and FORMULA not in cells  # opened as text, not a formula
    assert cells["No"][1] != ""  # the other rows as they were: numbers stay numbers
    float(cells["No"][1])


def test_the_printed_mlflow_ui_command_pastes_as_itself(
    empty_workdir: Path, created_database: Path
) -> None:
    folder = empty_workdir / "ui$(touch x) `id`; 'q'"
    folder.mkdir()
    with_database(folder, created_database)
    done = run_sweeper(["model=lasso", "model.alpha=1", "eval.cv=0", "-m"], cwd=folder)
    assert done.returncode == 0, done.stderr[-2000:]
    [line] = [x for x in done.stdout.splitlines() if x.startswith("Start MLflow's UI with: ")]
    words = shlex.split(line.removeprefix("Start MLflow's UI with: "))  # as a POSIX shell would
    assert words == ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{folder}/mlflow.db"]
