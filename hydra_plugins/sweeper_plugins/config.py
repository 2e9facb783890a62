from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore


@dataclass
class ModelGridSweeperConf:
    _target_: str = "hydra_plugins.sweeper_plugins.model_grid_sweeper.ModelGridSweeper"
    # Extra sweep overrides, as in Hydra's basic sweeper: {"seed": "1,2,3"}.
    params: Optional[dict[str, Any]] = None


@dataclass
class SweeperLauncherConf:
    _target_: str = "hydra_plugins.sweeper_plugins.sweeper_launcher.SweeperLauncher"


ConfigStore.instance().store(
    group="hydra/sweeper", name="model_grid", node=ModelGridSweeperConf, provider="sweeper"
)
ConfigStore.instance().store(
    group="hydra/launcher", name="sweeper", node=SweeperLauncherConf, provider="sweeper"
)


# hydra/sweeper=optuna_async, when the `optuna` extra and Hydra's Optuna plugin are installed:
# that plugin's settings, its sampler TPE with constant_liar (pending trials taken for bad ones).
try:
    from hydra_plugins.hydra_optuna_sweeper.config import OptunaSweeperConf, TPESamplerConfig
except ImportError:
    pass
else:

    @dataclass
    class ConstantLiarTPESamplerConf(TPESamplerConfig):
        constant_liar: bool = True

    @dataclass
    class AsyncOptunaSweeperConf(OptunaSweeperConf):
        _target_: str = "hydra_plugins.sweeper_plugins.optuna_async_sweeper.AsyncOptunaSweeper"
        defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe_async"}])

    ConfigStore.instance().store(
        group="hydra/sweeper", name="optuna_async", node=AsyncOptunaSweeperConf, provider="sweeper"
    )
    ConfigStore.instance().store(
        group="hydra/sweeper/sampler",
        name="tpe_async",
        node=ConstantLiarTPESamplerConf,
        provider="sweeper",
    )
