"""Turning a command line into the sweep's jobs, with per-model grids.

`model=rf,lasso` runs each chosen model's own `grid` (from its config file). A model value given on
the command line (`model.alpha=0.01,0.1`) replaces that axis of the grid of every chosen model
that has that parameter; the other axes stay. Every other sweep (`seed=1,2`,
`data.test_size=0.2,0.3`) multiplies all of them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType, Transformer, ValueType
from omegaconf import DictConfig

from sweeper.core.metrics import ProblemType
from sweeper.core.overrides import MODEL_GROUP, MODEL_VALUE
from sweeper.core.settings import config_dir
from sweeper.errors import SweeperError
from sweeper.planning.task import data_task, fits


def expand(
    arguments: Sequence[str],
    params: Mapping[str, Any],
    default_model: str,
    compose: Callable[[list[str]], DictConfig],
    parser: OverridesParser,
    parsed: dict[str, Override] | None = None,
) -> list[list[str]]:
    """The override list of every job. `compose` builds a config for one list of overrides.
    `parsed` (if given) receives the override of each line a model value's sweep expands to,
    built from the sweep's own elements: what parsing that line again would give."""
    overrides = _merge(
        parser.parse_overrides(as_overrides(params)), parser.parse_overrides(list(arguments))
    )
    model_choice = [o for o in overrides if o.key_or_group == MODEL_GROUP]
    model_values = [o for o in overrides if o.key_or_group.startswith(MODEL_VALUE)]
    others = [o for o in overrides if o not in model_choice and o not in model_values]

    models = _values(model_choice[0]) if model_choice else [default_model]
    fixed = [_line(o) for o in others if not o.is_sweep_override()]
    other_axes = [_axis(o) for o in others]

    # glob() keeps the models that fit the data (its task is read once, when first needed).
    globbed = bool(model_choice) and model_choice[0].value_type == ValueType.GLOB_CHOICE_SWEEP
    task: list[ProblemType | None] = []
    used: set[str] = set()
    jobs = []
    for model in models:
        cfg = compose([*fixed, f"{MODEL_GROUP}={model}"])
        if globbed:
            task = task or [data_task(cfg.data)]
            if not fits(cfg.get("estimator_type"), task[0]):
                continue
        given = [o for o in model_values if _applies(o, cfg)]
        used.update(o.key_or_group for o in given)
        # A value from the command line replaces that axis of the model's grid; the rest stays.
        grid = _grid_axes(cfg, parser, model, parsed)
        grid.update({o.key_or_group: _axis(o, parsed) for o in given})
        axes = list(grid.values())
        for other in itertools.product(*other_axes):
            for values in itertools.product(*axes):
                jobs.append([*other, f"{MODEL_GROUP}={model}", *values])

    if globbed and not jobs:
        raise SweeperError(f"{_line(model_choice[0])}: none of its models fit a {task[0]} target")
    unused = [o.key_or_group for o in model_values if o.key_or_group not in used]
    if unused and not globbed:  # a glob's values may belong to models it left out
        raise SweeperError(
            f"{', '.join(unused)}: not a parameter of model {', '.join(map(str, models))}; "
            f"use ++{unused[0]}=… to pass it anyway"
        )
    return jobs


def as_overrides(params: Mapping[str, Any]) -> list[str]:
    """`hydra.sweeper.params` as command-line overrides."""
    return [f"{key}={_sweep_text(value)}" for key, value in params.items()]


def _merge(first: Iterable[Override], then: Iterable[Override]) -> list[Override]:
    """Config `params` first, the command line replacing any key it repeats."""
    merged = {o.key_or_group: o for o in first}
    merged.update({o.key_or_group: o for o in then})
    return list(merged.values())


def _values(override: Override) -> list[str]:
    if not override.is_sweep_override():
        return [override.get_value_element_as_str()]
    if not override.is_discrete_sweep():
        raise SweeperError(
            f"{override.input_line}: the model_grid sweeper expands lists, range() and choice(); "
            "use an optimising sweeper (hydra/sweeper=optuna) for intervals"
        )
    return list(override.sweep_string_iterator())


