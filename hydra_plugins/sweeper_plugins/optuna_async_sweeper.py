from __future__ import annotations

from typing import Any

from hydra.core.utils import JobReturn
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class AsyncOptunaSweeper(Sweeper):
    """`hydra/sweeper=optuna_async`: Optuna asked for a trial whenever a worker is free (see
    `sweeper.launching.optuna_async`); the settings are Hydra's Optuna sweeper's."""

    def __init__(self, **settings: Any) -> None:
        from sweeper.launching.optuna_async import AsyncOptunaSweeperImpl

        self.sweeper = AsyncOptunaSweeperImpl(**settings)

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]] | None:
        from sweeper.errors import said_in_one_line

        with said_in_one_line():
            self.sweeper.sweep(arguments)
        return None
