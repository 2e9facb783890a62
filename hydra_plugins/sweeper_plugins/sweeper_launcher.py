from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hydra.core.override_parser.types import Override
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig

if TYPE_CHECKING:
    from sweeper.launching.launcher import Launch, PrunerFor, Told


class SweeperLauncher(Launcher):
    """Hands each batch of jobs to the sweep's executor (see `sweeper.launching.launcher`).

    An optimising sweeper (Optuna) launches batch after batch on this same instance: its
    `Launch` keeps them one sweep."""

    def __init__(self) -> None:
        self.launch_state: Launch | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        from sweeper.errors import said_in_one_line
        from sweeper.launching.launcher import Launch

        with said_in_one_line():
            self.launch_state = Launch(config, hydra_context, task_function)

    @property
    def parsed(self) -> dict[str, Override]:
        """Override lines parsed already, by line: a sweeper that parsed them (model_grid's
        expansion) leaves them here, and each job is composed without parsing them again."""
        assert self.launch_state is not None, "Hydra calls setup first"
        return self.launch_state.parsed

    @property
    def streams(self) -> bool:
        """Whether an optimiser may ask for a trial whenever one ends (Launch.stream)."""
        return self.launch_state is not None and self.launch_state.streams

    def stream(
        self,
        first: Sequence[Sequence[str]],
        initial_job_idx: int,
        told: Told,
        pruning: PrunerFor | None = None,
    ) -> int:
        from sweeper.errors import said_in_one_line

        assert self.launch_state is not None, "Hydra calls setup first"
        with said_in_one_line():
            return self.launch_state.stream(first, initial_job_idx, told, pruning)

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        from sweeper.errors import said_in_one_line

        assert self.launch_state is not None, "Hydra calls setup first"
        with said_in_one_line():
            return self.launch_state.launch(job_overrides, initial_job_idx)
