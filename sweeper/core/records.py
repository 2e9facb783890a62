"""The records a sweep is made of, whatever executes it: its plan (groups and trials), what came of
each trial, and the JSON of both, in both directions.

Plain data, importable without pandas, scikit-learn or MLflow: the process that schedules trials
(a local sweep's main process) loads them only for what it does besides (its head start's
preprocessing, the tables of a large sweep).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from sweeper.core.settings import Settings, TrustSettings
from sweeper.core.text_enum import TextEnum
from sweeper.safe_text import redact, redact_text

TARGET_COLUMN = "__target__"  # the target's column in a stored split's tables


def now_ms() -> int:
    """The clock records are stamped with: milliseconds since the epoch, as MLflow keeps times."""
    return int(time.time() * 1000)


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
    task: str = "regression"  # metrics.ProblemType: what its target asks for
    smallest_class: int = 0  # a classification's: training rows of its rarest class
    # Which data it is, for the sweep run's lineage (MLflow's dataset inputs): its name, where
    # it was read from (no credentials), the SHA-256 of its bytes, and its columns' types.
    name: str = ""
    source: str = ""
    content: str = ""
    schema: dict[str, str] = field(default_factory=dict)  # column → MLflow type name

    def describe(self) -> str:
        """ "322 rows in, 59 dropped (missing target), 184 train / 79 test; 19 columns → 22
        features" """
        r = self.report
        if not r:
            return ""
        return (
            f"{r['rows_in']} rows in, {r['rows_dropped_missing_target']} dropped (missing "
            f"target), {r['rows_train']} train / {r['rows_test']} test; {r['columns_in']} "
            f"columns → {r['features_out']} features; a {self.task}"
        )


# What a stored split's report counts, in the order it is said.
SPLIT_REPORT = (
    "rows_in",
    "rows_dropped_missing_target",
    "rows_train",
    "rows_test",
    "columns_in",
    "features_out",
)


@dataclass(frozen=True)
class TrialScore:
    metrics: dict[str, float]  # RECORDED: on the test rows, and CV means/spreads
    started_ms: int
    ended_ms: int
    folds: dict[str, tuple[float, ...]] = field(default_factory=dict)  # metric → its CV scores
    stopped: bool = False  # eval.early_stop ended its CV before the last fold: folds are fewer


@dataclass(frozen=True)
class PreprocessGroup:
    """One distinct (data, preprocess, seed) configuration: preprocessed once per sweep."""

    id: str
    data: dict[str, Any]
    preprocess: dict[str, Any]
    seed: int


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial of a plan. A sweep holds 100,000 of them: slots, and what trials of a group
    have in common held once (`shared_params`), not once a trial."""

    index: int
    name: str  # "lasso alpha=0.1": the model and the values that vary in this sweep
    model_name: str
    model: dict[str, Any]  # resolved model config with its `_target_`
    group: str  # PreprocessGroup.id
    overrides: tuple[str, ...]
    # What MLflow records for the trial beside its model's values: its group's data,
    # preprocessing and seed (group_params), one mapping shared by the group's trials.
    shared_params: Mapping[str, str] = field(default_factory=dict, repr=False)
    resources: dict[str, Any] = field(default_factory=dict)  # Kubernetes requests/limits
    seed: int = 0  # the sweep's seed: shuffles those folds
    estimator_type: str | None = None  # its model config's: regressor or classifier
    # Its model config's notion of simpler (eval.choose=simplest): each setting's direction,
    # "lower" or "higher", the first deciding first: {n_estimators: lower, max_depth: lower}.
    simpler: dict[str, str] = field(default_factory=dict)
    # Its model config's budget parameter (`budget:`, e.g. n_estimators): search=halving's
    # resource with search.resource=budget.
    budget: str | None = None
    # search=halving: the rung this trial is (0 first; None: not halving), and, below the last
    # rung, the training rows each CV fold fits on (search.resource=rows; None: all of them).
    # A trial below the last rung (`partial`) is scored by CV only: no test score, no model.
    rung: int | None = None
    rows: int | None = None
    partial: bool = False

    @property
    def params(self) -> dict[str, str]:
        """What MLflow records for the trial (worked out when asked: ~2 KB a trial if kept)."""
        return trial_params(self.model_name, self.model, self.shared_params)


_TRIAL_FIELDS = {f.name for f in dataclasses.fields(Trial)}


class TrialValues(NamedTuple):
    """What looking a trial up (its key) and checking its model values need of it: what is sent
    to a worker for that, 100,000 of them in a tenth of the bytes and time of whole Trials."""

    name: str
    model: dict[str, Any]
    rows: int | None = None

    @classmethod
    def of(cls, trial: Trial) -> TrialValues:
        return cls(trial.name, trial.model, trial.rows)


def trial_params(
    model_name: str, model: Mapping[str, Any], group_params: Mapping[str, Any]
) -> dict[str, str]:
    """What MLflow records for a trial: its model's values and its group's settings
    (`group_params`, the same for every trial of the group)."""
    params = {"model": model_name, "model.class": model.get("_target_", "")}
    params.update({f"model.{k}": _text(v) for k, v in model.items() if not k.startswith("_")})
    params.update(group_params)
    return params


def group_params(group: PreprocessGroup) -> dict[str, Any]:
    """What MLflow records of a trial's preprocess group: its data, preprocessing and seed."""
    params: dict[str, Any] = {}
    for key, value in group.data.items():
        params[f"data.{key}"] = redact(value) if key == "path" else _text(value)
    params.update({f"preprocess.{k}": _text(v) for k, v in group.preprocess.items()})
    params["seed"] = str(group.seed)
    return params


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "null" if value is None else str(value)


