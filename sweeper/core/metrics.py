"""What every trial is scored on, and how a sweep ranks its trials by it.

Plain names and small value types, importable by anything (records, settings, the display):
no pandas, no scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from sweeper.core.text_enum import TextEnum


class ProblemType(TextEnum):
    """What the target asks for (the data's `data.task`): a number (regression) or a label
    (classification). Not a task of a workflow: those are Hera's."""

    regression = "regression"
    classification = "classification"


# Scored on the held-out test rows, in the order tables show them.
METRICS = ("mse", "rmse", "mae", "r2")  # a regression's
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc")
NEEDS_PROBABILITIES = frozenset({"log_loss", "roc_auc"})  # only for models with predict_proba
METRICS_OF = {ProblemType.regression: METRICS, ProblemType.classification: CLASSIFICATION_METRICS}
DEFAULT_METRIC = {ProblemType.regression: "mse", ProblemType.classification: "accuracy"}
# Lower is better for every other metric (an error or a loss).
MAXIMISED = frozenset({"r2", "accuracy", "balanced_accuracy", "f1_macro", "roc_auc"})
FIT_SECONDS = "fit_seconds"  # the fit on all training rows


def cv_mean(metric: str) -> str:
    return f"cv_{metric}"


def cv_std(metric: str) -> str:
    return f"cv_{metric}_std"


EVERY_METRIC = (*METRICS, *CLASSIFICATION_METRICS)
CV_METRICS = tuple(name for m in EVERY_METRIC for name in (cv_mean(m), cv_std(m)))
RECORDED = (*EVERY_METRIC, *CV_METRICS, FIT_SECONDS)  # every metric a trial's run may get


@dataclass(frozen=True)
class Ranking:
    """How a sweep orders its trials: by the CV mean of `metric` over `cv` folds of the training
    rows, or (cv=0) by `metric` on the test rows themselves."""

    metric: str = "mse"
    cv: int = 0
    task: ProblemType = ProblemType.regression

    @classmethod
    def of(cls, metric: str, cv: int, task: ProblemType) -> Ranking:
        """`metric` "auto": the task's own (mse for a regression, accuracy for a classification)."""
        return cls(DEFAULT_METRIC[task] if metric == "auto" else metric, cv, task)

    @property
    def metrics(self) -> tuple[str, ...]:
        """The test metrics of its task, in the order tables show them."""
        return METRICS_OF[self.task]

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
        name = self.metric.upper() if self.metric in METRICS else self.metric
        if self.cv:
            return f"CV {name} ({self.cv}-fold on the training rows)"
        return f"test {name} (eval.cv=0: chosen on the rows it is scored on)"
