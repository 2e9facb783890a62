"""Bad input ends in one line naming the problem, a non-zero exit, and nothing half-written."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from support.in_process import batch, hydra_configs
from support.servers import S3Server, data_file, free_port, run_sweeper
from sweeper.core.settings import Settings
from sweeper.errors import SweeperError
from sweeper.launching.sweep import SweepSession

# (overrides, what the error line must say); {dir} is the working directory.
CASES = {
    "missing file": (["data.path={dir}/nope.csv", "data.target=y"], "does not exist"),
    "empty file": (["data.path={dir}/empty.csv", "data.target=y"], "is empty"),
    "binary junk": (["data.path={dir}/junk.csv", "data.target=y"], "not a readable table"),
    "malformed CSV": (
        ["data.path={dir}/ragged.csv", "data.target=y"],
        "not a readable table: Error tokenizing data",
    ),
    "missing target": (
        ["data.path={carseats}", "data.target=nope"],
        "'nope' is not a column; columns: ['Sales'",
    ),
    "text target of a regression": (
        ["data.path={carseats}", "data.target=ShelveLoc", "data.task=regression"],
        "data.target 'ShelveLoc' is not numeric (dtype",
    ),
    "regressor for labels": (
        ["data.path={carseats}", "data.target=ShelveLoc"],
        "model=lasso cannot be fitted to a classification target; models "
        "that fit: hgb_classifier, knn_classifier, logistic, rf_classifier, "
        "svc",
    ),
    "rare class": (
        ["data.path={dir}/rare_class.csv", "data.target=y", "model=logistic"],
        "eval.cv=5 needs 5 training rows of each class; the smallest class has 2",
    ),
    "one class": (
        ["data.path={dir}/one_class.csv", "data.target=y"],
        "data.target 'y' has one class ('a'): a classification needs at least two",
    ),
    "all-missing target": (
        ["data.path={dir}/blank_target.csv", "data.target=y"],
        "'y' is missing in every row",
    ),
    "missing drop column": (
        ["data.path={carseats}", "data.target=Sales", "data.drop=[Sales2]"],
        "['Sales2']",
    ),
    "no path": ([], "data.path is required"),
    "header only": (
        ["data.path={dir}/header.csv", "data.target=y"],
        "header.csv has no rows (columns: ['x', 'y'])",
    ),
    "refused connection": (
        ["data.path=http://127.0.0.1:{port}/x.csv", "data.target=y"],
        "x.csv cannot be reached: Cannot connect to host 127.0.0.1",
    ),
    "test size": (
        ["data.path={carseats}", "data.target=Sales", "data.test_size=1.5"],
        "data.test_size=1.5 must be a fraction between 0 and 1 or a number of rows",
    ),
    "test rows": (
        ["data.path={carseats}", "data.target=Sales", "data.test_size=400"],
        "data.test_size=400 must be",
    ),
    "model value": (
        ["data.path={carseats}", "data.target=Sales", "model.alpha=0.1,-1"],
        "trial 'lasso alpha=-1': InvalidParameterError: The 'alpha' parameter of "
        "Lasso must be a float in the range [0.0, inf). Got -1 instead.",
    ),
    "more folds than rows": (
        ["data.path={dir}/four_rows.csv", "data.target=y", "data.test_size=2", "eval.cv=5"],
        "eval.cv=5 needs at least 5 training rows; the split has 2",
    ),
    # Tables that would give confident nonsense (carseats, altered as named).
    "constant target": (
        ["data.path={dir}/constant.csv", "data.target=Sales"],
        "data.target 'Sales' is 5 in every row: a constant target leaves nothing",
    ),
    "infinite target": (
        ["data.path={dir}/inf_target.csv", "data.target=Sales"],
        "data.target 'Sales' is infinite in 1 rows",
    ),
    "huge target": (
        ["data.path={dir}/huge_target.csv", "data.target=Sales"],
        "data.target 'Sales' reaches 1.627e+301: squared errors of values this large",
    ),
    "infinite feature": (
        ["data.path={dir}/inf_feature.csv", "data.target=Sales"],
        "column 'Price' is infinite in 400 rows: imputation fills missing values",
    ),
    "internal column name": (
        ["data.path={dir}/internal_name.csv", "data.target=Sales"],
        "column '__target__' has the name the stored splits keep the target",
    ),
    "repeated column": (
        ["data.path={dir}/repeated.csv", "data.target=Sales"],
        "has more than one column named 'Price': give each column a name",
    ),
    "too few rows": (
        ["data.path={dir}/three_rows.csv", "data.target=Sales"],
        "data.test_size=0.3 leaves 1 test and 2 training rows of the 3 with a target:"
        " scoring needs at least 2 of each, so at least 7 rows",
    ),
    # Config that reaches outside what it should.
    "model path": (
        ["data.path={carseats}", "data.target=Sales", "model=../../somewhere/evil"],
        "model=../../somewhere/evil: a choice of the config group 'model' names one",
    ),
    "not a trusted module": (
        ["data.path={carseats}", "data.target=Sales", "model._target_=collections.OrderedDict"],
        "model._target_=collections.OrderedDict is refused: a model config "
        "may name classes of scikit-learn or of the modules in trust.modules",
    ),
    "not an estimator": (
        ["data.path={carseats}", "data.target=Sales", "model._target_=sklearn.utils.Bunch"],
        "model._target_ sklearn.utils.Bunch is not a scikit-learn estimator "
        "(it has no fit, get_params, set_params, predict)",
    ),
    "storage root": (
        ["data.path={carseats}", "data.target=Sales", "storage.root=/"],
        "storage.root=/ is / itself: give the store a folder of its own",
    ),
    "negative seed": (
        ["data.path={carseats}", "data.target=Sales", "seed=-1"],
        "seed=-1 must be a whole number from 0 to 4294967295",
    ),
    "no value in any column": (
        ["data.path={dir}/no_values.csv", "data.target=y"],
        "no feature column has a value in the training rows (columns: ['x', 'z'])",
    ),
}


def write_altered_carseats(folder: Path) -> None:
    """The nonsense tables: carseats with one thing wrong in each."""
    table = pd.read_csv(data_file("carseats.csv"))
    table.assign(Sales=5.0).to_csv(folder / "constant.csv", index=False)
    table.assign(Sales=table["Sales"].where(table.index != 7, np.inf)).to_csv(
        folder / "inf_target.csv", index=False
    )
    table.assign(Sales=table["Sales"] * 1e300).to_csv(folder / "huge_target.csv", index=False)
    table.assign(Price=np.inf).to_csv(folder / "inf_feature.csv", index=False)
    table.rename(columns={"Advertising": "__target__"}).to_csv(
        folder / "internal_name.csv", index=False
    )
    text = table.to_csv(index=False).splitlines()
    (folder / "repeated.csv").write_text(
        "\n".join([text[0].replace("Advertising", "Price"), *text[1:]]) + "\n"
    )
    table.head(3).to_csv(folder / "three_rows.csv", index=False)


SOUND_DATA = (
    "model value",
    "more folds than rows",
    "regressor for labels",
    "rare class",
    "not an estimator",
)


def runs_in(workdir: Path) -> int:
    """MLflow runs in the working directory's store, read without MLflow (which would make one)."""
    database = workdir / "mlflow.db"
    if not database.exists():
        return 0
    with contextlib.closing(sqlite3.connect(database)) as connection:
        return int(connection.execute("select count(*) from runs").fetchone()[0])


