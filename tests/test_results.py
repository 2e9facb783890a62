"""What a finished sweep shows people: the compare link, the parent run's artifacts, the best
model (logged and registered only when better), and `python -m sweeper.report`."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from support.browser import CHROMIUM_FLAGS, chromium, render_file
from support.mlflow_view import SweepRuns, sweeps
from support.servers import free_port, run_sweeper, serving, with_database
from sweeper.core.records import TARGET_COLUMN

PNG = b"\x89PNG\r\n\x1a\n"


def compare_link(output: str) -> tuple[str, list[str], list[str]]:
    """The last line's link, split into its address and the runs and experiments it selects."""
    last = output.strip().splitlines()[-1]
    found = re.fullmatch(
        r"Compare the trials: (\S+)/#/compare-runs\?runs=(\S+)&experiments=(\S+)", last
    )
    assert found, f"the last line is not the compare link: {last!r}"
    address, runs, experiments = found.groups()
    return address, json.loads(unquote(runs)), json.loads(unquote(experiments))


def parent_artifacts(tracking_uri: str, sweep: SweepRuns, folder: Path) -> Path:
    client = MlflowClient(tracking_uri)
    return Path(client.download_artifacts(sweep.parent.info.run_id, "", str(folder)))


@dataclass(frozen=True)
class Finished:
    workdir: Path
    stdout: str
    uri: str
    sweep: SweepRuns


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, created_database: Path) -> Finished:
    """One `model=rf,lasso -m` sweep, looked at by the tests below (read-only)."""
    workdir = with_database(tmp_path_factory.mktemp("finished"), created_database)
    done = run_sweeper(["model=rf,lasso", "-m"], cwd=workdir)
    assert done.returncode == 0, done.stderr
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    [sweep] = sweeps(uri, "sweeper")
    assert len(sweep.children) == 9
    return Finished(workdir, done.stdout, uri, sweep)


def test_a_sweep_ends_with_its_compare_link_artifacts_and_best_model(finished: Finished) -> None:
    workdir, uri, sweep = finished.workdir, finished.uri, finished.sweep
    address, runs, experiments = compare_link(finished.stdout)
    assert address == "http://127.0.0.1:5000"  # mlflow ui's own address for a SQLite store
    assert f"Start MLflow's UI with: mlflow ui --backend-store-uri {uri}" in finished.stdout
    assert sorted(runs) == sorted(r.info.run_id for r in sweep.children)
    assert experiments == [sweep.parent.info.experiment_id]
    by_cv = sorted(sweep.children, key=lambda r: r.data.metrics["cv_mse"])
    assert runs == [r.info.run_id for r in by_cv]  # ranked as the table is: by CV MSE

    artifacts = parent_artifacts(uri, sweep, workdir / "downloaded")
    assert (workdir / "mlartifacts").is_dir()  # beside the database, not in some cwd
    with (artifacts / "results" / "results.csv").open() as table:
        rows = list(csv.DictReader(table))
    mse = {r.info.run_id: r.data.metrics["mse"] for r in sweep.children}
    assert [row["run_id"] for row in rows] == runs
    assert all(float(row["mse"]) == mse[row["run_id"]] for row in rows)
    assert [row["rank"] for row in rows] == [str(i) for i in range(1, 10)]
    assert {row["model"] for row in rows} == {"rf", "lasso"}
    # the swept settings are columns: rf's two and lasso's alpha
    assert {"n_estimators", "max_depth", "alpha"} <= set(rows[0])
    html = (artifacts / "results" / "results.html").read_text()
    assert all(r.info.run_name in html for r in sweep.children)
    assert (artifacts / "results" / "report.html").is_file()  # opened in Chromium below
    plots = sorted(p.name for p in (artifacts / "plots").iterdir())
    assert plots == ["cv_mse_by_trial.png", "cv_mse_vs_lasso.png", "cv_mse_vs_rf.png"]
    assert all((artifacts / "plots" / p).read_bytes().startswith(PNG) for p in plots)

    # The best trial's model: on its own run, a Pipeline with a signature on the data's own
    # columns; from the raw test rows it scores what the trial scored.
    best = by_cv[0]
    client = MlflowClient(uri)
    model_uri = client.get_run(best.info.run_id).data.tags["best_model_uri"]
    assert sweep_tag(client, sweep, "best_model_uri") == model_uri
    # Read through this store's client (mlflow.set_tracking_uri would export
    # MLFLOW_TRACKING_URI to every later sweep of this test process).
    logged = client.get_logged_model(model_uri.removeprefix("models:/"))
    assert logged.source_run_id == best.info.run_id
    local = logged.artifact_location.removeprefix("file://")  # a SQLite store: a folder
    model = mlflow.pyfunc.load_model(local)
    assert [name for name, _ in mlflow.sklearn.load_model(local).steps] == ["preprocess", "model"]
    signature = mlflow.models.Model.load(local).signature
    assert signature is not None
    diabetes = ["age", "sex", "bmi", "bp", *(f"s{i}" for i in range(1, 7))]
    assert signature.inputs.input_names() == diabetes
    test = stored_test_split(workdir, "test_raw.parquet")
    predicted = model.predict(test.drop(columns=TARGET_COLUMN))
    refit_mse = float(np.mean((test[TARGET_COLUMN].to_numpy() - predicted) ** 2))
    assert refit_mse == pytest.approx(best.data.metrics["mse"], rel=1e-12)
    # logging the model did not rewrite the trial's run
    after = client.get_run(best.info.run_id)
    assert (after.info.status, after.info.end_time) == ("FINISHED", best.info.end_time)


