from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    from sweeper.study import Study


class SweeperLauncher(Launcher):
    """Builds one plan from a batch of jobs and hands it to the configured backend.

    An optimising sweeper (Optuna) launches batch after batch on this same instance: its `study`
    keeps them one sweep."""

    def __init__(self) -> None:
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.study: Study | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from sweeper.study import Study

        self.config = config
        self.hydra_context = hydra_context
        if Study.asked_for(config):
            if config.backend == "argo":
                from sweeper.argo.batch import check_batches

                check_batches(config)
            self.study = Study(config)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from sweeper.launch import launch

        assert self.config is not None and self.hydra_context is not None
        return launch(self.config, self.hydra_context, job_overrides, initial_job_idx, self.study)
