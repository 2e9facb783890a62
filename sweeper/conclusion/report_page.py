"""The sweep's report: one self-contained HTML page on the sweep run (`results/report.html`), built
from the results table. plotly.js is inlined, so it opens offline and in MLflow's artifact viewer:

- the ranked table's top rows, the winner marked, with the significance marks of the CV folds;
- parallel coordinates over the trials: model, swept settings and score, one line per trial;
- per model, the score against each setting its trials varied, and how much the score depends on
  each of them (importance);
- with search=halving, each configuration's score at every rung (rung curves).

Browsers choke on 100,000 SVG points, so each figure draws at most a bounded number of trials:
always the best ones, then an even sample over the rest of the ranking, and says so under it.

Runs where the other results are written (a local worker, the Argo summary pod): it imports
pandas, scikit-learn and plotly.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweeper.core.evidence import P_WORSE

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from plotly.graph_objects import Figure

    from sweeper.core.metrics import Ranking
    from sweeper.core.outcomes import Outcome, SweepResult

TOP_ROWS = 20  # rows of the report's table (results.html and results.csv have more)
BEST_ALWAYS = 1_000  # trials every figure draws, the best first; the rest are sampled evenly
PARALLEL_LINES = 10_000  # lines of the parallel coordinates
POINTS_PER_MODEL = 2_000  # dots of each model's score-against-setting panels
IMPORTANCE_TRIALS = 5_000  # trials each model's importance forest is fitted to
IMPORTANCE_AT_LEAST = 10  # finished trials a model needs before its importance means anything
RUNG_CURVES = 300  # configurations drawn in the rung curves
WINNER = "#d62728"  # the winner's colour in every figure
# The axis value of a setting that is None, or that the trial's model does not have (the results
# table cannot tell them apart: both are empty cells).
NOT_SET = "None"
SCORED = ("FINISHED", "reused")  # the results table's statuses of trials scored in full


def write_report(result: SweepResult, table: pd.DataFrame, path: Path) -> Path:
    """`table` is `artifacts.results_table(result)`: one row per trial, best first."""
    import numpy as np
    import pandas as pd
    import plotly.offline

    ranking = result.ranking
    best = result.best
    winner = best.trial.name if best is not None else None
    if table.empty:  # (a plan always has trials; a result read back may have none)
        table = table.reindex(columns=["rank", "trial", "model", "status"])
    swept = _swept_columns(table)
    table = _hashable(table, swept)
    # A stopped configuration (search=halving, eval.early_stop) was scored on less: left out.
    scored = table.iloc[:0]
    if ranking.key in table.columns:  # else nothing was scored
        score = pd.to_numeric(table[ranking.key], errors="coerce")
        scored = table[table["status"].isin(SCORED) & np.isfinite(score)]  # not NaN, not inf
    figures = _Figures(ranking, winner)
    sections = [_header(result, table, best), _top_table(table, ranking, swept, winner)]
    if len(scored):
        sections.append(figures.parallel(scored, swept))
        for model, rows in scored.groupby("model", sort=False):
            varied = [c for c in swept if rows[c].nunique(dropna=False) > 1]
            if varied:
                sections.append(figures.against(str(model), rows, varied))
                sections.append(figures.importance(str(model), rows, varied))
    if any(o.rungs for o in result.outcomes):  # search=halving (else no ranking to sort)
        climbed = [o for o in result.ranked() if o.rungs and (len(o.rungs) > 1 or o.stopped)]
        if climbed:
            sections.append(figures.rungs(climbed))
    title = html.escape(f"Sweep {result.plan.sweep_id}: {len(table):,} trials")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{title}</title><style>{_CSS}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head>"
        f"<body><h2>{title}</h2>{''.join(s for s in sections if s)}</body></html>\n"
    )
    path.write_text(page, encoding="utf-8")
    return path


def _hashable(table: pd.DataFrame, swept: Sequence[str]) -> pd.DataFrame:
    """The table with each swept list or mapping value as its text (`[100, 50]`): values a
    figure can group and an axis can label."""
    if not any(table[c].map(lambda v: isinstance(v, list | tuple | dict)).any() for c in swept):
        return table
    table = table.copy()
    for column in swept:
        table[column] = table[column].map(
            lambda v: str(v) if isinstance(v, list | tuple | dict) else v
        )
    return table


def _swept_columns(table: pd.DataFrame) -> list[str]:
    """The swept settings' columns of a results table: those between `model` and the first
    column of what the trials scored or how they ended."""
    from sweeper.core.metrics import RECORDED

    after_model = list(table.columns)[list(table.columns).index("model") + 1 :]
    ends = {*RECORDED, P_WORSE, "rung", "status"}
    return after_model[: next((i for i, c in enumerate(after_model) if c in ends), None)]


def _header(result: SweepResult, table: pd.DataFrame, best: Outcome | None) -> str:
    """`best`: result.best, worked out once by the caller (at 100,000 trials it sorts them)."""
    counts = table["status"].value_counts()
    statuses = ", ".join(f"{n:,} {status.lower()}" for status, n in counts.items())
    line = "No trial finished: there is no winner."
    if best is not None:
        score = result.ranking.value(best.metrics)
        shown = "" if score is None else f" with {result.ranking.key} {score:.6g}"
        name = html.escape(best.trial.name)
        line = f"The winner: <span class='winner'>★ {name}</span>{shown}."
    return (
        f"<p>Ranked by {html.escape(result.ranking.describe())}. {statuses}.</p>"
        f"<p class='best'>{line}</p>"
        "<p>Every trial, with its run: results/results.csv. This page draws a bounded number of "
        "trials per figure and says so where it samples.</p>"
    )


def _top_table(
    table: pd.DataFrame, ranking: Ranking, swept: Sequence[str], winner: str | None
) -> str:
    """The best rows (and the winner's, wherever it ranks) with the marks of the significance
    test against the best (tied: not significantly worse at eval.tie_level; worse:
    significantly)."""
    import pandas as pd

    shown = ["rank", "trial", "model", *swept]
    shown += [ranking.key] if ranking.key in table.columns else []
    rows = []
    top = table.head(TOP_ROWS)
    if winner is not None and not top["trial"].eq(winner).any():  # chosen further down
        top = pd.concat([top, table[table["trial"].eq(winner)]])
    for record in top.to_dict("records"):
        cells = [_cell(record.get(c)) for c in shown]
        mark, p_worse = "", record.get(P_WORSE)
        if p_worse is not None and not _missing(p_worse) and p_worse < 1.0:  # 1: the best
            tied = bool(record.get("tied_with_best"))
            mark = f"{'≈ tied' if tied else '✗ worse'} (p={p_worse:.3g})"
        is_winner = record["trial"] == winner
        if is_winner:  # (eval.choose=simplest may choose one tied with the best)
            mark = f"★ winner {mark}".strip()
        css = " class='winner-row'" if is_winner else ""
        cells.append(html.escape(mark))
        rows.append(f"<tr{css}>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(c)}</th>" for c in [*shown, "against the best"])
    more = f"<p>The best {TOP_ROWS} of {len(table):,}.</p>" if len(table) > TOP_ROWS else ""
    return (
        f"<h3>The best trials</h3><table><tr>{header}</tr>{''.join(rows)}</table>{more}"
        "<p>≈ tied: not significantly worse than the best on the folds they share (corrected "
        "resampled t-test at eval.tie_level); ✗ worse: significantly worse.</p>"
    )


def _cell(value: Any) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(value: Any) -> str:
    """A setting's value as a category: 4.0 (an int column made float by a None) as "4"."""
    if _missing(value):
        return NOT_SET
    return f"{value:g}" if isinstance(value, float) else str(value)


def _as_number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.inf


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def sample(rows: pd.DataFrame, limit: int, winner: str | None = None) -> pd.DataFrame:
    """At most `limit` of `rows` (ranked, best first): the best BEST_ALWAYS (or half the limit),
    then rows evenly spaced over the rest of the ranking, so the spread of scores is kept; the
    `winner`'s row always (eval.choose=simplest may choose one far down the ranking)."""
    import numpy as np
    import pandas as pd

    if len(rows) <= limit:
        return rows
    keep = min(BEST_ALWAYS, limit // 2)
    rest = rows.iloc[keep:]
    picks = np.linspace(0, len(rest) - 1, limit - keep).round().astype(int)
    drawn = pd.concat([rows.iloc[:keep], rest.iloc[np.unique(picks)]])
    missing = rows[rows["trial"].eq(winner) & ~rows.index.isin(drawn.index)]
    return pd.concat([drawn.iloc[: limit - len(missing)], missing])


@dataclass(frozen=True)
class ForestFit:
    trials: int  # how many trials it was fitted to
    r2: float  # on those trials


def setting_importance(
    rows: pd.DataFrame, varied: Sequence[str], key: str
) -> tuple[dict[str, float], ForestFit] | None:
    """How much the score `key` of these trials (one model's) depends on each setting in
    `varied`, as shares summing to 1: a random forest fitted to the trials (score from
    settings), and how much its R² drops when one setting's values are shuffled (permutation
    importance, Breiman 2001). Optuna's default evaluator, fANOVA (Hutter, Hoos and
    Leyton-Brown 2014), also fits a forest to the trials; this is the simpler reading of such a
    forest. None when every trial scored the same."""
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance

    fitted_on = sample(rows, IMPORTANCE_TRIALS)
    X = np.column_stack([_Axis.of(c, fitted_on[c]).values for c in varied])
    y = fitted_on[key].astype(float).to_numpy()
    if float(np.ptp(y)) == 0.0:
        return None
    forest = RandomForestRegressor(n_estimators=64, min_samples_leaf=2, random_state=0)
    forest.fit(X, y)
    found = permutation_importance(forest, X, y, n_repeats=5, random_state=0)
    drops = np.clip(found.importances_mean, 0.0, None)
    shares = drops / drops.sum() if drops.sum() > 0 else drops
    fit = ForestFit(len(fitted_on), float(forest.score(X, y)))
    return {name: float(share) for name, share in zip(varied, shares, strict=True)}, fit


def _sampled_note(drawn: int, total: int) -> str:
    if drawn >= total:
        return ""
    return (
        f"<p class='note'>{drawn:,} of {total:,} trials drawn: the best "
        f"{min(BEST_ALWAYS, drawn // 2):,} and an even sample over the rest of the ranking.</p>"
    )


@dataclass(frozen=True)
class _Axis:
    """One swept setting on a numeric axis: its values as numbers (log10 of a setting spread
    over two decades or more), a missing setting just below the rest, and its tick labels."""

    label: str
    values: np.ndarray
    tickvals: list[float] | None = None
    ticktext: list[str] | None = None

    @classmethod
    def of(cls, name: str, column: pd.Series) -> _Axis:
        import numpy as np
        import pandas as pd

        numbers = pd.to_numeric(column, errors="coerce")
        if bool((column.map(_is_number) | column.isna()).all()) and numbers.notna().any():
            logged = bool(numbers.min() > 0 and numbers.max() / numbers.min() >= 100)
            values = np.log10(numbers) if logged else numbers.astype(float)
            label = f"log10({name})" if logged else name
            if not numbers.isna().any():
                return cls(label, values.to_numpy())
            low, high = float(values.min()), float(values.max())
            gap = low - 0.15 * ((high - low) or 1.0)
            ticks = list(np.linspace(low, high, 5))
            return cls(
                label,
                values.fillna(gap).to_numpy(),
                [gap, *ticks],
                [NOT_SET, *(f"{t:.3g}" for t in ticks)],
            )
        text = column.map(_label)
        labels = sorted(text.unique(), key=lambda t: (t != NOT_SET, _as_number(t), t))
        codes = text.map({t: i for i, t in enumerate(labels)}).astype(float)
        return cls(name, codes.to_numpy(), list(map(float, range(len(labels)))), labels)

    def dimension(self) -> dict[str, Any]:
        found: dict[str, Any] = {"label": self.label, "values": self.values}
        if self.tickvals is not None:
            found.update(tickvals=self.tickvals, ticktext=self.ticktext)
        return found


@dataclass(frozen=True)
class _Figures:
    ranking: Ranking
    winner: str | None

    @property
    def score_label(self) -> str:
        better = "higher" if self.ranking.maximised else "lower"
        return f"{self.ranking.key} ({better} is better)"

    def parallel(self, scored: pd.DataFrame, swept: Sequence[str]) -> str:
        """One line per trial through model, swept settings and score; the winner in red, the
        rest coloured by score. Drag along an axis to keep only the lines through a range."""
        import numpy as np
        import plotly.graph_objects as go

        drawn = sample(scored, PARALLEL_LINES, self.winner)
        drawn = self._winner_last(drawn)
        axes = [_Axis.of("model", drawn["model"])]
        axes += [_Axis.of(c, drawn[c]) for c in swept if drawn[c].nunique(dropna=False) > 1]
        scores = drawn[self.ranking.key].astype(float).to_numpy()
        worst, best = (scores.min(), scores.max())
        if not self.ranking.maximised:
            worst, best = best, worst
        span = (best - worst) or 1.0
        colour = 0.96 * (scores - worst) / span  # 0 the worst, 0.96 the best
        colour[drawn["trial"].eq(self.winner).to_numpy()] = 1.0
        figure = go.Figure(
            go.Parcoords(
                line={
                    "color": np.clip(colour, 0.0, 1.0),
                    "cmin": 0.0,
                    "cmax": 1.0,
                    "colorscale": [
                        [0.0, "#c6dbef"],
                        [0.96, "#08306b"],
                        [0.97, WINNER],
                        [1.0, WINNER],
                    ],
                },
                dimensions=[
                    *(a.dimension() for a in axes),
                    {"label": self.score_label, "values": scores},
                ],
            )
        )
        figure.update_layout(height=480, margin={"l": 80, "r": 80, "t": 60, "b": 30})
        return (
            "<h3>Every trial through its settings</h3>"
            "<p>Darker is better; the winner in red. Drag along an axis to keep the lines "
            f"through a range. {NOT_SET}: the setting is None, or the trial's model has no such "
            "setting.</p>" + _div(figure) + _sampled_note(len(drawn), len(scored))
        )

    def against(self, model: str, rows: pd.DataFrame, varied: Sequence[str]) -> str:
        """The model's score against each setting its trials varied, the winner starred."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        drawn = sample(rows, POINTS_PER_MODEL, self.winner)
        figure = make_subplots(rows=1, cols=len(varied), shared_yaxes=True)
        score = drawn[self.ranking.key].astype(float)
        is_winner = drawn["trial"].eq(self.winner)
        for column, name in enumerate(varied, start=1):
            values = drawn[name]
            numeric = bool(values.map(_is_number).all()) and bool(values.notna().all())
            x = values if numeric else values.map(_label)
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=score,
                    mode="markers",
                    marker={"size": 6, "opacity": 0.6, "color": "#3182bd"},
                    text=drawn["trial"],
                    hovertemplate="%{text}<br>%{x}: %{y:.6g}<extra></extra>",
                    showlegend=False,
                ),
                row=1,
                col=column,
            )
            if is_winner.any():
                figure.add_trace(
                    go.Scatter(
                        x=x[is_winner],
                        y=score[is_winner],
                        mode="markers",
                        marker={"symbol": "star", "size": 16, "color": WINNER},
                        name=f"winner: {self.winner}",
                        showlegend=column == 1,
                    ),
                    row=1,
                    col=column,
                )
            if numeric:
                logged = (
                    float(values.min()) > 0 and float(values.max()) / float(values.min()) >= 100
                )
                figure.update_xaxes(type="log" if logged else None, col=column)
            else:  # one column per value: None first, then in order
                order = sorted(set(x), key=lambda t: (t != NOT_SET, _as_number(t), t))
                figure.update_xaxes(categoryorder="array", categoryarray=order, col=column)
            figure.update_xaxes(title_text=name, col=column)
        figure.update_yaxes(title_text=self.score_label, col=1)
        figure.update_layout(height=360, margin={"t": 30, "b": 50})
        return (
            f"<h3>{html.escape(model)}: {self.ranking.key} against its settings</h3>"
            + _div(figure)
            + _sampled_note(len(drawn), len(rows))
        )

    def importance(self, model: str, rows: pd.DataFrame, varied: Sequence[str]) -> str:
        """The model's settings by how much its score depends on them (setting_importance)."""
        if len(rows) < IMPORTANCE_AT_LEAST or len(varied) < 2:
            # One setting's share is all of it: nothing to rank, and no forest to fit (its
            # imports, scikit-learn's ensembles and scipy, are the largest part of a report).
            return ""
        import plotly.graph_objects as go

        found = setting_importance(rows, varied, self.ranking.key)
        if found is None:
            return ""  # every trial scored the same: nothing depends on anything
        shares, fit = found
        order = sorted(shares, key=shares.__getitem__)
        figure = go.Figure(
            go.Bar(
                x=[shares[name] for name in order],
                y=order,
                orientation="h",
                marker={"color": "#6baed6"},
                hovertemplate="%{y}: %{x:.1%}<extra></extra>",
            )
        )
        figure.update_layout(
            height=120 + 40 * len(varied),
            margin={"t": 20, "b": 40},
            xaxis={"title": {"text": "share of the forest's R² lost when shuffled"}},
        )
        note = (
            f"<p class='note'>A random forest fitted to {fit.trials:,} of the model's trials "
            f"(R² {fit.r2:.2f} on them), then each setting's values shuffled: the "
            "larger its share, the more the score depends on it (permutation importance).</p>"
        )
        return f"<h4>{html.escape(model)}: which settings matter</h4>" + _div(figure) + note

    def rungs(self, climbed: Sequence[Outcome]) -> str:
        """search=halving: each configuration's score at every rung it reached against the
        resource there; a cross where it was stopped, the winner in red."""
        import plotly.graph_objects as go

        ordered = sorted(climbed, key=lambda o: (o.stopped, -len(o.rungs), self._loss(o)))
        drawn = [o for o in ordered if o.trial.name == self.winner]
        drawn += [o for o in ordered if o.trial.name != self.winner][: RUNG_CURVES - len(drawn)]
        x: list[float | None] = []
        y: list[float | None] = []
        for outcome in drawn:
            x += [*(r.amount for r in outcome.rungs), None]
            y += [*(r.score for r in outcome.rungs), None]
        stops = [o for o in drawn if o.stopped and o.rungs]
        figure = go.Figure(
            [
                go.Scatter(
                    x=x, y=y, mode="lines", line={"color": "#9ecae1"}, name="configurations"
                ),
                go.Scatter(
                    x=[o.rungs[-1].amount for o in stops],
                    y=[o.rungs[-1].score for o in stops],
                    mode="markers",
                    marker={"symbol": "x", "color": "#636363"},
                    name="stopped",
                ),
            ]
        )
        for outcome in drawn:
            if outcome.trial.name == self.winner and outcome.rungs:
                figure.add_trace(
                    go.Scatter(
                        x=[r.amount for r in outcome.rungs],
                        y=[r.score for r in outcome.rungs],
                        mode="lines+markers",
                        line={"color": WINNER, "width": 3},
                        marker={"symbol": "star", "size": 12},
                        name=f"winner: {outcome.trial.name}",
                    )
                )
        figure.update_layout(
            height=420,
            xaxis={"type": "log", "title": {"text": "resource at the rung"}},
            yaxis={"title": {"text": self.score_label}},
        )
        note = ""
        if len(drawn) < len(climbed):
            note = (
                f"<p class='note'>{len(drawn)} of {len(climbed):,} configurations drawn: "
                "those that climbed highest.</p>"
            )
        return "<h3>Successive halving: the score at each rung</h3>" + _div(figure) + note

    def _loss(self, outcome: Outcome) -> float:
        if not outcome.rungs:
            return math.inf
        last = outcome.rungs[-1].score
        return -last if self.ranking.maximised else last

    def _winner_last(self, rows: pd.DataFrame) -> pd.DataFrame:
        """The winner's line drawn over the others."""
        import pandas as pd

        is_winner = rows["trial"].eq(self.winner)
        return pd.concat([rows[~is_winner], rows[is_winner]])


def _div(figure: Figure) -> str:
    return str(
        figure.to_html(
            full_html=False,
            include_plotlyjs=False,
            config={"displaylogo": False, "responsive": True},
        )
    )


_CSS = (
    "body{font-family:sans-serif;font-size:13px;margin:16px 24px}"
    "table{border-collapse:collapse}th,td{padding:3px 8px;border-bottom:1px solid #ddd}"
    f".winner,.winner-row td{{color:{WINNER};font-weight:bold}}.note{{color:#555}}"
)