def sweep_tag(client: MlflowClient, sweep: SweepRuns, key: str) -> str:
    return client.get_run(sweep.parent.info.run_id).data.tags[key]


def stored_test_split(workdir: Path, name: str = "test.parquet") -> pd.DataFrame:
    [split] = (workdir / "sweeper-store" / "preprocess").iterdir()
    return pd.read_parquet(split / name)


def test_register_best_promotes_on_evidence_and_report_reprints_each_sweep(
    workdir: Path,
) -> None:
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    # Ranked on the test rows (eval.cv=0), so each sweep's winner is its lowest test MSE: the
    # decisions below are the registry's alone (champion and challenger on the same test rows).
    register = ["mlflow.register_best=diabetes-regressor", "eval.cv=0"]
    outputs = []
    # A lasso regularised into the mean, then random forests (clearly better), then lassos
    # close to the forests' score (alpha=1: not clearly better, nor worse).
    for models in ("model=lasso model.alpha=30", "model=rf", "model=lasso model.alpha=30,1"):
        done = run_sweeper([*models.split(), *register, "-m"], cwd=workdir)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    weak, rf, lasso = sweeps(uri, "sweeper")
    client = MlflowClient(uri)
    versions = sorted(
        client.search_model_versions("name = 'diabetes-regressor'"), key=lambda v: int(v.version)
    )
    best = [min(r.data.metrics["mse"] for r in s.children) for s in (weak, rf, lasso)]
    # Every sweep's best is a version: the challenger; the champion moved once, on evidence.
    assert [int(v.version) for v in versions] == [1, 2, 3]
    assert [float(v.tags["mse"]) for v in versions] == best
    best_rf = min(rf.children, key=lambda r: r.data.metrics["mse"])
    assert versions[1].run_id == best_rf.info.run_id
    aliases = {
        k: str(v) for k, v in client.get_registered_model("diabetes-regressor").aliases.items()
    }
    assert aliases == {"champion": "2", "challenger": "3", "previous_champion": "1"}
    assert outputs[0].count("Registry: diabetes-regressor version 1 is the champion (mse ") == 1
    promoted = next(x for x in outputs[1].splitlines() if x.startswith("Registry:"))
    assert promoted.startswith(
        f"Registry: diabetes-regressor version 2 is the champion, replacing version 1: mse "
        f"{best[1]:.6g} vs the champion's {best[0]:.6g} on tonight's test rows: "
        f"{best[0] - best[1]:+.3g} (95% interval +"
    )
    assert promoted.endswith("; better at level 0.05")
    kept = next(x for x in outputs[2].splitlines() if x.startswith("Registry:"))
    assert kept.startswith(
        "Registry: kept diabetes-regressor version 2 as champion; version 3 is the challenger: "
        f"mse {best[2]:.6g} vs the champion's {best[1]:.6g}"
    )
    assert abs(best[2] - best[1]) < 0.05 * best[1]  # close: only noise could tell them apart

    # The report, from MLflow: the latest sweep by default, any by its id.
    reused = [row for row in table_and_link(outputs[2]) if "reused" in row]
    assert len(reused) == 1 and "lasso alpha=30 " in reused[0]  # the first sweep had it
    latest = run_sweeper([], cwd=workdir, module="sweeper.report")
    assert latest.returncode == 0, latest.stderr
    assert table_and_link(latest.stdout) == table_and_link(outputs[2])
    assert kept in latest.stdout
    by_id = run_sweeper([rf.sweep_id], cwd=workdir, module="sweeper.report")
    assert by_id.returncode == 0, by_id.stderr
    assert table_and_link(by_id.stdout) == table_and_link(outputs[1])

    # A sweep that never wrote its results table (killed) is read from its trials' runs.
    artifacts = workdir / "mlartifacts" / lasso.parent.info.run_id / "artifacts"
    (artifacts / "results" / "results.csv").unlink()
    from_runs = run_sweeper([lasso.sweep_id], cwd=workdir, module="sweeper.report")
    assert from_runs.returncode == 0, from_runs.stderr
    _, runs, _ = compare_link(from_runs.stdout)
    assert sorted(runs) == sorted(r.info.run_id for r in lasso.children)  # no reused

    missing = run_sweeper(["20990101-000000-abcdef"], cwd=workdir, module="sweeper.report")
    assert missing.returncode == 2
    assert missing.stderr.strip() == (
        "error: sweep 20990101-000000-abcdef is not in experiment 'sweeper' at sqlite:///mlflow.db"
    )

    # The same sweep again: its best (reused) is version 3 already, not registered twice.
    again = run_sweeper(["model=lasso", "model.alpha=30,1", *register, "-m"], cwd=workdir)
    assert again.returncode == 0, again.stderr
    assert kept in again.stdout
    assert len(client.search_model_versions("name = 'diabetes-regressor'")) == 3