# Each way a refusal is reached, from the command line: a check of the config before anything
# starts, of the table in the preprocess, of its split against eval.cv and the task, of the
# model values. The other cases are refused on the same paths; they run below the command line.
ON_THE_COMMAND_LINE = (
    "missing file",
    "malformed CSV",
    "missing target",
    "no path",
    "refused connection",
    "regressor for labels",
    "rare class",
    "model value",
    "test size",
    "model path",
    "not an estimator",
    "not a trusted module",
    "storage root",
    "negative seed",
)


def write_tables(folder: Path) -> None:
    (folder / "empty.csv").write_text("")
    (folder / "junk.csv").write_bytes(bytes(range(256)) * 20)
    (folder / "blank_target.csv").write_text("x,y\n1,\n2,\n")
    (folder / "ragged.csv").write_text("x,y\n1,2\n3,4,5,6\n")
    (folder / "header.csv").write_text("x,y\n")
    (folder / "one_class.csv").write_text("x,y\n1,a\n2,a\n3,a\n4,a\n")
    labels = ["a"] * 20 + ["b"] * 20 + ["c"] * 3  # c: 2 training rows, 1 test row
    rare = "".join(f"{i},{label}\n" for i, label in enumerate(labels))
    (folder / "rare_class.csv").write_text("x,y\n" + rare)
    (folder / "four_rows.csv").write_text("x,y\n1,2\n2,4\n3,5\n4,9\n")
    (folder / "no_values.csv").write_text("x,y,z\n" + "".join(f",{i}," + "\n" for i in range(9)))
    write_altered_carseats(folder)


