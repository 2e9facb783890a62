"""A sweep's definition (the command line it came from), and its plan made outside a Hydra app.

An Argo workflow carries only the definition, as the plan step's arguments; that step calls
`plan_from_definition` with the config tree inside the image, so the manifest stays small and
that night's configs decide. `Definition.to_args` and `Definition.from_args` are the two
directions of that one serialisation; a manifest carries it encoded (`--definition`), so a value
holding `{{…}}` reaches the plan step as typed instead of being read by Argo as its variable.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from sweeper.core import overrides
from sweeper.core.records import Plan
from sweeper.core.settings import config_dir, register_schemas
from sweeper.errors import SweeperError
from sweeper.planning.compose import compose_jobs
from sweeper.planning.expand import expand, path_in_choices
from sweeper.planning.plan import build_plan

# Settings only the submitting side uses; `argo.token` in particular must not travel.
LOCAL_ONLY = ("argo.", "hydra.")


def portable(lines: Sequence[str]) -> list[str]:
    """The overrides a pod needs to rebuild the plan."""
    keys = [(line, overrides.key(line)) for line in lines]
    return [line for line, key in keys if key != "backend" and not key.startswith(LOCAL_ONLY)]


@dataclass(frozen=True)
class Definition:
    """A batch of trials in the terms of the command line.

    Either `overrides` to expand (`multirun`: sweeps and model grids, as `-m` does), or `jobs`:
    each trial's own overrides, as an optimiser asked for them (no expansion)."""

    overrides: tuple[str, ...] = ()
    multirun: bool = False
    jobs: tuple[tuple[str, ...], ...] | None = None
    name_keys: tuple[str, ...] = ()  # shown in every trial's name (see build_plan)
    sweep_params: Mapping[str, str] = field(default_factory=dict)  # more params of the sweep run

    def portable(self) -> Definition:
        """Without the submitting side's own settings."""
        jobs = None if self.jobs is None else tuple(tuple(portable(j)) for j in self.jobs)
        return Definition(
            tuple(portable(self.overrides)), self.multirun, jobs, self.name_keys, self.sweep_params
        )

    def to_args(self) -> list[str]:
        """The plan step's arguments (see `add_arguments`)."""
        if self.jobs is None:
            return [*(["--multirun"] if self.multirun else []), "--", *self.overrides]
        args = ["--jobs", json.dumps([list(job) for job in self.jobs])]
        for key in self.name_keys:
            args += ["--name-key", key]
        for key, value in self.sweep_params.items():
            args += ["--sweep-param", f"{key}={value}"]
        return args

    def encoded(self) -> str:
        """The definition as base64url JSON: letters, digits, `-`, `_` and `=` only."""
        jobs = None if self.jobs is None else [list(j) for j in self.jobs]
        fields = {
            "overrides": list(self.overrides),
            "multirun": self.multirun,
            "jobs": jobs,
            "name_keys": list(self.name_keys),
            "sweep_params": dict(self.sweep_params),
        }
        return base64.urlsafe_b64encode(json.dumps(fields).encode()).decode()

    @classmethod
    def decoded(cls, text: str) -> Definition:
        try:
            fields = json.loads(base64.urlsafe_b64decode(text.encode()))
            jobs = fields["jobs"]
            return cls(
                tuple(fields["overrides"]),
                bool(fields["multirun"]),
                None if jobs is None else tuple(tuple(j) for j in jobs),
                tuple(fields["name_keys"]),
                dict(fields["sweep_params"]),
            )
        except (ValueError, KeyError, TypeError):
            raise ValueError("--definition is not one that Definition.encoded wrote") from None

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--definition", help="all of it, as Definition.encoded (a manifest's)")
        parser.add_argument("--multirun", action="store_true", help="expand sweeps and model grids")
        parser.add_argument("--jobs", type=_jobs, help="JSON: each trial's list of overrides")
        parser.add_argument("--name-key", action="append", default=[], help="shown in names")
        parser.add_argument(
            "--sweep-param",
            action="append",
            default=[],
            type=_key_value,
            help="KEY=VALUE: a param of the sweep's run",
        )
        parser.add_argument("overrides", nargs="*")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Definition:
        if args.definition is not None:
            if args.jobs is not None or args.overrides or args.multirun:
                raise ValueError("--definition is the whole definition: nothing else with it")
            return cls.decoded(args.definition)
        if args.jobs is not None and (args.overrides or args.multirun):
            raise ValueError("--jobs lists the trials: no overrides or --multirun with it")
        jobs = None if args.jobs is None else tuple(tuple(job) for job in args.jobs)
        return cls(
            tuple(args.overrides),
            bool(args.multirun),
            jobs,
            tuple(args.name_key),
            dict(args.sweep_param),
        )


def plan_from_definition(definition: Definition, sweep_id: str) -> Plan:
    """The plan of a definition, composed with this installation's config tree."""
    refused = path_in_choices(
        [*definition.overrides, *(o for j in definition.jobs or () for o in j)]
    )
    if refused:
        raise SweeperError(refused)
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="sweeper"):
        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)

        def compose_job(job_overrides: list[str]) -> DictConfig:
            return compose("config", overrides=job_overrides, return_hydra_config=True)

        overrides = list(definition.overrides)
        parsed: dict[str, Override] = {}  # each line parsed once, the expanded values not at all
        if definition.jobs is not None:
            jobs = [list(job) for job in definition.jobs]
        elif definition.multirun:
            fixed = [
                str(o.input_line)
                for o in parser.parse_overrides(overrides)
                if not o.is_sweep_override()
            ]
            master = compose_job(fixed)
            jobs = expand(
                overrides,
                master.hydra.sweeper.get("params") or {},
                default_model=str(master.hydra.runtime.choices.model),
                compose=compose_job,
                parser=parser,
                parsed=parsed,
            )
        else:
            jobs = [overrides]
        composed, _ = compose_jobs(jobs, compose_job, parser, parsed=parsed)
    plan = build_plan(composed, sweep_id, definition.name_keys)
    return plan.with_params(definition.sweep_params)


def _jobs(text: str) -> list[list[str]]:
    jobs = json.loads(text)
    if not isinstance(jobs, list) or not all(
        isinstance(job, list) and all(isinstance(o, str) for o in job) for job in jobs
    ):
        raise ValueError("--jobs must be a JSON list of lists of overrides")
    return jobs


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"{text!r} is not KEY=VALUE")
    return key, value
