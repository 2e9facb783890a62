"""Whether tonight's best takes `@champion`: on evidence, not on one number.

Both models score tonight's raw test rows; the rows are resampled with replacement (a paired
bootstrap: each resample scores both models on the same rows) and the challenger is promoted only
when it is better in all but a `level` share of resamples and better by at least `margin` (in the
metric's own units). A champion better on one test set by noise stays the champion.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweeper.core.metrics import Ranking

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

RESAMPLES = 2000


@dataclass(frozen=True)
class Scored:
    """One model's answers on the test rows: predictions, and class probabilities (in `classes`
    order) for a metric that needs them."""

    predicted: np.ndarray
    proba: np.ndarray | None = None
    classes: np.ndarray | None = None


@dataclass(frozen=True)
class Comparison:
    metric: str
    champion: float  # the metric on tonight's test rows
    challenger: float
    improvement: float  # how much better the challenger is, in the metric's units (< 0: worse)
    interval: tuple[float, float]  # 95% bootstrap interval of the improvement
    p_value: float  # of "the challenger is not better": resamples where it is not, as a share

    def promotes(self, level: float, margin: float) -> bool:
        return self.p_value < level and self.improvement > margin

    def describe(self, level: float, margin: float) -> str:
        """ "mse 2.81 vs 3.02 (0.21 better, 95% interval 0.05 to 0.38; p=0.004)…" """
        low, high = self.interval
        if self.improvement > margin and self.p_value < level:
            why = f"better at level {level:g}" + (f" by more than {margin:g}" if margin else "")
        elif self.improvement <= 0:
            why = "not better"
        elif self.improvement <= margin:
            why = f"better by less than the margin {margin:g}"
        else:
            why = f"not clearly better (p={self.p_value:.3g} ≥ {level:g}): within the noise"
        return (
            f"{self.metric} {self.challenger:.6g} vs the champion's {self.champion:.6g} on "
            f"tonight's test rows: {self.improvement:+.3g} (95% interval {low:+.3g} to "
            f"{high:+.3g}, p={self.p_value:.3g}); {why}"
        )


def compare(
    y: ArrayLike,
    champion: Scored,
    challenger: Scored,
    ranking: Ranking,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """The challenger against the champion on the same rows, by `ranking.metric`."""
    y = np.asarray(y)
    rows = np.random.default_rng(seed).integers(0, len(y), size=(resamples, len(y)))
    sign = 1.0 if ranking.maximised else -1.0
    held, new = (_metric(ranking.metric, y, scored, None)[0] for scored in (champion, challenger))
    held_rs, new_rs = (
        _metric(ranking.metric, y, scored, rows) for scored in (champion, challenger)
    )
    gains = sign * (new_rs - held_rs)
    low, high = np.quantile(gains, [0.025, 0.975])
    not_better = (np.sum(gains <= 0) + 1) / (resamples + 1)
    return Comparison(
        ranking.metric,
        float(held),
        float(new),
        float(sign * (new - held)),
        (float(low), float(high)),
        float(not_better),
    )


def _metric(name: str, y: np.ndarray, scored: Scored, rows: np.ndarray | None) -> np.ndarray:
    """The metric on each resample of the rows (`rows`: one resample a line; None: the rows as
    they are). Means of per-row losses where the metric is one, computed for all resamples at
    once; the others through scikit-learn, a resample at a time."""
    rows = np.arange(len(y))[None, :] if rows is None else rows
    predicted = scored.predicted
    if name in ("mse", "rmse", "r2"):
        mse = ((y - predicted) ** 2)[rows].mean(axis=1)
        values = {"mse": mse, "rmse": np.sqrt(mse), "r2": 1 - mse / y[rows].var(axis=1)}[name]
    elif name == "mae":
        values = np.abs(y - predicted)[rows].mean(axis=1)
    elif name == "accuracy":
        values = (y == predicted)[rows].mean(axis=1)
    else:
        from sweeper.trial.fitting import score_labels

        proba = scored.proba
        values = [
            score_labels(
                y[line], predicted[line], proba[line] if proba is not None else None, scored.classes
            )[name]
            for line in rows
        ]
    return np.asarray(values, dtype="float64")
