"""What every trial is scored on, and how a sweep ranks its trials by it.

Plain names and one small value type, importable by anything (records, settings, the display):
no pandas, no scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# Scored on the held-out test rows, in the order tables show them.
METRICS = ("mse", "rmse", "mae", "r2")
MAXIMISED = frozenset({"r2"})  # every other metric is an error: lower is better
FIT_SECONDS = "fit_seconds"  # the fit on all training rows


def cv_mean(metric: str) -> str:
    return f"cv_{metric}"


def cv_std(metric: str) -> str:
    return f"cv_{metric}_std"


CV_METRICS = tuple(name for m in METRICS for name in (cv_mean(m), cv_std(m)))
RECORDED = (*METRICS, *CV_METRICS, FIT_SECONDS)  # every metric a trial's run may get


@dataclass(frozen=True)
class Ranking:
    """How a sweep orders its trials: by the CV mean of `metric` over `cv` folds of the training
    rows, or (cv=0) by `metric` on the test rows themselves."""

    metric: str = "mse"
    cv: int = 0

    @property
    def key(self) -> str:
        """The metric trials are ranked by: `cv_mse`, or `mse` when there are no folds."""
        return cv_mean(self.metric) if self.cv else self.metric

    @property
    def maximised(self) -> bool:
        return self.metric in MAXIMISED

    def value(self, metrics: Mapping[str, float]) -> float | None:
        found = metrics.get(self.key)
        return None if found is None or math.isnan(found) else float(found)

    def loss(self, metrics: Mapping[str, float]) -> float:
        """What sorting minimises: best first, a trial without the metric last."""
        found = self.value(metrics)
        if found is None:
            return math.inf
        return -found if self.maximised else found

    def describe(self) -> str:
        if self.cv:
            return f"CV {self.metric.upper()} ({self.cv}-fold on the training rows)"
        return f"test {self.metric.upper()} (eval.cv=0: chosen on the rows it is scored on)"
