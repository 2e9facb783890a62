"""What became of each trial of a sweep, whatever executed it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from steps.records import StoredSplit
from sweeper.plan import Plan, Trial


@dataclass(frozen=True)
class Outcome:
    trial: Trial
    status: str  # FINISHED, FAILED, or NOT_RUN (its preprocess step failed)
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    reused: bool = False  # finished by an earlier sweep: its run is that sweep's

    @classmethod
    def reused_from(cls, trial: Trial, metrics: dict[str, float], run_id: str) -> Outcome:
        return cls(trial, "FINISHED", metrics, run_id=run_id, reused=True)

    @classmethod
    def finished(cls, trial: Trial, metrics: dict[str, float], run_id: str) -> Outcome:
        return cls(trial, "FINISHED", metrics, run_id=run_id)

    @classmethod
    def failed(cls, trial: Trial, error: BaseException, run_id: str | None) -> Outcome:
        return cls(trial, "FAILED", error=f"{type(error).__name__}: {error}", run_id=run_id)

    @classmethod
    def not_run(cls, trial: Trial, reason: str) -> Outcome:
        return cls(trial, "NOT_RUN", error=reason)

    @property
    def mse(self) -> float:
        return self.metrics.get("mse", math.inf)

    def line(self) -> str:
        if self.status == "FINISHED":
            reused = " (reused)" if self.reused else ""
            return f"{self.trial.name}: mse={self.mse:.6g}{reused}"
        return f"{self.trial.name}: {self.status} {self.error}"


@dataclass
class SweepResult:
    plan: Plan
    parent_run_id: str
    tracking_uri: str
    outcomes: list[Outcome] = field(default_factory=list)
    splits: dict[str, StoredSplit] = field(default_factory=dict)
    preprocess_errors: list[str] = field(default_factory=list)
    experiment_id: str = ""  # MLflow's, for links to the sweep's runs
    notes: list[str] = field(default_factory=list)  # what ending the sweep's run reported

    @property
    def n_failed(self) -> int:
        return sum(o.status != "FINISHED" for o in self.outcomes)

    def ranked(self) -> list[Outcome]:
        """Best first; trials without a score after all scored ones, in plan order."""
        return sorted(self.outcomes, key=lambda o: (o.status != "FINISHED", o.mse, o.trial.index))

    @property
    def best(self) -> Outcome | None:
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].status == "FINISHED" else None

    def summary_metrics(self) -> dict[str, float]:
        metrics = {
            "n_trials": float(len(self.plan.trials)),
            "n_failed": float(self.n_failed),
            "n_reused": float(sum(o.reused for o in self.outcomes)),
        }
        if self.best is not None:
            metrics["best_mse"] = self.best.mse
        return metrics

    def to_json(self) -> str:
        rows: list[dict[str, Any]] = [
            {
                "index": o.trial.index,
                "name": o.trial.name,
                "model": o.trial.model_name,
                "status": o.status,
                "reused": o.reused,
                "metrics": o.metrics,
                "error": o.error,
                "run_id": o.run_id,
            }
            for o in self.ranked()
        ]
        return json.dumps(
            {
                "sweep_id": self.plan.sweep_id,
                "parent_run_id": self.parent_run_id,
                "splits": {k: v.url for k, v in self.splits.items()},
                "trials": rows,
            },
            indent=1,
        )