@dataclass(frozen=True)
class TrialRecord:
    """What a trial's child run is called and what identifies it."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    index: int | None = None  # the trial's place in its plan
    key: str | None = None  # trial_key: what makes two trials the same
    split_key: str | None = None

    @classmethod
    def of(cls, trial: Trial, split: StoredSplit | None = None, cv: int = 0) -> TrialRecord:
        """`cv`: the sweep's `eval.cv`, the folds the trial is scored on (part of its key)."""
        if split is None:
            return cls(name=trial.name, params=trial.params, index=trial.index)
        key = trial_key(split.key, trial.model, cv, trial.rows)
        params = {**trial.params, "data.task": split.task}  # `auto` resolved by preprocessing
        if trial.rows is not None:
            params["rows"] = str(trial.rows)
        return cls(trial.name, params, trial.index, key, split.key)


def trial_key(
    split_key: str, model: Mapping[str, Any], cv: int = 0, rows: int | None = None
) -> str:
    """A trial's identity: its resolved model config (by value), the stored split (settings and
    the input's bytes) it trains on, its CV folds (shuffled with the split's seed) and, for a
    halving rung on fewer rows, how many each fold fits on. The same key means the same
    result: it is not trained twice."""
    parts: list[Any] = [split_key, _by_value(model)]
    if cv:  # without folds, the identity trials had before CV existed
        parts.append({"cv": cv})
    if rows is not None:  # all rows: the identity of the grid's trial of that configuration
        parts.append({"rows": rows})
    identity = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def stopped_key(key: str) -> str:
    """The identity of a trial eval.early_stop stopped: a result of its own, so the trial's own
    key (finished in full) is still trained by a sweep that does not stop early."""
    return f"{key}-stopped"


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

    def with_trust(self, trust: TrustSettings) -> Plan:
        """The plan trusting what its pod was told to (core.trust.pod_arguments)."""
        return dataclasses.replace(self, settings=dataclasses.replace(self.settings, trust=trust))

    def with_params(self, params: Mapping[str, str]) -> Plan:
        """More params of the sweep's run (a study's, for instance)."""
        return dataclasses.replace(self, sweep_params={**self.sweep_params, **params})

    def trials_of(self, group_id: str) -> list[Trial]:
        return [t for t in self.trials if t.group == group_id]

    def group(self, group_id: str) -> PreprocessGroup | None:
        return next((g for g in self.groups if g.id == group_id), None)

    def to_json(self) -> str:
        """The plan as a record: no credentials (in a data URL, or the submitter's settings)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["settings"] = self.settings.portable()
        record["groups"] = [asdict(g) for g in self.groups]
        for group in record["groups"]:
            group["data"]["path"] = redact(group["data"].get("path"))
        # Without params: from the trial's model and group again when read (most of its bytes).
        fields = [f.name for f in dataclasses.fields(Trial) if f.name != "shared_params"]
        # `cv` per trial only for a step image of the previous version, which reads it from each
        # trial (a `:latest` pulled again mid-workflow); this version takes the settings'.
        cv = self.settings.eval.cv
        record["trials"] = [{**{k: getattr(t, k) for k in fields}, "cv": cv} for t in self.trials]
        # Compact: a 100,000-trial plan is tens of megabytes even so. No URL's credentials in
        # it anywhere (a trial's overrides repeat what was typed).
        return redact_text(json.dumps(record, separators=(",", ":"), default=str))

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        record = json.loads(text)
        groups = {g["id"]: PreprocessGroup(**g) for g in record["groups"]}
        of_group = {key: group_params(group) for key, group in groups.items()}

        def trial(t: dict[str, Any]) -> Trial:
            # A plan another version wrote (an older step image's) may hold keys this one has
            # dropped, such as a per-trial `cv`: the sweep's settings hold it now.
            known = {k: v for k, v in t.items() if k in _TRIAL_FIELDS}
            shared = of_group[t["group"]]
            return Trial(**{**known, "overrides": tuple(t["overrides"]), "shared_params": shared})

        return cls(
            sweep_id=record["sweep_id"],
            settings=Settings.of(record["settings"]),
            groups=tuple(groups.values()),
            trials=tuple(trial(t) for t in record["trials"]),
            sweep_params=record["sweep_params"],
            parent_run_id=record["parent_run_id"],
        )
