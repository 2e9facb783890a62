"""The plan of a sweep: which trials exist and which preprocess group each one reads.

Computed once from the jobs' composed configs, then handed to an executor. The plan itself is plain
data (`sweeper.core.records.Plan`): JSON in, JSON out, no Hydra objects.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeper.core import storage
from sweeper.core.records import Plan, PreprocessGroup, Trial
from sweeper.core.settings import SWEEP_WIDE, Settings
from sweeper.errors import SweeperError

MODEL = "model."


@dataclass(frozen=True)
class Job:
    """One Hydra job of the sweep: its overrides and composed config (without the hydra node)."""

    index: int
    overrides: tuple[str, ...]
    cfg: DictConfig
    model_name: str


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
                cv=settings.eval.cv,
                seed=group.seed,
                estimator_type=cfg.get("estimator_type"),
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
            "eval.cv": str(settings.eval.cv),
            "eval.metric": settings.eval.metric,
        },
    )


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def _settings(configs: Sequence[Mapping[str, Any]]) -> Settings:
    first = configs[0]
    for cfg in configs[1:]:
        for key in SWEEP_WIDE:
            if cfg.get(key) != first.get(key):
                raise SweeperError(
                    f"'{key}' differs between trials ({first.get(key)} vs {cfg.get(key)}); "
                    "it is a setting of the whole sweep"
                )
    return Settings.of(dict(first)).resolved()


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
    """ "rf n_estimators=100 max_depth=4 seed=2": the model's values in its grid's order (then its
    config's), whatever order the command line gave them, floats to 4 significant digits (the
    exact value is in the params); then anything else that varies."""
    items = _override_items(job)
    grid = [f"{MODEL}{k}" for k in job.cfg.get("grid") or {}]
    config = [f"{MODEL}{k}" for k in job.cfg.get("model") or {}]
    order = {key: i for i, key in enumerate(dict.fromkeys([*grid, *config]))}
    shown_keys = sorted(
        (k for k in varying if k in items),
        key=lambda k: (not k.startswith(MODEL), order.get(k, len(order))),
    )
    shown = [f"{k.removeprefix(MODEL)}={_shown(job, k, items[k])}" for k in shown_keys]
    return " ".join([job.model_name, *shown])


def _shown(job: Job, key: str, text: str) -> str:
    value = OmegaConf.select(job.cfg, key, default=None) if key.startswith(MODEL) else None
    return f"{value:.4g}" if isinstance(value, float) else text
