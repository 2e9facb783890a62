"""Sweep results made by hand, for tests of what is drawn, ranked and chosen from them: one lasso
trial per alpha, finished with the metrics (and per-fold scores) given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.records import Plan, PreprocessGroup, StoredSplit, Trial
from sweeper.core.settings import EvalSettings, Settings


def lassos(
    metrics: Mapping[float, dict[str, float]],
    folds: Mapping[float, Sequence[float]] | None = None,
    task: str = "regression",
    choose: str = "best",
) -> SweepResult:
    """A finished sweep of `lasso alpha=…` trials, one per key of `metrics`; `folds`: each
    one's ranking metric (mse) on each of 5 CV folds."""
    trials = [
        Trial(
            i,
            f"lasso alpha={a}",
            "lasso",
            {"_target_": "sklearn.linear_model.Lasso", "alpha": a},
            "g",
            (f"model.alpha={a}",),
            {},
            simpler={"alpha": "higher"},
        )
        for i, a in enumerate(metrics)
    ]
    settings = Settings(eval=EvalSettings(cv=5, choose=choose))
    plan = Plan("s", settings, (PreprocessGroup("g", {}, {}, 0),), tuple(trials))
    result = SweepResult(plan, "p")
    for trial in trials:
        alpha = trial.model["alpha"]
        per_fold = {"mse": tuple(folds[alpha])} if folds else {}
        result.outcomes.append(Outcome.finished(trial, metrics[alpha], f"r{trial.index}", per_fold))
    result.splits = {"g": StoredSplit("u", "k", False, task=task)}
    return result
