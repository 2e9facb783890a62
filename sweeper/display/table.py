"""The end-of-sweep report: a ranked table, the failures, and the MLflow comparison link.

Printed when a sweep ends (from its SweepResult) and by `python -m sweeper.report` (from MLflow).
The last line is the link to MLflow's compare page with every trial of the sweep selected.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.table import Table

from sweeper.core import storage
from sweeper.core.metrics import FIT_SECONDS, Ranking, cv_mean, cv_std
from sweeper.core.outcomes import Configuration, SweepResult
from sweeper.core.records import Status
from sweeper.display.trial_lines import FAILURES_SHOWN
from sweeper.safe_text import command_line, redact, shown

# A long sweep's table shows its leaders; every trial is in MLflow, results/results.csv included.
MAX_ROWS = 30
REUSED = "reused"  # a row's status when an earlier sweep finished the trial
STOPPED = "stopped"  # search=halving stopped it below the last rung: scored on less
SCORED = (Status.FINISHED.value, REUSED)
UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default


@dataclass(frozen=True)
class Row:
    """One trial as the table shows it."""

    trial: str
    metrics: Mapping[str, float]
    status: str  # a Status, or REUSED (finished by an earlier sweep)
    run_id: str | None = None
    error: str | None = None
    p_worse: float | None = None  # that its configuration is worse than the best (None: untested)
    rung: str = ""  # search=halving's last rung for it: "1 (72 rows)"


@dataclass(frozen=True)
class ConfigRow:
    """One configuration (trials differing only in seed or split settings) as the table shows
    it: the mean and spread over its seeds of the ranking metric and of test mse."""

    name: str
    seeds: int  # its finished trials
    trials: int
    means: Mapping[str, float | None]
    stds: Mapping[str, float | None]
    p_worse: float | None = None  # that it is worse than the best (None: untested)


@dataclass(frozen=True)
class Report:
    """A sweep as people read it: ranked rows and where its runs are in MLflow."""

    sweep_id: str
    rows: Sequence[Row]  # best first
    tracking_uri: str
    experiment: str
    experiment_id: str
    parent_run_id: str
    ranking: Ranking = field(default_factory=Ranking)
    notes: Sequence[str] = field(default_factory=tuple)
    configurations: Sequence[ConfigRow] = ()  # when several seeds ran: what is ranked
    tie_level: float = 0.05  # eval.tie_level: worse than the best only below this p-value
    chosen: str | None = None  # eval.choose=simplest's trial, when it is not the top row

    @classmethod
    def of(cls, result: SweepResult) -> Report:
        versus = result.versus_best()
        rows = [
            Row(
                o.trial.name,
                o.metrics,
                o.shown_status,
                o.run_id,
                o.error,
                versus.get(Configuration.key_and_name(o.trial)[1]) if o.ok else None,
                o.rung_reached,
            )
            for o in result.ranked()
        ]
        keys = dict.fromkeys([result.ranking.key, result.ranking.metric])
        configurations = [
            ConfigRow(
                c.name,
                len(c.finished),
                len(c.outcomes),
                {k: c.mean(k) for k in keys},
                {k: c.std(k) for k in keys},
                versus.get(c.name),
            )
            for c in (result.configurations() if result.seeded else ())
        ]
        plan = result.plan
        return cls(
            plan.sweep_id,
            rows,
            result.tracking_uri,
            plan.settings.mlflow.experiment,
            result.experiment_id,
            result.parent_run_id,
            result.ranking,
            tuple(result.notes),
            configurations,
            plan.settings.eval.tie_level,
            _chosen(result, rows),
        )

    def tied(self) -> list[str]:
        """What the best cannot be told apart from, by the folds: the configurations (or
        trials) not significantly worse than it, the best first; one name when it stands out."""
        ranked: Sequence[Row | ConfigRow] = self.configurations or self.rows
        names = [
            r.name if isinstance(r, ConfigRow) else r.trial
            for r in ranked
            if r.p_worse is not None and r.p_worse >= self.tie_level
        ]
        return names


def _chosen(result: SweepResult, rows: Sequence[Row]) -> str | None:
    best = result.best
    if result.plan.settings.eval.choose != "simplest" or best is None:
        return None
    return None if rows and rows[0].trial == best.trial.name else best.trial.name


def print_results(result: SweepResult, console: Console | None = None) -> None:
    print_report(Report.of(result), console)


def print_report(report: Report, console: Console | None = None) -> None:
    # Logs and pipes get a wide table rather than rich's 80 columns: rows stay greppable.
    console = console or Console(width=None if sys.stdout.isatty() else 200)
    rows, ranking = report.rows, report.ranking
    if report.configurations:
        console.print(_configurations_table(report))
    else:
        console.print(_trials_table(report))

    def line(text: str) -> None:  # soft wrap: a long link stays one line, whole and clickable
        console.print(shown(text), markup=False, highlight=False, soft_wrap=True)

    unscored = [row for row in rows if row.status not in (*SCORED, STOPPED)]
    for row in unscored[:FAILURES_SHOWN]:
        line(f"{row.status}: {row.trial}: {row.error}")
    if len(unscored) > FAILURES_SHOWN:
        line(
            f"… and {len(unscored) - FAILURES_SHOWN} more not scored: results/results.csv "
            "under the sweep's run lists each with its error"
        )
    stopped = sum(r.status == STOPPED for r in rows)
    if stopped:
        how = "below the last rung" if any(r.rung for r in rows) else "before their last fold"
        line(
            f"Stopped early: {stopped} of {len(rows)} {how} (their scores are on less: "
            "never the best)"
        )
    scored = [r for r in rows if r.status in SCORED and ranking.key in r.metrics]
    if report.configurations:
        best = report.configurations[0]
        mean, spread = best.means[ranking.key], best.stds[ranking.key]
        scores = f"mean {ranking.key} {mean:.6g}" + (f" ± {spread:.3g}" if spread else "")
        line(
            f"Best: {best.name} ({scores} over {best.seeds} seeds; mean test {ranking.metric} "
            f"{best.means[ranking.metric] or math.nan:.6g})"
        )
    elif scored:
        line(f"Best: {scored[0].trial} ({best_scores(scored[0].metrics, ranking)})")
    chosen = next((r for r in scored if r.trial == report.chosen), None)
    if chosen is not None:
        line(
            f"Chosen: {chosen.trial} ({best_scores(chosen.metrics, ranking)}), the simplest "
            "within one standard error of the best (eval.choose=simplest): its model is logged"
        )
    tied = report.tied()
    if len(tied) > 1:
        others = ", ".join(tied[1:6]) + (f" and {len(tied) - 6} more" if len(tied) > 6 else "")
        line(
            f"A tie at the top: {len(tied) - 1} more not significantly worse than the best on "
            f"the shared folds (corrected t-test, eval.tie_level={report.tie_level:g}): {others}"
        )
    for note in report.notes:
        line(note)
    line(
        f"MLflow: sweep run {report.parent_run_id} in experiment '{report.experiment}' "
        f"at {redact(report.tracking_uri)}"
    )
    address, start = ui_address(report.tracking_uri)
    run_ids = [r.run_id for r in rows if r.run_id]
    if address is None or not report.experiment_id or not run_ids:
        return
    if start:
        line(f"Start MLflow's UI with: {start}")
    line(compare_line(address, run_ids, report.experiment_id))


def _configurations_table(report: Report) -> Table:
    ranking, configs = report.ranking, report.configurations
    trials = sum(c.trials for c in configs)
    title = (
        f"Sweep {report.sweep_id}: {len(configs)} configurations ({trials} trials), ranked "
        f"by the mean over their seeds of {ranking.describe()}"
    )
    table = Table(title=title)
    ranked_by = f"mean {ranking.key} (± std)"
    test = f"mean test {ranking.metric} (± std)"
    compared = any(c.p_worse is not None for c in configs)
    versus = [VERSUS] if compared else []
    for column in ("rank", "configuration", "seeds", *dict.fromkeys([ranked_by, test]), *versus):
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for rank, config in enumerate(configs[:MAX_ROWS], start=1):
        keys = dict.fromkeys([ranking.key, ranking.metric])
        cells = [_mean_and_spread(config, key) for key in keys]
        if compared:
            cells.append(versus_best(config.p_worse, rank, report.tie_level))
        table.add_row(str(rank), shown(config.name), f"{config.seeds}/{config.trials}", *cells)
    return table


VERSUS = "vs best"  # the column that says which rows the folds cannot tell from the best


def versus_best(p_worse: float | None, rank: int, level: float) -> str:
    """ "best", "tie p=0.41" or "worse p=0.003": the row against the best, on their folds."""
    if p_worse is None:
        return ""
    if rank == 1:
        return "best"
    return f"{'tie' if p_worse >= level else 'worse'} p={p_worse:.2g}"


def _mean_and_spread(config: ConfigRow, key: str) -> str:
    mean, spread = config.means.get(key), config.stds.get(key)
    if mean is None:
        return ""
    return f"{mean:.4g} ± {spread:.3g}" if spread else f"{mean:.4g}"


def _trials_table(report: Report) -> Table:
    rows, ranking = report.rows, report.ranking
    title = f"Sweep {report.sweep_id}: {len(rows)} trials, ranked by {ranking.describe()}"
    table = Table(title=title)
    # The CV column ranks; the test columns are the held-out rows no choice was made on.
    cv_column = [f"cv {ranking.metric} (± std)"] if ranking.cv else []
    test_columns = [f"test {m}" if ranking.cv else m for m in ranking.metrics]
    compared = any(r.p_worse is not None for r in rows)
    versus = [VERSUS] if compared else []
    rungs = ["rung"] if any(r.rung for r in rows) else []
    for column in ("rank", "trial", *cv_column, *versus, *rungs, *test_columns, "fit s", "status"):
        table.add_column(
            column,
            justify="left" if column in ("trial", "status") else "right",
            no_wrap=column != "trial",
        )
    if len(rows) > MAX_ROWS:
        table.caption = (
            f"{len(rows) - MAX_ROWS} more below rank {MAX_ROWS}: every trial is in MLflow "
            "and in results/results.csv under the sweep's run"
        )
    for rank, row in enumerate(rows[:MAX_ROWS], start=1):
        m = row.metrics
        cells = [f"{m[k]:.4g}" if k in m else "" for k in ranking.metrics]
        if compared:
            cells.insert(0, versus_best(row.p_worse, rank, report.tie_level))
        if ranking.cv:
            mean, std = cv_mean(ranking.metric), cv_std(ranking.metric)
            cells.insert(0, f"{m[mean]:.4g} ± {m.get(std, 0):.3g}" if mean in m else "")
        if rungs:
            cells.insert(len(cells) - len(ranking.metrics), row.rung)
        fit = f"{m[FIT_SECONDS]:.2f}" if FIT_SECONDS in m else ""
        table.add_row(str(rank), shown(row.trial), *cells, fit, row.status)
    return table


def best_scores(metrics: Mapping[str, float], ranking: Ranking) -> str:
    """ "cv_mse 2890 ± 310; test mse 3012": what it was chosen by, then its honest estimate."""
    test = f"test {ranking.metric} {metrics.get(ranking.metric, float('nan')):.6g}"
    if not ranking.cv:
        return test
    spread = metrics.get(cv_std(ranking.metric))
    chosen = f"{ranking.key} {metrics[ranking.key]:.6g}" + (f" ± {spread:.3g}" if spread else "")
    return f"{chosen}; {test}"


def ui_address(tracking_uri: str) -> tuple[str | None, str | None]:
    """Where MLflow's UI for this store is, and the command that starts it when none runs:
    a tracking server is its own UI; a database or folder is served by `mlflow ui`."""
    if tracking_uri.startswith(("http://", "https://")):
        return str(redact(tracking_uri)).rstrip("/"), None
    database = storage.sqlite_file(tracking_uri)
    if database is not None:
        return UI_ADDRESS, command_line(
            ["mlflow", "ui", "--backend-store-uri", f"sqlite:///{database}"]
        )
    if tracking_uri.startswith("file:") or "://" not in tracking_uri:
        folder = Path(tracking_uri.removeprefix("file://")).resolve()
        return UI_ADDRESS, command_line(["mlflow", "ui", "--backend-store-uri", folder.as_uri()])
    return None, None  # e.g. databricks: its workspace has its own address


# Runs the compare link names at most, the best first: MLflow's compare page struggles past a
# hundred runs, and the link stays ~4 KB (each run adds 39 characters) at any sweep's size.
COMPARED = 100


def compare_line(address: str, ranked_run_ids: Sequence[str], experiment_id: str) -> str:
    """`Compare the trials: <link>`, the link naming the top COMPARED runs of a larger sweep
    (and saying so: every trial is in the results table and under the sweep's run)."""
    shown_ids = ranked_run_ids[:COMPARED]
    link = compare_link(address, shown_ids, [experiment_id])
    if len(ranked_run_ids) <= COMPARED:
        return f"Compare the trials: {link}"
    return (
        f"Compare the trials: {link} (the top {COMPARED} of {len(ranked_run_ids):,}; every "
        "trial is in results/results.csv and under the sweep's run)"
    )


def compare_link(address: str, run_ids: Sequence[str], experiment_ids: Sequence[str]) -> str:
    """MLflow's compare page with these runs selected: the route its own UI builds
    (`#/compare-runs?runs=[…]&experiments=[…]`), quotes percent-encoded so terminals keep the
    whole link clickable."""
    runs = quote(json.dumps(list(run_ids), separators=(",", ":")), safe="[],")
    experiments = quote(json.dumps(list(experiment_ids), separators=(",", ":")), safe="[],")
    return f"{address}/#/compare-runs?runs={runs}&experiments={experiments}"
