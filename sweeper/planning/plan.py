"""The plan of a sweep: which trials exist and which preprocess group each one reads.

Computed once from the jobs' composed configs, then handed to an executor. The plan itself is plain
data (`sweeper.core.records.Plan`): JSON in, JSON out, no Hydra objects.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import os
import re
import secrets
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import urlsplit

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.types import Override, OverrideType
from omegaconf import DictConfig, ListConfig, OmegaConf

from sweeper.core import overrides, trust
from sweeper.core.overrides import MODEL_GROUP, MODEL_VALUE
from sweeper.core.records import Plan, PreprocessGroup, Trial, group_params
from sweeper.core.settings import SWEEP_WIDE, SearchKind, Settings
from sweeper.errors import SweeperError
from sweeper.safe_text import redact_text
from sweeper.search.halving import check_budgets


@dataclass(frozen=True)
class Job:
    """One Hydra job of the sweep: its overrides and composed config (without the hydra node).

    `base` is composed once per distinct non-model configuration and shared by its jobs; `values`
    (the job's `model.*` overrides) are applied on top only when `cfg` is asked for. A planner
    that only needs the resolved values (`resolved_config`) gets them without a DictConfig per
    job."""

    index: int
    overrides: tuple[str, ...]
    base: DictConfig
    model_name: str
    values: tuple[Override, ...] = ()
    # The base resolved to plain data, when its model values can be set on that directly.
    resolved_base: dict[str, Any] | None = field(default=None, compare=False, repr=False)

    @cached_property
    def cfg(self) -> DictConfig:
        if not self.values:
            return self.base
        cfg = copy.deepcopy(self.base)
        # Hydra's own rules for `key=v`, `+key=v`, `++key=v` and `~key`.
        ConfigLoaderImpl._apply_overrides_to_config(list(self.values), cfg)
        return cfg

    def resolved_config(self) -> dict[str, Any]:
        """The resolved config as plain data; its sections other than `model` may be shared
        with other jobs (read, never change them). Not kept: a sweep's jobs live as long as it
        does, and 100,000 kept configs were ~0.1 GB."""
        if self.resolved_base is not None and all(map(_plain, self.values)):
            model = dict(self.resolved_base[MODEL_GROUP])
            if all(o.key_or_group.removeprefix(MODEL_VALUE) in model for o in self.values):
                model.update(
                    {o.key_or_group.removeprefix(MODEL_VALUE): o.value() for o in self.values}
                )
                return {**self.resolved_base, MODEL_GROUP: model}
        return resolved(self.cfg)


def resolved(cfg: DictConfig) -> dict[str, Any]:
    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    return {str(k): v for k, v in container.items()}


def settable_on_resolved(base: DictConfig) -> bool:
    """Whether model values can be set on the resolved base: nothing in it is computed from a
    `model.*` value (an interpolation naming the model, or a relative one)."""
    unresolved = json.dumps(OmegaConf.to_container(base, resolve=False), default=str)
    return not any("model" in i or i.startswith(".") for i in _INTERPOLATION.findall(unresolved))


_INTERPOLATION = re.compile(r"\$\{([^}]*)\}")


def _plain(override: Override) -> bool:
    """`model.<name>=<value>` replacing a value with a number, bool, null or literal text."""
    value = override.value()
    return (
        override.type == OverrideType.CHANGE
        and override.package is None
        and override.key_or_group.count(".") == 1
        and (value is None or isinstance(value, bool | int | float | str))
        and not (isinstance(value, str) and "${" in value)
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
    configs = [job.resolved_config() for job in jobs]
    settings = _settings(configs)
    items = {job.index: _override_items(job) for job in jobs}
    varying = _varying_keys(list(items.values()))
    varying += [k for k in name_keys if k not in varying and k != "model"]
    names = _trial_names(list(zip(jobs, configs, strict=True)), items, varying)
    groups = _Groups()
    names_check = trust.NameCheck(settings.trust.modules)
    shared = _SharedSections()
    trials = []
    for job, cfg in zip(jobs, configs, strict=True):
        group = groups.of(cfg)
        model = cfg["model"]
        _check_targets(model, names_check)
        trials.append(
            Trial(
                index=job.index,
                name=names[job.index],
                model_name=job.model_name,
                model=model,
                group=group.id,
                overrides=job.overrides,
                shared_params=groups.params[group.id],
                resources=shared.resources(cfg.get("resources")),
                seed=group.seed,
                estimator_type=cfg.get("estimator_type"),
                simpler=shared.simpler(cfg.get("simpler"), job.model_name),
                budget=_budget(cfg.get("budget"), job.model_name),
            )
        )
    if settings.search.kind == SearchKind.halving and settings.search.resource == "budget":
        check_budgets(trials)  # refused now, before anything is preprocessed
    return Plan(
        sweep_id=sweep_id or new_sweep_id(),
        settings=settings,
        groups=tuple(groups.found.values()),
        trials=tuple(trials),
        sweep_params={
            "n_trials": str(len(trials)),
            "models": ",".join(dict.fromkeys(t.model_name for t in trials)),
            "eval.cv": str(settings.eval.cv),
            "eval.metric": settings.eval.metric,
            "eval.tie_level": str(settings.eval.tie_level),
            **_search_params(settings),
        },
    )


def _search_params(settings: Settings) -> dict[str, str]:
    """The sweep run's record of how it searched (search=halving's settings; grid: nothing)."""
    search = settings.search
    if search.kind != SearchKind.halving:
        return {}
    return {
        "search": str(search.kind),
        "search.resource": search.resource,
        "search.factor": str(search.factor),
        "search.min_resources": str(search.min_resources),
        "search.max_resources": str(search.max_resources),
    }


def _check_targets(model: Mapping[str, Any], check: trust.NameCheck) -> None:
    """Configs name classes, not calls: refused by name here, before any process imports them."""
    try:
        check(model)
    except trust.Untrusted as err:
        raise SweeperError(str(err)) from None


def _settings(configs: Sequence[Mapping[str, Any]]) -> Settings:
    first = configs[0]
    for cfg in configs[1:]:
        for key in SWEEP_WIDE:
            if cfg.get(key) != first.get(key):
                raise SweeperError(
                    f"'{key}' differs between trials ({first.get(key)} vs {cfg.get(key)}); "
                    "it is a setting of the whole sweep"
                )
    chosen = {key: _container(first.get(key)) for key in SWEEP_WIDE if key in first}
    text = json.dumps(chosen, sort_keys=True, default=str)
    # A copy: each plan's settings are its own. (cwd and HOME: what a local root is checked
    # and made absolute against.)
    return copy.deepcopy(_settings_of(text, os.getcwd(), os.path.expanduser("~")))


def _container(value: Any) -> Any:
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


@functools.lru_cache(maxsize=16)
def _settings_of(chosen: str, cwd: str, home: str) -> Settings:
    """Settings of a config's sweep-wide part (JSON), made once: OmegaConf's typed merge takes
    tens of milliseconds, and a streaming optimiser plans each trial apart."""
    return Settings.of(json.loads(chosen)).resolved()


# The names conf/data/'s options give: a file given by data.path is named by itself instead.
_OPTION_NAMES = ("csv", "diabetes")
_MAX_SEED = 2**32 - 1  # scikit-learn's random_state (NumPy's legacy seeding)


class _Groups:
    """The preprocess groups of a plan's trials, each worked out once: jobs composed from one
    base share its data and preprocess sections (Job.resolved_config), so 100,000 trials of one
    group hash those sections once, not 100,000 times."""

    def __init__(self) -> None:
        self.found: dict[str, PreprocessGroup] = {}
        self.params: dict[str, dict[str, Any]] = {}  # trial_params' share of each group
        self._shared: dict[tuple[int, int, str], tuple[Any, Any, PreprocessGroup]] = {}

    def of(self, cfg: Mapping[str, Any]) -> PreprocessGroup:
        data, preprocess, seed = cfg["data"], cfg["preprocess"], cfg["seed"]
        shared = (id(data), id(preprocess), repr(seed))
        known = self._shared.get(shared)
        if known is not None and known[0] is data and known[1] is preprocess:
            return known[2]
        group = _group(cfg)
        self._shared[shared] = (data, preprocess, group)  # held: their ids stay theirs
        if group.id not in self.found:
            self.found[group.id] = group
            self.params[group.id] = group_params(group)
        return self.found[group.id]


def _group(cfg: Mapping[str, Any]) -> PreprocessGroup:
    data = dict(cfg["data"])
    for key in ("path", "target"):
        if data.get(key) == "???":
            raise SweeperError(f"data.{key} is required for data={data.get('name')}")
    data["name"] = _data_name(data)
    preprocess = dict(cfg["preprocess"])
    seed = cfg["seed"]
    if isinstance(seed, str) and seed.strip().isdigit():  # `${oc.env:SEED}` is text
        seed = int(seed)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= _MAX_SEED:
        raise SweeperError(f"seed={seed} must be a whole number from 0 to {_MAX_SEED}")
    identity = json.dumps([data, preprocess, seed], sort_keys=True, default=str)
    return PreprocessGroup(
        id=hashlib.sha256(identity.encode()).hexdigest()[:12],
        data=data,
        preprocess=preprocess,
        seed=seed,
    )


class _SharedSections:
    """One object for each distinct `resources` and `simpler` of a plan's trials (a Trial holds
    them, read-only): jobs of one base share theirs, and 100,000 trials need not hold 100,000
    equal dicts."""

    def __init__(self) -> None:
        self._none: dict[str, Any] = {}
        self._simpler: dict[tuple[str, int], tuple[Any, dict[str, str]]] = {}

    def resources(self, section: Any) -> dict[str, Any]:
        return section or self._none

    def simpler(self, spec: Any, model_name: str) -> dict[str, str]:
        known = self._simpler.get((model_name, id(spec)))
        if known is not None and known[0] is spec:
            return known[1]
        checked = _simpler(spec, model_name)
        self._simpler[(model_name, id(spec))] = (spec, checked)  # held: its id stays its own
        return checked


def _budget(name: Any, model_name: str) -> str | None:
    """A model config's `budget`: the name of one of its settings (search=halving's resource)."""
    if name is None:
        return None
    if not isinstance(name, str) or not name.isidentifier():
        raise SweeperError(f"model {model_name}: budget={name} must name one of its settings")
    return name


def _simpler(spec: Any, model_name: str) -> dict[str, str]:
    """A model config's `simpler`, checked: settings of it, each `lower` or `higher`."""
    found = dict(spec or {})
    bad = {k: v for k, v in found.items() if v not in ("lower", "higher")}
    if bad:
        key, value = next(iter(bad.items()))
        raise SweeperError(f"model {model_name}: simpler.{key}={value} must be lower or higher")
    return {str(k): str(v) for k, v in found.items()}


