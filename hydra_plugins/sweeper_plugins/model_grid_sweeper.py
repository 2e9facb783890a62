from __future__ import annotations

from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class ModelGridSweeper(Sweeper):
    """Expands each chosen model's own grid (see `sweeper.planning.expand`) into one batch."""

    def __init__(self, params: dict[str, Any] | None = None) -> None:
        self.params = dict(params or {})
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Launcher | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> list[list[JobReturn]]:
        from sweeper.errors import said_in_one_line
        from sweeper.planning.expand import expand

        config, context, launcher = self.config, self.hydra_context, self.launcher
        assert config is not None and context is not None and launcher is not None
        loader = context.config_loader
        # Our launcher composes each job without parsing again what the expansion parsed. (By
        # its attribute: Hydra's plugin scan loads plugin modules anew, so the class this module
        # imports is not the one Hydra instantiated.)
        parsed: dict[str, Override] | None = getattr(launcher, "parsed", None)
        with said_in_one_line():
            jobs = expand(
                arguments,
                self.params,
                default_model=str(config.hydra.runtime.choices.model),
                compose=lambda overrides: loader.load_sweep_config(config, overrides),
                parser=OverridesParser.create(config_loader=loader),
                parsed=parsed,
            )
        # Failed trials were reported by name; the process's exit status says so (sweeper.app).
        return [list(launcher.launch(jobs, initial_job_idx=0))]
