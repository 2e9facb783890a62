"""A sweep's definition (its command-line overrides) turned into its plan, outside a Hydra app.

An Argo workflow carries only the definition; its first step calls `plan_from_definition` with the
config tree inside the image, so the manifest stays small and that night's configs decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from sweeper.compose import compose_jobs
from sweeper.expand import expand
from sweeper.plan import Plan, build_plan

# Settings only the submitting side uses; `argo.token` in particular must not travel.
LOCAL_ONLY = ("argo.", "hydra.", "backend=")


def portable(overrides: Sequence[str]) -> list[str]:
    """The overrides a pod needs to rebuild the plan."""
    return [o for o in overrides if not o.lstrip("+~").startswith(LOCAL_ONLY)]


def plan_from_definition(
    overrides: Sequence[str],
    multirun: bool,
    sweep_id: str,
    jobs: Sequence[Sequence[str]] | None = None,
    name_keys: Sequence[str] = (),
) -> Plan:
    """`jobs`: each trial's overrides, as an optimiser asked for them (no expansion); `name_keys`
    go into every trial's name (see build_plan)."""
    from sweeper.app import config_dir

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3", job_name="sweeper"):
        loader = GlobalHydra.instance().config_loader()
        parser = OverridesParser.create(config_loader=loader)

        def compose_job(job_overrides: list[str]) -> DictConfig:
            return compose("config", overrides=job_overrides, return_hydra_config=True)

        if jobs is not None:
            jobs = [list(job) for job in jobs]
        elif multirun:
            fixed = [o.input_line for o in parser.parse_overrides(list(overrides))
                     if not o.is_sweep_override()]  # fmt: skip
            master = compose_job(fixed)
            jobs = expand(
                overrides,
                master.hydra.sweeper.get("params") or {},
                default_model=str(master.hydra.runtime.choices.model),
                compose=compose_job,
                parser=parser,
            )
        else:
            jobs = [list(overrides)]
        composed, _ = compose_jobs(jobs, compose_job, parser)
    return build_plan(composed, sweep_id, name_keys)