def _data_name(data: Mapping[str, Any]) -> Any:
    """What the data is called in MLflow: its file's name (`carseats` for .../carseats.csv)
    unless the user named it; a bundled data set's own name."""
    path, name = data.get("path"), data.get("name")
    if not path or name not in _OPTION_NAMES:
        return name
    return PurePosixPath(urlsplit(str(path)).path).stem or name


def _override_items(job: Job) -> dict[str, str]:
    items = {}
    for override in job.overrides:
        key, value = overrides.key_value(override)
        items[key] = value
    return items


def _varying_keys(per_job: Sequence[Mapping[str, str]]) -> list[str]:
    """Override keys whose value differs between jobs (each job's overrides as key → value):
    what tells one trial from another."""
    values: dict[str, set[str]] = {}
    for items in per_job:
        for key, value in items.items():
            values.setdefault(key, set()).add(value)
    return [
        key
        for key, seen in values.items()
        if key != "model" and (len(seen) > 1 or any(key not in items for items in per_job))
    ]


def _trial_names(
    jobs: Sequence[tuple[Job, Mapping[str, Any]]],
    items: Mapping[int, Mapping[str, str]],
    varying: Sequence[str],
) -> dict[int, str]:
    """Each job's trial name (by its index; `jobs`: each with its resolved config): floats to 4
    significant digits, and to as many more as tell apart two trials that would otherwise read
    the same (alpha=999952 and alpha=999950 are both 1e+06 at 4)."""
    shown = _ShownKeys(varying)
    names = {job.index: _trial_name(job, cfg, items[job.index], shown) for job, cfg in jobs}
    for digits in (6, 8, 10, 12, 17):
        counts = Counter(names.values())
        clashing = [(job, cfg) for job, cfg in jobs if counts[names[job.index]] > 1]
        if not clashing:
            break
        for job, cfg in clashing:
            names[job.index] = _trial_name(job, cfg, items[job.index], shown, digits)
    return names


