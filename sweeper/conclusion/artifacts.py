"""What a sweep leaves on its MLflow parent run for people to look at: the ranked results table
(CSV and HTML) and PNG plots of the score trials are ranked by (per trial grouped by model, the
table's winner marked; each model's score against the hyperparameters its trials varied); for a
classification, also the winner's confusion matrix and scikit-learn's per-class report on the
test rows.

Runs where the outcomes are read: a local worker, the Argo summary pod, or, past
worker.WRITTEN_HERE_PAST trials, a local sweep's own process (a worker's copy of 100,000
outcomes costs more than the imports). It imports pandas and matplotlib.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeper.core.evidence import P_WORSE
from sweeper.core.metrics import METRICS, RECORDED, Ranking
from sweeper.core.outcomes import Configuration
from sweeper.safe_text import spreadsheet_cell

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure
    from sklearn.pipeline import Pipeline

    from sweeper.core.outcomes import Outcome, SweepResult
    from sweeper.core.records import Trial


def swept_params(trials: Sequence[Trial]) -> list[str]:
    """Model settings whose values differ between these trials, in config order."""
    keys: dict[str, set[str]] = {}
    for trial in trials:
        for key, value in trial.model.items():
            if not key.startswith("_"):
                keys.setdefault(key, set()).add(repr(value))
    return [key for key, values in keys.items() if len(values) > 1]


def results_table(result: SweepResult) -> pd.DataFrame:
    """One row per trial, best first: rank, trial, model, swept values, metrics, status, run.

    Built a column at a time: a dict per row of 100,000 trials was ~0.1 GB more at the peak of
    the sweep's end than the columns' lists."""
    import pandas as pd

    swept = swept_params(result.plan.trials)
    recorded = [k for k in RECORDED if any(k in o.metrics for o in result.outcomes)]
    versus, level = result.versus_best(), result.plan.settings.eval.tie_level
    halving = any(o.trial.rung is not None for o in result.outcomes)
    ranked = result.ranked()
    columns: dict[str, list[Any]] = {
        "rank": list(range(1, len(ranked) + 1)),
        "trial": [o.trial.name for o in ranked],
        "model": [o.trial.model_name for o in ranked],
    }
    columns.update({key: [o.trial.model.get(key) for o in ranked] for key in swept})
    columns.update({key: [o.metrics.get(key) for o in ranked] for key in recorded})
    if versus:
        against = [
            _versus_columns(
                versus.get(Configuration.key_and_name(o.trial)[1]) if o.ok else None, level
            )
            for o in ranked
        ]
        columns.update({key: [row[key] for row in against] for key in _versus_columns(None, 0)})
    if halving:
        columns["rung"] = [o.trial.rung for o in ranked]
        columns["rung_reached"] = [o.rung_reached for o in ranked]
    columns["status"] = [o.shown_status for o in ranked]
    columns["run_id"] = [o.run_id for o in ranked]
    columns["error"] = [o.error for o in ranked]
    return pd.DataFrame(columns)


def configs_table(result: SweepResult) -> pd.DataFrame:
    """One row per configuration (trials that differ only in seed or split settings), best mean
    first: its parameters, how many seeds finished, mean and spread of the ranking metric and of
    its test score over them."""
    import pandas as pd

    configurations = result.configurations()
    versus, level = result.versus_best(), result.plan.settings.eval.tie_level
    swept = swept_params([c.outcomes[0].trial for c in configurations])
    keys = dict.fromkeys([result.ranking.key, result.ranking.metric])
    rows = []
    for rank, config in enumerate(configurations, start=1):
        first = config.outcomes[0].trial
        row: dict[str, Any] = {
            "rank": rank,
            "configuration": config.name,
            "model": config.model_name,
        }
        row.update({key: first.model.get(key) for key in swept})
        row.update({"seeds": len(config.finished), "trials": len(config.outcomes)})
        for key in keys:
            row[f"mean_{key}"], row[f"std_{key}"] = config.mean(key), config.std(key)
        if versus:
            row.update(_versus_columns(versus.get(config.name), level))
        rows.append(row)
    return pd.DataFrame(rows)


def _versus_columns(p_worse: float | None, level: float) -> dict[str, Any]:
    """A row against the best on their shared folds: the p-value that it is worse, and whether
    it is tied with the best (not significantly worse at `eval.tie_level`; the best is)."""
    tied = None if p_worse is None else p_worse >= level
    return {P_WORSE: p_worse, "tied_with_best": tied}


HTML_ROWS = 1_000  # rows of results.html, the best first (results.csv has every trial)


def write_tables(
    result: SweepResult, folder: Path, table: pd.DataFrame | None = None
) -> list[Path]:
    """results.csv and results.html (a page MLflow's artifact viewer shows as is), and
    configs.csv (the configurations' means over their seeds); `table` is results_table(result)
    when the caller has it already."""
    table = results_table(result) if table is None else table
    csv_path, html_path = folder / "results.csv", folder / "results.html"
    write_csv(table, csv_path)
    write_csv(configs_table(result), folder / "configs.csv")
    ranked_by = result.ranking.describe()
    title = f"Sweep {result.plan.sweep_id}: {len(table)} trials ranked by {ranked_by}"
    shown = table.drop(columns=["error"]).head(HTML_ROWS)
    body = shown.to_html(index=False, float_format=lambda v: f"{v:.6g}", na_rep="", border=0)
    more = ""
    if len(table) > HTML_ROWS:  # a browser chokes on 100,000 rows; nobody reads them here
        more = f"<p>The top {HTML_ROWS:,} of {len(table):,}: results.csv has every trial.</p>"
    html_path.write_text(
        "<!doctype html><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_CSS}</style><h3>{title}</h3>{body}{more}\n"
    )
    return [csv_path, html_path, folder / "configs.csv"]


_CSS = (
    "body{font-family:sans-serif;font-size:13px}table{border-collapse:collapse}"
    "th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #ddd}"
    "td:nth-child(2),td:nth-child(3){text-align:left}tr:first-child td{font-weight:bold}"
)


def write_plots(result: SweepResult, folder: Path) -> list[Path]:
    """What the table ranks by, drawn: `<key>_by_trial.png` (every trial's score, grouped by
    model, the table's winner marked) and `<key>_vs_<model>.png` for each model whose trials
    varied a setting; `<key>` is the ranking's (`cv_mse`, `cv_accuracy`, `mse` with eval.cv=0)."""
    _files_only()
    ranking = result.ranking
    # Scores of a halving's stopped configurations are on less: drawn against the resource only.
    scored = [
        o
        for o in result.ranked()
        if o.ok and not o.stopped and ranking.value(o.metrics) is not None
    ]
    if not scored:
        return []
    plot = _Plot(ranking, result.best)
    paths = [plot.by_trial(scored, folder / f"{ranking.key}_by_trial.png")]
    climbed = [o for o in result.ranked() if len(o.rungs) > 1 or o.stopped]
    if climbed:
        paths.append(plot.by_resource(climbed, folder / f"{ranking.key}_by_resource.png"))
    by_model: dict[str, list[Outcome]] = {}
    for outcome in scored:
        by_model.setdefault(outcome.trial.model_name, []).append(outcome)
    for model, outcomes in by_model.items():
        swept = swept_params([o.trial for o in outcomes])
        if swept:
            path = folder / f"{ranking.key}_vs_{model}.png"
            paths.append(plot.against(model, outcomes, swept, path))
    return paths


LABELLED_TRIALS = 40  # up to this many trials get a labelled row each; more, a column per model


@dataclass(frozen=True)
class _Plot:
    """Plots of the score trials are ranked by, with the winner the table names marked."""

    ranking: Ranking
    winner: Outcome | None

    def score(self, outcome: Outcome) -> float:
        value = self.ranking.value(outcome.metrics)
        return math.nan if value is None else value

    @property
    def label(self) -> str:
        """ "CV MSE (lower is better)" """
        name = (
            self.ranking.metric.upper() if self.ranking.metric in METRICS else self.ranking.metric
        )
        where = "CV" if self.ranking.cv else "test"
        better = "higher" if self.ranking.maximised else "lower"
        return f"{where} {name} ({better} is better)"

    def by_trial(self, scored: Sequence[Outcome], path: Path) -> Path:
        if len(scored) > LABELLED_TRIALS:
            return self.by_model(scored, path)
        import matplotlib.pyplot as plt

        models = list(dict.fromkeys(o.trial.model_name for o in scored))
        ordered = sorted(
            scored,
            key=lambda o: (models.index(o.trial.model_name), self.ranking.loss(o.metrics)),
        )
        colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
        figure, axes = plt.subplots(figsize=(9, 2 + 0.22 * len(ordered)))
        positions = list(range(len(ordered)))[::-1]  # first model at the top
        values = [self.score(o) for o in ordered]
        # Dots on a zoomed axis, not bars from zero: trials often differ by a few percent.
        low, high = min(values), max(values)
        pad = (high - low) * 0.08 or abs(low) * 0.01 or 1.0
        worst_end = high + pad if self.ranking.maximised else low - pad
        colour = [colours[o.trial.model_name] for o in ordered]
        axes.hlines(positions, worst_end, values, color=colour, linewidth=1, alpha=0.5)
        axes.scatter(values, positions, color=colour, zorder=3)
        axes.set_xlim(low - pad, high + pad)
        axes.set_yticks(positions, [o.trial.name for o in ordered], fontsize=8)
        handles: list[Any] = [
            plt.Line2D([], [], marker="o", linestyle="", color=colours[m]) for m in models
        ]
        labels: list[str] = list(models)
        if self.winner in ordered:
            at = positions[ordered.index(self.winner)]
            best = self.score(self.winner)
            axes.axvline(best, color="black", linewidth=0.8, linestyle="--")
            handles.append(_star(axes, best, at))
            labels.append(f"winner {best:.4g}")
        axes.legend(handles, labels, loc="best")
        axes.set_xlabel(self.label)
        axes.set_title(f"{self.ranking.key} per trial, grouped by model")
        return _save(figure, path)

    def by_model(self, scored: Sequence[Outcome], path: Path) -> Path:
        """Many trials: each model's scores as a column of dots, the best of each named and
        the winner starred."""
        import matplotlib.pyplot as plt

        models = list(dict.fromkeys(o.trial.model_name for o in scored))
        figure, axes = plt.subplots(figsize=(max(6, 1.6 * len(models) + 2), 5))
        for column, model in enumerate(models):
            mine = sorted(
                (o for o in scored if o.trial.model_name == model),
                key=lambda o: self.ranking.loss(o.metrics),
            )
            values = [self.score(o) for o in mine]
            spread = [column + 0.25 * ((i * 0.618) % 1 - 0.5) for i in range(len(values))]
            axes.scatter(spread, values, s=12, alpha=0.6, color=plt.get_cmap("tab10")(column % 10))
            if self.winner in mine:
                at = mine.index(self.winner)
                _star(axes, spread[at], values[at], f"winner {values[at]:.4g}")
            axes.annotate(
                mine[0].trial.name,
                (column, values[0]),
                textcoords="offset points",
                xytext=(0, 14 if self.ranking.maximised else -14),
                ha="center",
                fontsize=7,
            )
        counts = [sum(o.trial.model_name == m for o in scored) for m in models]
        axes.set_xticks(
            range(len(models)), [f"{m}\n({n} trials)" for m, n in zip(models, counts, strict=True)]
        )
        axes.set_xlim(-0.6, len(models) - 0.4)
        axes.margins(y=0.12)  # room for the best trial's name beside its dot
        axes.set_ylabel(self.label)
        if self.winner in scored:
            axes.legend(loc="best")
        axes.set_title(f"{self.ranking.key} of {len(scored)} trials, grouped by model")
        return _save(figure, path)

    def against(
        self, model: str, outcomes: Sequence[Outcome], swept: Sequence[str], path: Path
    ) -> Path:
        import matplotlib.pyplot as plt

        figure, panels = plt.subplots(1, len(swept), figsize=(4.5 * len(swept), 3.8), squeeze=False)
        for axes, key in zip(panels[0], swept, strict=True):
            values = [o.trial.model.get(key) for o in outcomes]
            scores = [self.score(o) for o in outcomes]
            numbers = [
                float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)
            ]
            if len(numbers) == len(values):
                positions: list[float] = numbers
                best = self._best_per_value(numbers, scores)
                axes.plot(
                    list(best),
                    list(best.values()),
                    color="black",
                    linewidth=0.8,
                    label="best at each value",
                )
                if min(numbers) > 0 and max(numbers) / min(numbers) >= 100:
                    axes.set_xscale("log")
            else:  # None, strings, booleans: one column per distinct value
                labels = list(dict.fromkeys(str(v) for v in values))
                positions = [float(labels.index(str(v))) for v in values]
                axes.set_xticks(range(len(labels)), labels)
            axes.scatter(positions, scores, alpha=0.7)
            if self.winner in outcomes:
                at = outcomes.index(self.winner)
                _star(axes, positions[at], scores[at], "winner")
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize=7)
            axes.set_xlabel(key)
            axes.set_ylabel(self.label)
        figure.suptitle(f"{model}: {self.ranking.key} against its swept settings")
        return _save(figure, path)

    def by_resource(self, outcomes: Sequence[Outcome], path: Path) -> Path:
        """search=halving: each configuration's score at every rung it reached against the
        resource it had there (a line per configuration, coloured by model; a cross where it
        was stopped, the winner starred)."""
        import matplotlib.pyplot as plt

        models = list(dict.fromkeys(o.trial.model_name for o in outcomes))
        colours = {m: plt.get_cmap("tab10")(i % 10) for i, m in enumerate(models)}
        figure, axes = plt.subplots(figsize=(8, 5))
        thin = len(outcomes) > LABELLED_TRIALS  # many lines: lighter, so the crowd reads
        for outcome in outcomes:
            amounts = [r.amount for r in outcome.rungs]
            scores = [r.score for r in outcome.rungs]
            colour = colours[outcome.trial.model_name]
            axes.plot(amounts, scores, color=colour, alpha=0.3 if thin else 0.7, linewidth=1)
            if outcome.stopped and amounts:
                axes.scatter(amounts[-1:], scores[-1:], color=colour, marker="x", zorder=3)
        if self.winner is not None and self.winner.rungs:
            last = self.winner.rungs[-1]
            _star(axes, last.amount, last.score, f"winner: {self.winner.trial.name}")
        handles: list[Any] = [plt.Line2D([], [], color=colours[m]) for m in models]
        handles.append(plt.Line2D([], [], marker="x", linestyle="", color="grey"))
        labels = [*models, "stopped"]
        if self.winner is not None and self.winner.rungs:
            handles.append(plt.Line2D([], [], marker="*", linestyle="", color="gold"))
            labels.append("winner")
        axes.legend(handles, labels, fontsize=8)
        axes.set_xscale("log")
        axes.set_xlabel("resource at the rung (training rows per fold, or the model's budget)")
        axes.set_ylabel(self.label)
        axes.set_title(f"Successive halving: {self.ranking.key} at each rung, per configuration")
        return _save(figure, path)

    def _best_per_value(
        self, values: Sequence[float], scores: Sequence[float]
    ) -> Mapping[float, float]:
        pick = max if self.ranking.maximised else min
        best: dict[float, float] = {}
        for value, score in zip(values, scores, strict=True):
            best[value] = pick(score, best.get(value, score))
        return dict(sorted(best.items()))


def _star(axes: Axes, x: float, y: float, label: str | None = None) -> PathCollection:
    """The winner's mark: a gold star over its dot."""
    return axes.scatter(
        [x], [y], marker="*", s=220, color="gold", edgecolors="black", zorder=4, label=label
    )


def write_label_report(
    model: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, trial: str, tables: Path, plots: Path
) -> list[Path]:
    """results/classification_report.csv and plots/confusion_matrix.png of `model` (the best
    trial's pipeline) on the raw test rows."""
    _files_only()
    import pandas as pd
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report

    predicted = model.predict(X_test)
    report = classification_report(y_test, predicted, output_dict=True, zero_division=0)
    table = tables / "classification_report.csv"
    write_csv(pd.DataFrame(report).transpose().rename_axis("class"), table, index=True)
    display = ConfusionMatrixDisplay.from_predictions(y_test, predicted, cmap="Blues")
    display.ax_.set_title(f"{trial}: test rows")
    return [table, _save(display.figure_, plots / "confusion_matrix.png")]


def _files_only() -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: pods and CI have no display


def _save(figure: Figure, path: Path) -> Path:
    import matplotlib.pyplot as plt

    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_csv(table: pd.DataFrame, path: Path, index: bool = False) -> None:
    """A table as CSV for people to open in a spreadsheet: no text cell is read as a formula
    (a class label or trial name from the data such as `=cmd|' /C calc'!A0`; safe_text)."""
    safe = table.map(spreadsheet_cell)
    if index:
        safe.index = safe.index.map(spreadsheet_cell)
    safe.to_csv(path, index=index)
