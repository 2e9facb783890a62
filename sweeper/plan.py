"""The plan of a sweep: which trials exist and which preprocess group each one reads.

Computed once from the jobs' configs, then handed to an executor (the local pool, or Argo).
It is plain data: JSON in, JSON out, no Hydra objects.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeper import storage
from sweeper.errors import SweeperError

# Settings that belong to the sweep as a whole: every trial must agree on them.
SWEEP_WIDE = ("backend", "local", "argo", "storage", "mlflow", "sweep")
BACKENDS = ("local", "argo")


@dataclass(frozen=True)
class Job:
    """One Hydra job of the sweep: its overrides and composed config (without the hydra node)."""

    index: int
    overrides: tuple[str, ...]
    cfg: DictConfig
    model_name: str


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


@dataclass(frozen=True)
class Settings:
    backend: str
    workers: int | None
    storage_root: str
    tracking_uri: str
    experiment: str
    rerun: bool = False  # train trials again even when MLflow has them finished
    register_best: str | None = None  # registered model that gets the best trial if it is better


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

    def trials_of(self, group_id: str) -> list[Trial]:
        return [t for t in self.trials if t.group == group_id]

    def to_json(self) -> str:
        """The plan as a record: credentials in a data URL are left out."""
        record = asdict(self)
        for group in record["groups"]:
            group["data"]["path"] = storage.redact(group["data"].get("path"))
        return json.dumps(record, indent=1, default=str)

    @classmethod
    def from_json(cls, text: str) -> Plan:
        record = json.loads(text)
        return cls(
            sweep_id=record["sweep_id"],
            settings=Settings(**record["settings"]),
            groups=tuple(PreprocessGroup(**g) for g in record["groups"]),
            trials=tuple(
                Trial(**{**t, "overrides": tuple(t["overrides"])}) for t in record["trials"]
            ),
            sweep_params=record["sweep_params"],
            parent_run_id=record["parent_run_id"],
        )


def new_sweep_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def build_plan(
    jobs: Sequence[Job], sweep_id: str | None = None, name_keys: Sequence[str] = ()
) -> Plan:
    """`name_keys`: override keys every trial's name shows even when this batch of jobs does not
    vary them (an optimiser's search space, asked for a few trials at a time)."""
    if not jobs:
        raise SweeperError("the sweep has no trials")
    configs = [_resolved(job.cfg) for job in jobs]
    settings = _settings(configs)
    varying = _varying_keys(jobs)
    varying += [k for k in name_keys if k not in varying and k != "model"]
    groups: dict[str, PreprocessGroup] = {}
    trials = []
    for job, cfg in zip(jobs, configs, strict=True):
        group = _group(cfg)
        groups.setdefault(group.id, group)
        model = cfg["model"]
        trials.append(
            Trial(
                index=job.index,
                name=_trial_name(job, varying),
                model_name=job.model_name,
                model=model,
                group=group.id,
                overrides=job.overrides,
                params=_trial_params(job.model_name, model, group),
                resources=cfg.get("resources") or {},
            )
        )
    return Plan(
        sweep_id=sweep_id or new_sweep_id(),
        settings=settings,
        groups=tuple(groups.values()),
        trials=tuple(trials),
        sweep_params={
            "n_trials": str(len(trials)),
            "models": ",".join(dict.fromkeys(t.model_name for t in trials)),
        },
    )


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return container


def _settings(configs: Sequence[Mapping[str, Any]]) -> Settings:
    first = configs[0]
    for cfg in configs[1:]:
        for key in SWEEP_WIDE:
            if cfg.get(key) != first.get(key):
                raise SweeperError(
                    f"'{key}' differs between trials ({first.get(key)} vs {cfg.get(key)}); "
                    "it is a setting of the whole sweep"
                )
    backend = first["backend"]
    if backend not in BACKENDS:
        raise SweeperError(f"backend={backend} is not available; choose one of {list(BACKENDS)}")
    workers = first["local"]["workers"]
    if workers is not None and int(workers) < 1:
        raise SweeperError(f"local.workers={workers} must be at least 1 (or null: one per core)")
    return Settings(
        backend=backend,
        workers=None if workers is None else int(workers),
        storage_root=storage.absolute(str(first["storage"]["root"])),
        tracking_uri=str(first["mlflow"]["tracking_uri"]),
        experiment=str(first["mlflow"]["experiment"]),
        rerun=bool(first["sweep"]["rerun"]),
        register_best=_optional_text(first["mlflow"].get("register_best")),
    )


def _optional_text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def trial_key(split_key: str, model: Mapping[str, Any]) -> str:
    """A trial's identity: its resolved model config and the stored split (settings and the
    input's bytes) it trains on. The same key means the same result, so it is not trained twice."""
    identity = json.dumps([split_key, model], sort_keys=True, default=str)
    return hashlib.sha256(identity.encode()).hexdigest()[:20]


def _group(cfg: Mapping[str, Any]) -> PreprocessGroup:
    data = dict(cfg["data"])
    for key in ("path", "target"):
        if data.get(key) == "???":
            raise SweeperError(f"data.{key} is required for data={data.get('name')}")
    preprocess = dict(cfg["preprocess"])
    seed = int(cfg["seed"])
    identity = json.dumps([data, preprocess, seed], sort_keys=True, default=str)
    return PreprocessGroup(
        id=hashlib.sha256(identity.encode()).hexdigest()[:12],
        data=data,
        preprocess=preprocess,
        seed=seed,
    )


def _trial_params(model_name: str, model: Mapping[str, Any], group: PreprocessGroup) -> dict:
    params = {"model": model_name, "model.class": model.get("_target_", "")}
    params.update({f"model.{k}": _text(v) for k, v in model.items() if not k.startswith("_")})
    for key, value in group.data.items():
        params[f"data.{key}"] = storage.redact(value) if key == "path" else _text(value)
    params.update({f"preprocess.{k}": _text(v) for k, v in group.preprocess.items()})
    params["seed"] = str(group.seed)
    return params


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return "null" if value is None else str(value)


def _override_items(job: Job) -> dict[str, str]:
    items = {}
    for override in job.overrides:
        key, _, value = override.lstrip("+~").partition("=")
        items[key] = value
    return items


def _varying_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs: what tells one trial from another."""
    per_job = [_override_items(job) for job in jobs]
    values: dict[str, set[str]] = {}
    for items in per_job:
        for key, value in items.items():
            values.setdefault(key, set()).add(value)
    return [
        key
        for key, seen in values.items()
        if key != "model" and (len(seen) > 1 or any(key not in items for items in per_job))
    ]


def _trial_name(job: Job, varying: Sequence[str]) -> str:
    items = _override_items(job)
    # Model values first ("lasso alpha=0.1 seed=2"), then anything else that varies.
    ordered = sorted(varying, key=lambda k: not k.startswith("model."))
    shown = [f"{k.removeprefix('model.')}={items[k]}" for k in ordered if k in items]
    return " ".join([job.model_name, *shown])