class _ShownKeys:
    """Which varying keys a trial's name shows, in order: its model's values in its grid's order
    (then its config's), then anything else. The same for every job of a model that sets the
    same keys, so worked out once for each."""

    def __init__(self, varying: Sequence[str]) -> None:
        self.varying = varying
        self._known: dict[tuple[str, tuple[bool, ...]], list[str]] = {}

    def of(self, job: Job, cfg: Mapping[str, Any], items: Mapping[str, str]) -> list[str]:
        present = tuple(k in items for k in self.varying)
        known = self._known.get((job.model_name, present))
        if known is None:
            grid = [f"{MODEL_VALUE}{k}" for k in cfg.get("grid") or {}]
            config = [f"{MODEL_VALUE}{k}" for k in cfg.get(MODEL_GROUP) or {}]
            order = {key: i for i, key in enumerate(dict.fromkeys([*grid, *config]))}
            known = sorted(
                (k for k in self.varying if k in items),
                key=lambda k: (not k.startswith(MODEL_VALUE), order.get(k, len(order))),
            )
            self._known[(job.model_name, present)] = known
        return known


def _trial_name(
    job: Job,
    cfg: Mapping[str, Any],
    items: Mapping[str, str],
    shown: _ShownKeys,
    digits: int = 4,
) -> str:
    """ "rf n_estimators=100 max_depth=4 seed=2": the model's values in its grid's order (then its
    config's), whatever order the command line gave them, floats to `digits` significant digits
    (the exact value is in the params); then anything else that varies. No URL's credentials:
    the name is a run's name and a registered version's tag."""
    values = [
        f"{k.removeprefix(MODEL_VALUE)}={_shown(cfg, k, items[k], digits)}"
        for k in shown.of(job, cfg, items)
    ]
    return redact_text(" ".join([job.model_name, *values]))


def _shown(cfg: Mapping[str, Any], key: str, text: str, digits: int = 4) -> str:
    value: Any = cfg if key.startswith(MODEL_VALUE) else None
    for part in key.split(".") if value is not None else ():
        value = value.get(part) if isinstance(value, Mapping) else None
    return f"{value:.{digits}g}" if isinstance(value, float) else text
