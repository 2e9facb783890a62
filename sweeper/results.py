"""The end-of-sweep report: a ranked table, the failures, and where to look in MLflow."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.table import Table

from sweeper.outcome import SweepResult

# A long sweep's table shows its leaders; every trial is in results.json and in MLflow.
MAX_ROWS = 30


def print_results(result: SweepResult, console: Console | None = None) -> None:
    # Logs and pipes get a wide table rather than rich's 80 columns: rows stay greppable.
    console = console or Console(width=None if sys.stdout.isatty() else 160)
    plan = result.plan
    table = Table(title=f"Sweep {plan.sweep_id}: {len(plan.trials)} trials, ranked by test MSE")
    for column in ("rank", "trial", "mse", "rmse", "mae", "r2", "fit s", "status"):
        table.add_column(
            column,
            justify="left" if column in ("trial", "status") else "right",
            no_wrap=column != "trial",
        )
    ranked = result.ranked()
    if len(ranked) > MAX_ROWS:
        table.caption = (
            f"{len(ranked) - MAX_ROWS} more below rank {MAX_ROWS}: every trial is in MLflow "
            "and in the sweep's results.json"
        )
    for rank, outcome in enumerate(ranked[:MAX_ROWS], start=1):
        m = outcome.metrics
        cells = [f"{m[k]:.4g}" if k in m else "" for k in ("mse", "rmse", "mae", "r2")]
        fit = f"{m['fit_seconds']:.2f}" if "fit_seconds" in m else ""
        status = "reused" if outcome.reused else outcome.status
        table.add_row(str(rank), outcome.trial.name, *cells, fit, status)
    console.print(table)
    for outcome in result.ranked():
        if outcome.status != "FINISHED":
            console.print(f"{outcome.status}: {outcome.trial.name}: {outcome.error}", markup=False)
    if result.best is not None:
        console.print(f"Best: {result.best.trial.name} (mse {result.best.mse:.6g})", markup=False)
    console.print(
        f"MLflow: sweep run {result.parent_run_id} in experiment "
        f"'{plan.settings.experiment}' at {_shown_uri(result.tracking_uri)}",
        markup=False,
    )


def _shown_uri(uri: str) -> str:
    if uri.startswith("sqlite:"):
        return f"{uri} (view it: mlflow ui --backend-store-uri {uri})"
    return uri
