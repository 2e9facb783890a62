"""The launcher's work: a batch of Hydra jobs → one plan → the configured backend → JobReturns."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, configure_log, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf

from sweeper.errors import SweeperError
from sweeper.plan import Job, build_plan
from sweeper.run import run_plan
from sweeper.study import Study


def launch(
    config: DictConfig,
    hydra_context: HydraContext,
    job_overrides: Sequence[Sequence[str]],
    initial_job_idx: int,
    study: Study | None = None,
) -> list[JobReturn]:
    """`study`: the sweep this batch belongs to, when an optimiser asks for trials in batches."""
    from sweeper.compose import compose_jobs

    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    loader = hydra_context.config_loader
    jobs, hydra_cfg = compose_jobs(
        job_overrides,
        compose=lambda overrides: loader.load_sweep_config(config, overrides),
        parser=OverridesParser.create(config_loader=loader),
        first_index=initial_job_idx,
    )
    plan = build_plan(jobs) if study is None else study.plan_batch(jobs)
    # Hydra's per-job folders are written while the trials run: nothing waits for them.
    with ThreadPoolExecutor(1) as writer:
        writing = writer.submit(write_job_dirs, Path(config.hydra.sweep.dir), jobs)
        ran = run_plan(plan).outcomes if study is None else study.run_batch(plan)
        job_dirs = writing.result()

    outcomes = {o.trial.index: o for o in ran}
    returns = []
    for job, job_dir in zip(jobs, job_dirs, strict=True):
        outcome = outcomes[job.index]
        ret = JobReturn(
            overrides=list(job.overrides),
            cfg=job.cfg,
            hydra_cfg=hydra_cfg,
            working_dir=str(job_dir),
            task_name=str(config.hydra.job.name),
        )
        if outcome.status == "FINISHED":
            ret.status, ret.return_value = JobStatus.COMPLETED, outcome.mse
        else:
            ret.status = JobStatus.FAILED
            ret.return_value = SweeperError(f"trial '{outcome.trial.name}': {outcome.error}")
        returns.append(ret)
    return returns


def write_job_dirs(sweep_dir: Path, jobs: Sequence[Job]) -> list[Path]:
    """Hydra's per-job output folders with `.hydra/config.yaml` and `.hydra/overrides.yaml`.

    The same YAML Hydra writes (unresolved, keys in config order), through libyaml's emitter:
    OmegaConf's pure-Python one takes milliseconds per job."""
    dirs = []
    for job in jobs:
        hydra_dir = sweep_dir / str(job.index) / ".hydra"
        hydra_dir.mkdir(parents=True, exist_ok=True)
        (hydra_dir / "config.yaml").write_text(_yaml(OmegaConf.to_container(job.cfg)))
        (hydra_dir / "overrides.yaml").write_text(_yaml(list(job.overrides)))
        dirs.append(hydra_dir.parent)
    return dirs


def _yaml(value: object) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return yaml.dump(value, Dumper=dumper, sort_keys=False, allow_unicode=True)
