"""Sweeps driven in this process, below the command line: jobs composed with Hydra's compose API,
planned, and handed to the executor seam, so a test sees the objects, not only the output."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig

from sweeper.core.settings import config_dir, register_schemas
from sweeper.executors.base import Batch
from sweeper.planning.compose import compose_jobs
from sweeper.planning.definition import Definition
from sweeper.planning.plan import Job


@contextmanager
def hydra_configs() -> Iterator[None]:
    GlobalHydra.instance().clear()
    register_schemas()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        yield
    GlobalHydra.instance().clear()


def local_settings(folder: Path) -> list[str]:
    """A store and an MLflow database in `folder`."""
    return [f"storage.root={folder / 'store'}", f"mlflow.tracking_uri=sqlite:///{folder}/mlflow.db"]


def jobs(trials: Sequence[Sequence[str]], first: int = 0) -> list[Job]:
    """Composed jobs, one per list of overrides (no expansion); inside `hydra_configs()`."""

    def compose_job(overrides: list[str]) -> DictConfig:
        return compose("config", overrides=overrides, return_hydra_config=True)

    composed, _ = compose_jobs(trials, compose_job, OverridesParser.create(), first_index=first)
    return composed


def batch(trials: Sequence[Sequence[str]], first: int = 0, last: bool = True) -> Batch:
    composed = jobs(trials, first)
    definition = Definition(jobs=tuple(tuple(t) for t in trials))
    return Batch(definition, lambda: composed, last=last)