def _axis(override: Override, parsed: dict[str, Override] | None = None) -> list[str]:
    if not override.is_sweep_override():
        return [_line(override)]
    key = override.get_key_element()
    if parsed is None or override.value_type == ValueType.GLOB_CHOICE_SWEEP:
        return [f"{key}={value}" for value in _values(override)]
    _values(override)  # refuses intervals
    lines = []
    for element in override.sweep_iterator():
        line = f"{key}={Transformer.str(element)}"
        if element is None or isinstance(element, bool | int | float):
            parsed[line] = Override(
                type=override.type,
                key_or_group=override.key_or_group,
                value_type=ValueType.ELEMENT,
                _value=element,
                package=override.package,
                input_line=line,
            )
        lines.append(line)
    return lines


def _line(override: Override) -> str:
    """The override as it was typed (parsed overrides always have it)."""
    assert override.input_line is not None
    return override.input_line


def _applies(override: Override, cfg: DictConfig) -> bool:
    """A model value belongs to the models that have that parameter (or that `+`/`++` adds to)."""
    if override.is_add() or override.is_force_add() or override.is_delete():
        return True
    name = override.key_or_group.split(".")[1]
    return name in cfg[MODEL_GROUP]


def _grid_axes(
    cfg: DictConfig, parser: OverridesParser, model: str, parsed: dict[str, Override] | None
) -> dict[str, list[str]]:
    """The model's grid: `model.<name>` → its values as overrides, in the grid's order."""
    grid = cfg.get("grid") or {}
    lines = [f"{MODEL_VALUE}{name}={_sweep_text(values)}" for name, values in grid.items()]
    for line in lines:
        if line.split("=")[0].split(".")[1] not in cfg[MODEL_GROUP]:
            raise SweeperError(f"grid of model={model}: '{line}' is not a parameter of the model")
    return {o.key_or_group: _axis(o, parsed) for o in parser.parse_overrides(lines)}


def _sweep_text(values: Any) -> str:
    """Grid values in Hydra's sweep syntax; a YAML list is read as a list of choices."""
    if isinstance(values, str):
        return values
    if values is None:
        return "null"
    if isinstance(values, bool):
        return str(values).lower()
    if isinstance(values, Iterable):
        return ",".join(_sweep_text(v) for v in values)
    return str(values)


def defer_model_values(argv: list[str]) -> list[str]:
    """In a multirun, hand plain `model.k=v` values to the sweeper as one-value sweeps.

    Hydra applies non-sweep overrides to its master config, composed with the default model; a
    value that only another chosen model has (`model=rf,lasso model.alpha=0.5`) would fail there.
    As `model.alpha=choice(0.5)` it reaches the sweeper, which applies it where it belongs.
    """
    if "-m" not in argv and "--multirun" not in argv:
        return argv
    parser = OverridesParser.create()
    deferred = []
    for arg in argv:
        try:
            override = parser.parse_override(arg) if "=" in arg else None
        except Exception:  # Hydra reports malformed overrides itself
            override = None
        if (
            override is not None
            and override.key_or_group.startswith(MODEL_VALUE)
            and override.type == OverrideType.CHANGE
            and not override.is_sweep_override()
            and override.value() is not None  # choice(null) is not valid Hydra grammar
        ):
            arg = f"{override.key_or_group}=choice({override.get_value_element_as_str()})"
        deferred.append(arg)
    return deferred


def path_in_choices(arguments: Sequence[str]) -> str | None:
    """The line refusing a config group's choice that is a path: a choice names one of the
    group's options in the config search path, never a file elsewhere (`model=../../evil` would
    load any YAML on the machine as a model and instantiate its `_target_`)."""
    groups = {p.name for p in Path(config_dir()).iterdir() if p.is_dir()}
    parser = OverridesParser.create()
    for arg in arguments:
        try:
            override = parser.parse_override(arg) if "=" in arg else None
        except Exception:  # Hydra reports malformed overrides itself
            continue
        key = override.key_or_group if override is not None else ""
        if override is None or (key not in groups and "/" not in key):
            continue
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue  # matched against the group's own options
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        for value in values:
            if value.startswith("/") or ".." in value.split("/"):
                return (
                    f"{key}={value}: a choice of the config group '{key}' names one of its "
                    f"options (python -m sweeper --help lists them), not a path"
                )
    return None
