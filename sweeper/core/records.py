"""The records a sweep is made of, whatever executes it: its plan (groups and trials), what came of
each trial, and the JSON of both, in both directions.

Plain data, importable without pandas, scikit-learn or MLflow: the process that only schedules
trials (a local sweep's main process) never loads them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sweeper.core import storage
from sweeper.core.metrics import METRICS, Ranking
from sweeper.core.settings import Settings
from sweeper.core.text_enum import TextEnum

TARGET_COLUMN = "__target__"  # the target's column in a stored split's tables


class Status(TextEnum):
    """A trial's (or a sweep run's) state; the first four are MLflow's own run statuses."""

    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    NOT_RUN = "NOT_RUN"  # its preprocess step failed, or no run was logged for it


@dataclass(frozen=True)
class StoredSplit:
    url: str  # folder holding train.parquet, test.parquet and meta.json
    key: str
    reused: bool  # True when an earlier run had already stored this split
    # What preprocessing did to the data (SPLIT_REPORT's counts) and what it warned of.
    report: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def describe(self) -> str:
        """ "322 rows in, 59 dropped (missing target), 184 train / 79 test; 19 columns → 22
        features" """
        r = self.report
        if not r:
            return ""
        return (
            f"{r['rows_in']} rows in, {r['rows_dropped_missing_target']} dropped (missing "
            f"target), {r['rows_train']} train / {r['rows_test']} test; {r['columns_in']} "
            f"columns → {r['features_out']} features"
        )


# What a stored split's report counts, in the order it is said.
SPLIT_REPORT = ("rows_in", "rows_dropped_missing_target", "rows_train", "rows_test",
                "columns_in", "features_out")  # fmt: skip


@dataclass(frozen=True)
class TrialScore:
    metrics: dict[str, float]  # RECORDED: on the test rows, and CV means/spreads
    started_ms: int
    ended_ms: int


@dataclass(frozen=True)
class PreprocessGroup:
    """One distinct (data, preprocess, seed) configuration: preprocessed once per sweep."""

    id: str
    data: dict[str, Any]
    preprocess: dict[str, Any]
    seed: int


@dataclass(frozen=True)
class Trial:
    index: int
    name: str  # "lasso alpha=0.1": the model and the values that vary in this sweep
    model_name: str
    model: dict[str, Any]  # resolved model config with its `_target_`
    group: str  # PreprocessGroup.id
    overrides: tuple[str, ...]
    params: dict[str, str]  # what MLflow records for the trial
    resources: dict[str, Any] = field(default_factory=dict)  # Kubernetes requests/limits
    cv: int = 0  # folds of the training rows it is cross-validated on (eval.cv)
    seed: int = 0  # the sweep's seed: shuffles those folds


