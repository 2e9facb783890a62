"""How a sweep chooses: by cross-validation on the training rows, and across seeds by the mean of
each configuration; the test rows only report the winner."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import numpy as np
import pytest
import scipy.stats
from mlflow.tracking import MlflowClient

from support.mlflow_view import sweeps
from support.servers import run_sweeper

ALPHAS = ("0.01", "0.03", "0.1", "0.3", "1", "3", "10", "30", "100")


def test_three_seeds_of_nine_configurations_are_ranked_by_their_means(workdir: Path) -> None:
    done = run_sweeper(
        ["model=lasso", f"model.alpha={','.join(ALPHAS)}", "seed=1,2,3", "-m"], cwd=workdir
    )
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    [sweep] = sweeps(uri, "sweeper")
    assert len(sweep.children) == 27
    # What MLflow holds, per configuration: the three seeds' CV and test MSE.
    by_alpha: dict[float, list[dict[str, float]]] = {}
    for run in sweep.children:
        by_alpha.setdefault(float(run.data.params["model.alpha"]), []).append(run.data.metrics)
    assert sorted(by_alpha) == sorted(map(float, ALPHAS))
    assert {len(v) for v in by_alpha.values()} == {3}

    client = MlflowClient(uri)
    local = client.download_artifacts(sweep.parent.info.run_id, "results/configs.csv")
    rows = list(csv.DictReader(Path(local).read_text().splitlines()))
    assert len(rows) == 9
    for row in rows:
        seeds = by_alpha[float(row["alpha"])]
        assert row["seeds"] == "3"
        assert row["configuration"] == f"lasso alpha={float(row['alpha']):.4g}"
        cv = [m["cv_mse"] for m in seeds]
        assert float(row["mean_cv_mse"]) == pytest.approx(statistics.fmean(cv))
        assert float(row["std_cv_mse"]) == pytest.approx(statistics.stdev(cv))
        assert float(row["mean_mse"]) == pytest.approx(statistics.fmean(m["mse"] for m in seeds))
    means = [float(r["mean_cv_mse"]) for r in rows]
    assert means == sorted(means)

    # The printed table ranks configurations, best mean first; the best model is the best
    # configuration's best seed.
    winner = rows[0]["configuration"]
    printed = " ".join(done.stdout.split())  # the table's title may wrap
    assert "9 configurations (27 trials), ranked by the mean over their seeds" in printed
    assert f"Best: {winner} (mean cv_mse " in done.stdout and "over 3 seeds" in done.stdout
    [first_row] = [line for line in done.stdout.splitlines() if line.startswith("│    1 │")]
    assert winner in first_row and "3/3" in first_row
    chosen = [r for r in sweep.children if r.info.run_name.startswith(f"{winner} seed=")]
    best_seed = min(chosen, key=lambda r: r.data.metrics["cv_mse"])
    model_uri = client.get_run(sweep.parent.info.run_id).data.tags["best_model_uri"]
    assert client.get_run(best_seed.info.run_id).data.tags["best_model_uri"] == model_uri

    # Read back from MLflow later, the same configurations table and best line.
    report = run_sweeper([], cwd=workdir, module="sweeper.report")
    assert report.returncode == 0, report.stderr

    def table(text: str) -> list[str]:
        return [line for line in text.splitlines() if line.startswith(("│", "Best: "))]

    assert table(report.stdout) == table(done.stdout) and len(table(done.stdout)) == 10

    # Which configurations the folds cannot tell from the best: the corrected resampled t-test
    # (Nadeau and Bengio, as scikit-learn's model-comparison example computes it) over every fold
    # of every seed, worked out here from MLflow's per-fold metric steps.
    def fold_mse(run_id: str) -> list[float]:
        history = client.get_metric_history(run_id, "fold_mse")
        return [m.value for m in sorted(history, key=lambda m: m.step)]

    def per_seed(configuration: str) -> dict[str, list[float]]:
        runs = [r for r in sweep.children if r.info.run_name.startswith(f"{configuration} seed=")]
        return {r.data.params["seed"]: fold_mse(r.info.run_id) for r in runs}

    best_folds = per_seed(winner)
    assert {len(f) for f in best_folds.values()} == {5}
    verdicts = {}
    for row in rows[1:]:
        theirs = per_seed(row["configuration"])
        differences = np.concatenate(
            [np.subtract(theirs[seed], best_folds[seed]) for seed in best_folds]
        )
        n = len(differences)  # 5 folds x 3 seeds
        corrected = np.var(differences, ddof=1) * (1 / n + 1 / 4)  # 1/5 held out, 4/5 fitted
        p = float(scipy.stats.t.sf(differences.mean() / np.sqrt(corrected), n - 1))
        assert float(row["p_worse_than_best"]) == pytest.approx(p, rel=1e-9)
        verdicts[row["configuration"]] = row["tied_with_best"]
        assert row["tied_with_best"] == str(p >= 0.05)
    assert rows[0]["p_worse_than_best"] == "1.0" and rows[0]["tied_with_best"] == "True"
    # Both verdicts occur: near alphas tie with the best, alpha=100 (the mean) is worse.
    assert verdicts["lasso alpha=100"] == "False" and "True" in verdicts.values()
    tied = [r["configuration"] for r in rows if r["tied_with_best"] == "True"]
    assert f"A tie at the top: {len(tied) - 1} more not significantly worse" in printed


def test_without_folds_the_test_rows_rank_and_the_table_says_so(workdir: Path) -> None:
    done = run_sweeper(["model=lasso", "eval.cv=0", "-m"], cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    printed = " ".join(done.stdout.split())  # the table's title may wrap
    assert "ranked by test MSE (eval.cv=0: chosen on the rows it is scored on)" in printed
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    assert not any(k.startswith("cv_") for r in sweep.children for k in r.data.metrics)
    best = min(sweep.children, key=lambda r: r.data.metrics["mse"])
    assert sweep.parent.data.metrics["best_mse"] == best.data.metrics["mse"]
    assert sweep.parent.data.params["ranked_by"] == "mse"
    # The same grid with folds is new work (other metrics): not reused from the run without.
    folds = run_sweeper(["model=lasso", "-m"], cwd=workdir)
    assert folds.returncode == 0, folds.stderr[-3000:]
    assert "(reused)" not in folds.stdout and "│ reused" not in folds.stdout


def test_r2_is_maximised_and_optuna_must_be_told(workdir: Path) -> None:
    done = run_sweeper(["model=lasso", "eval.metric=r2", "-m"], cwd=workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    [sweep] = sweeps(f"sqlite:///{workdir / 'mlflow.db'}", "sweeper")
    best = max(sweep.children, key=lambda r: r.data.metrics["cv_r2"])
    assert f"Best: {best.info.run_name} (cv_r2 " in done.stdout
    assert sweep.parent.data.metrics["best_cv_r2"] == best.data.metrics["cv_r2"]
    wrong = run_sweeper(
        ["hydra/sweeper=optuna", "hparams_search=lasso_optuna", "eval.metric=r2"], cwd=workdir
    )
    assert wrong.returncode == 1
    assert (
        "hydra.sweeper.direction=minimize, but trials return cv_r2 (eval.metric=r2), which is "
        "maximized: set hydra.sweeper.direction=maximize"
    ) in wrong.stderr
