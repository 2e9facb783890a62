"""Whether tonight's best takes `@champion`: on evidence, not on one number.

Both models score tonight's raw test rows; the rows are resampled with replacement (a paired
bootstrap: each resample scores both models on the same rows) and the challenger is promoted only
when it is better in all but a `level` share of resamples and better by at least `margin` (in the
metric's own units). A champion better on one test set by noise stays the champion.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweeper.core.metrics import Ranking

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

RESAMPLES = 2000
_CHUNK = 100  # resamples drawn at once: 100 x the test rows' indices in memory


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
    rng = np.random.default_rng(seed)
    sign = 1.0 if ranking.maximised else -1.0
    held, new = (_metric(ranking.metric, y, scored, None)[0] for scored in (champion, challenger))
    gains = []
    for start in range(0, resamples, _CHUNK):  # a chunk of resamples at a time: bounded memory
        rows = rng.integers(0, len(y), size=(min(_CHUNK, resamples - start), len(y)))
        held_rs, new_rs = (_metric(ranking.metric, y, s, rows) for s in (champion, challenger))
        gains.append(sign * (new_rs - held_rs))
    gain = np.concatenate(gains)
    # A resample the metric is not defined on (one class only, for roc_auc) shows nothing
    # better: it counts against the challenger.
    finite = gain[np.isfinite(gain)]
    low, high = np.quantile(finite, [0.025, 0.975]) if len(finite) else (np.nan, np.nan)
    not_better = (resamples - np.sum(finite > 0) + 1) / (resamples + 1)
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
    elif name == "log_loss" and scored.proba is not None and scored.classes is not None:
        column = {label: i for i, label in enumerate(scored.classes.tolist())}
        given = scored.proba[np.arange(len(y)), [column.get(label, 0) for label in y.tolist()]]
        values = -np.log(np.clip(given, 1e-15, 1.0))[rows].mean(axis=1)
    else:
        values = [_labels_metric(name, y[line], scored, line) for line in rows]
    return np.asarray(values, dtype="float64")


def _labels_metric(name: str, y: np.ndarray, scored: Scored, line: np.ndarray) -> float:
    """A classification metric on one resample, as `fitting.score_labels` computes it; NaN where
    it is not defined there (a resample with one class has no ROC AUC), which scikit-learn
    would warn of at every resample."""
    from sklearn.metrics import balanced_accuracy_score, f1_score, roc_auc_score

    predicted = scored.predicted[line]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if name == "balanced_accuracy":
                return float(balanced_accuracy_score(y, predicted))
            if name == "f1_macro":
                return float(f1_score(y, predicted, average="macro"))
            assert name == "roc_auc" and scored.proba is not None and scored.classes is not None
            proba, labels = scored.proba[line], scored.classes
            if len(labels) == 2:
                return float(roc_auc_score(y == labels[1], proba[:, 1]))
            return float(roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=labels))
        except ValueError:
            return math.nan