def overrides_of(case: str, folder: Path) -> list[str]:
    """The case's overrides with its tables' paths, and model=lasso unless it names a model."""
    paths = {"dir": folder, "carseats": data_file("carseats.csv"), "port": free_port()}
    filled = [o.format(**paths) for o in CASES[case][0]]
    return filled if any(o.startswith("model=") for o in filled) else [*filled, "model=lasso"]


def nothing_stored(folder: Path, case: str) -> bool:
    if case in SOUND_DATA:  # the split is stored (a cache, reused once the models are fixed)
        return True
    preprocessed = folder / "sweeper-store" / "preprocess"
    return not preprocessed.exists() or not any(preprocessed.iterdir())


@pytest.mark.parametrize("case", ON_THE_COMMAND_LINE)
def test_bad_data_is_named_in_one_line(workdir: Path, case: str) -> None:
    write_tables(workdir)
    result = run_sweeper(["data=csv", *overrides_of(case, workdir), "-m"], cwd=workdir)
    assert result.returncode == 1
    expected = CASES[case][1]
    assert len([x for x in result.stderr.splitlines() if expected in x]) == 1  # one line says it
    said = result.stderr + result.stdout
    assert "Traceback" not in said and "HYDRA_FULL_ERROR" not in said
    assert "progress:" not in said  # nothing ran: no counts of it
    assert not (workdir / "multirun").exists()  # no folder of a sweep that never was
    assert runs_in(workdir) == 0  # found before the sweep's run was opened
    assert nothing_stored(workdir, case)


@pytest.mark.parametrize("case", sorted(set(CASES) - set(ON_THE_COMMAND_LINE)))
def test_bad_data_is_refused_by_the_sweep_before_its_run(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """The same refusal below the command line: the sweep of the composed job, on the local
    executor's worker pool, raises the one-line error the command prints."""
    write_tables(workdir)
    monkeypatch.chdir(workdir)  # the store and mlflow.db, as the command line's defaults
    with hydra_configs():
        refused = batch([["data=csv", *overrides_of(case, workdir)]])
        settings = Settings.of(refused.jobs()[0].cfg)
    with pytest.raises(SweeperError) as error:
        SweepSession(settings).run(refused)
    said = str(error.value)
    assert CASES[case][1] in said and "\n" not in said
    assert runs_in(workdir) == 0
    assert nothing_stored(workdir, case)


def test_unknown_model_is_named(workdir: Path) -> None:
    result = run_sweeper(["model=nope", "-m"], cwd=workdir)
    assert result.returncode != 0
    assert "Could not find 'model/nope'" in result.stderr


def test_unreachable_tracking_server_fails_fast_with_its_uri(workdir: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = run_sweeper(["model=lasso", f"mlflow.tracking_uri={uri}", "-m"], cwd=workdir)
    assert result.returncode != 0
    assert f"MLflow at {uri} cannot be reached: Connection refused" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_bucket_and_unreachable_endpoint_are_named(
    workdir: Path, s3_server: S3Server
) -> None:
    missing = run_sweeper(
        ["model=ridge", "storage.root=s3://no-such-bucket/sweeps", "-m"],
        cwd=workdir,
        env=s3_server.env,
    )
    assert missing.returncode != 0
    assert (
        "storage.root s3://no-such-bucket/sweeps cannot be used: no-such-bucket does not exist"
        in missing.stderr
    )
    closed = f"http://127.0.0.1:{free_port()}"
    no_endpoint = {**s3_server.env, "AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"}
    unreachable = run_sweeper(
        ["model=ridge", "storage.root=s3://bucket/sweeps", "-m"], cwd=workdir, env=no_endpoint
    )
    assert unreachable.returncode != 0
    assert (
        f'cannot be used: Could not connect to the endpoint URL: "{closed}/bucket"'
        in unreachable.stderr
    )
    data = run_sweeper(
        ["model=ridge", "data=csv", "data.path=s3://bucket/sales.csv", "data.target=y", "-m"],
        cwd=workdir,
        env=no_endpoint,
    )
    assert data.returncode != 0
    assert "data.path s3://bucket/sales.csv cannot be reached: Could not connect" in data.stderr
    assert "Traceback" not in missing.stderr + unreachable.stderr + data.stderr