def test_report_shows_the_latest_sweep_as_it_ended(finished: Finished) -> None:
    latest = run_sweeper([], cwd=finished.workdir, module="sweeper.report")
    assert latest.returncode == 0, latest.stderr
    assert table_and_link(latest.stdout) == table_and_link(finished.stdout)
    assert len(table_and_link(latest.stdout)) == 9 + 2


def test_the_compare_link_shows_every_trial_and_its_mse_in_chromium(finished: Finished) -> None:
    """Headless Chromium (Debian's `chromium`, which `make test` installs) on `mlflow ui`,
    started with the command the sweep printed."""
    lines = finished.stdout.strip().splitlines()
    start = next(line for line in lines if line.startswith("Start MLflow's UI with: "))
    command = start.removeprefix("Start MLflow's UI with: ").split()
    assert command[:2] == ["mlflow", "ui"]
    port = free_port()  # the printed command on a free port instead of 5000
    ui = [
        str(Path(sys.executable).with_name("mlflow")),
        *command[1:],
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    link = lines[-1].removeprefix("Compare the trials: ")
    link = link.replace("http://127.0.0.1:5000/", f"http://127.0.0.1:{port}/")
    with serving(ui, f"http://127.0.0.1:{port}/health", finished.workdir / "ui.log"):
        page = subprocess.run(
            [chromium(), *CHROMIUM_FLAGS, "--dump-dom", link],
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert page.returncode == 0, page.stderr[-2000:]
    dom = page.stdout
    children = finished.sweep.children
    assert f"Comparing {len(children)} Runs from 1 Experiment" in dom
    for run in children:
        assert run.info.run_name in dom and run.info.run_id in dom
    assert re.search(r">\s*mse\s*<", dom), "the mse metric is not on the page"


def test_the_sweeps_report_renders_in_chromium_with_the_winner_marked(finished: Finished) -> None:
    """results/report.html of a real sweep, opened from disk as MLflow's artifact viewer serves
    it: every figure drawn, no script error, the winner named, starred and first in its table."""
    artifacts = parent_artifacts(finished.uri, finished.sweep, finished.workdir / "for-report")
    page = render_file(artifacts / "results" / "report.html", finished.workdir)
    assert page.errors == []
    by_cv = sorted(finished.sweep.children, key=lambda r: r.data.metrics["cv_mse"])
    winner = by_cv[0].info.run_name
    dom = page.dom
    assert f'The winner: <span class="winner">★ {winner}</span>' in dom
    first_row = dom[dom.index('<tr class="winner-row">') :].split("</tr>")[0]
    assert f"<td>1</td><td>{winner}</td>" in first_row and "★ winner" in first_row
    # Plotly drew each figure: parallel coordinates, and per model its settings and importance
    # (rf: 2 settings, lasso: 1; importance needs 10 trials, so neither model has one here).
    assert dom.count('class="plotly-graph-div') == 3
    assert dom.count('class="main-svg"') >= 3
    assert "log10(alpha)" in dom  # lasso's alpha spans decades: a log axis
    assert f"winner: {winner}" in dom  # the star's legend on its model's panel
    assert "trials drawn" not in dom  # 9 trials: nothing sampled


def table_and_link(output: str) -> list[str]:
    """The table's rows, the best line and the link: what the report must reproduce."""
    lines = output.strip().splitlines()
    rows = [line for line in lines if line.startswith("│")]
    return [*rows, *(line for line in lines if line.startswith(("Best:", "Compare the trials")))]
