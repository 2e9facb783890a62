import sys
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf


class ModelGridSweeper(Sweeper):
    """Expands each chosen model's own grid (see `sweeper.expand`) into one batch of jobs."""

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

    def sweep(self, arguments: list[str]) -> Any:
        from sweeper.expand import as_overrides, expand

        assert self.config is not None and self.hydra_context and self.launcher
        loader = self.hydra_context.config_loader
        jobs = expand(
            arguments,
            self.params,
            default_model=str(self.config.hydra.runtime.choices.model),
            compose=lambda overrides: loader.load_sweep_config(self.config, overrides),
            parser=OverridesParser.create(config_loader=loader),
        )
        if self.config.backend == "argo":
            from sweeper.argo.dispatch import run_on_argo

            # Pods expand the definition again at run time; `jobs` only validated it here.
            definition = [*as_overrides(self.params), *arguments]
            status = run_on_argo(definition, multirun=True, cfg=self.config)
            if status:
                sys.exit(status)
            return []
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns = self.launcher.launch(jobs, initial_job_idx=0)
        # The report already named each failed trial; the exit code tells scripts and CI.
        if any(r.status != JobStatus.COMPLETED for r in returns):
            sys.exit(1)
        return [returns]