@dataclass(frozen=True)
class TrialRecord:
    """What a trial's child run is called and what identifies it."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    index: int | None = None  # the trial's place in its plan
    key: str | None = None  # trial_key: what makes two trials the same
    split_key: str | None = None

    @classmethod
    def of(cls, trial: Trial, split: StoredSplit | None = None) -> TrialRecord:
        if split is None:
            return cls(name=trial.name, params=trial.params, index=trial.index)
        key = trial_key(split.key, trial.model, trial.cv)
        return cls(trial.name, trial.params, trial.index, key, split.key)


def trial_key(split_key: str, model: Mapping[str, Any], cv: int = 0) -> str:
    """A trial's identity: its resolved model config (by value), the stored split (settings and
    the input's bytes) it trains on and its CV folds (shuffled with the split's seed). The same
    key means the same result: it is not trained twice."""
    parts: list[Any] = [split_key, _by_value(model)]
    if cv:  # without folds, the identity trials had before CV existed
        parts.append({"cv": cv})
    identity = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def _by_value(value: Any) -> Any:
    """Numbers compared by value, not spelling: alpha 1 and 1.0 are one trial (booleans stay
    booleans, and so distinct from 1)."""
    if isinstance(value, Mapping):
        return {k: _by_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_by_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**53:
        return float(value)  # exactly: beyond 2**53 a float would merge distinct integers
    return value


@dataclass(frozen=True)
class Plan:
    sweep_id: str
    settings: Settings
    groups: tuple[PreprocessGroup, ...]
    trials: tuple[Trial, ...]
    sweep_params: dict[str, str] = field(default_factory=dict)
    parent_run_id: str | None = None  # the sweep's MLflow run, once opened

    def with_parent(self, parent_run_id: str) -> Plan:
        return dataclasses.replace(self, parent_run_id=parent_run_id)

    def with_params(self, params: Mapping[str, str]) -> Plan:
        """More params of the sweep's run (a study's, for instance)."""
        return dataclasses.replace(self, sweep_params={**self.sweep_params, **params})

    def trials_of(self, group_id: str) -> list[Trial]:
        return [t for t in self.trials if t.group == group_id]

    def group(self, group_id: str) -> PreprocessGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)

    def to_json(self) -> str:
        """The plan as a record: no credentials (in a data URL, or the submitter's settings)."""
        record = asdict(self)
        record["settings"] = self.settings.portable()
        for group in record["groups"]:
            group["data"]["path"] = storage.redact(group["data"].get("path"))
        return json.dumps(record, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        record = json.loads(text)
        return cls(
            sweep_id=record["sweep_id"],
            settings=Settings.of(record["settings"]),
            groups=tuple(PreprocessGroup(**g) for g in record["groups"]),
            trials=tuple(
                Trial(**{**t, "overrides": tuple(t["overrides"])}) for t in record["trials"]
            ),
            sweep_params=record["sweep_params"],
            parent_run_id=record["parent_run_id"],
        )


@dataclass(frozen=True)
class Outcome:
    trial: Trial
    status: Status  # FINISHED, FAILED, or NOT_RUN
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    run_id: str | None = None
    reused: bool = False  # finished by an earlier sweep: its run is that sweep's

    @classmethod
    def reused_from(cls, trial: Trial, metrics: dict[str, float], run_id: str) -> Outcome:
        return cls(trial, Status.FINISHED, metrics, run_id=run_id, reused=True)

    @classmethod
    def finished(cls, trial: Trial, metrics: dict[str, float], run_id: str) -> Outcome:
        return cls(trial, Status.FINISHED, metrics, run_id=run_id)

    @classmethod
    def failed(cls, trial: Trial, error: BaseException | str, run_id: str | None) -> Outcome:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        return cls(trial, Status.FAILED, error=text, run_id=run_id)

    @classmethod
    def not_run(cls, trial: Trial, reason: str) -> Outcome:
        return cls(trial, Status.NOT_RUN, error=reason)

    @property
    def ok(self) -> bool:
        return self.status == Status.FINISHED

    @property
    def mse(self) -> float:
        """On the test rows."""
        return self.metrics.get("mse", math.inf)

    def line(self, ranking: Ranking | None = None) -> str:
        if not self.ok:
            return f"{self.trial.name}: {self.status} {self.error}"
        reused = " (reused)" if self.reused else ""
        keys = dict.fromkeys([ranking.key if ranking else "mse", "mse"])
        shown = " ".join(f"{k}={self.metrics.get(k, math.nan):.6g}" for k in keys)
        return f"{self.trial.name}: {shown}{reused}"


@dataclass
class SweepResult:
    plan: Plan
    parent_run_id: str
    tracking_uri: str
    outcomes: list[Outcome] = field(default_factory=list)
    splits: dict[str, StoredSplit] = field(default_factory=dict)
    # Bad input (data, split settings, model values) that stopped trials before they ran.
    input_errors: list[str] = field(default_factory=list)
    experiment_id: str = ""  # MLflow's, for links to the sweep's runs
    notes: list[str] = field(default_factory=list)  # what ending the sweep's run reported

    @property
    def n_failed(self) -> int:
        return sum(not o.ok for o in self.outcomes)

    @property
    def ranking(self) -> Ranking:
        return self.plan.settings.ranking

    def ranked(self) -> list[Outcome]:
        """Best first; trials without a score after all scored ones, in plan order."""
        ranking = self.ranking
        return sorted(
            self.outcomes, key=lambda o: (not o.ok, ranking.loss(o.metrics), o.trial.index)
        )

    @property
    def best(self) -> Outcome | None:
        ranked = self.ranked()
        return ranked[0] if ranked and ranked[0].ok else None

    def summary_metrics(self) -> dict[str, float]:
        metrics = {
            "n_trials": float(len(self.plan.trials)),
            "n_failed": float(self.n_failed),
            "n_reused": float(sum(o.reused for o in self.outcomes)),
        }
        best = self.best
        if best is not None:  # its test scores: the honest estimate; and what it was chosen by
            for key in dict.fromkeys([self.ranking.key, *METRICS]):
                if key in best.metrics:
                    metrics[f"best_{key}"] = best.metrics[key]
        return metrics

    def to_json(self) -> str:
        rows: list[dict[str, Any]] = [
            {
                "index": o.trial.index,
                "name": o.trial.name,
                "model": o.trial.model_name,
                "status": o.status.value,
                "reused": o.reused,
                "metrics": o.metrics,
                "error": o.error,
                "run_id": o.run_id,
            }
            for o in self.ranked()
        ]
        record = {
            "sweep_id": self.plan.sweep_id,
            "parent_run_id": self.parent_run_id,
            "splits": {k: v.url for k, v in self.splits.items()},
            "trials": rows,
        }
        return json.dumps(record, indent=1)

    @classmethod
    def from_json(cls, text: str | bytes, plan: Plan) -> SweepResult:
        """A recorded result, its rows matched to `plan`'s trials by index (rows for trials the
        plan lacks are left out). Splits come back with their URLs only."""
        record = json.loads(text)
        trials = {t.index: t for t in plan.trials}
        result = cls(plan, str(record["parent_run_id"]), plan.settings.mlflow.tracking_uri)
        for row in record["trials"]:
            trial = trials.get(int(row["index"]))
            if trial is None:
                continue
            result.outcomes.append(
                Outcome(
                    trial,
                    Status(row["status"]),
                    dict(row.get("metrics") or {}),
                    row.get("error"),
                    row.get("run_id"),
                    bool(row.get("reused")),
                )
            )
        result.splits = {
            group: StoredSplit(url, key=url.rsplit("/", 1)[-1], reused=True)
            for group, url in (record.get("splits") or {}).items()
        }
        return result
