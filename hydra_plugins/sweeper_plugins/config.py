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
        defaults: list[Any] = field(
            default_factory=lambda: ["_self_", {"sampler": "tpe_async"}, {"pruner": None}]
        )
        # An Optuna pruner asked after each CV fold of every trial (hydra/sweeper/pruner=…).
        pruner: Optional[Any] = None

    # hydra/sweeper/pruner=…: Optuna's pruners that decide from the trials' intermediate values
    # (each fold's score), their settings as Optuna names them.
    @dataclass
    class MedianPrunerConf:
        _target_: str = "optuna.pruners.MedianPruner"
        n_startup_trials: int = 5
        n_warmup_steps: int = 0
        interval_steps: int = 1
        n_min_trials: int = 1

    @dataclass
    class PercentilePrunerConf(MedianPrunerConf):  # the median is its 50th percentile
        _target_: str = "optuna.pruners.PercentilePruner"
        percentile: float = 25.0

    @dataclass
    class WilcoxonPrunerConf:
        _target_: str = "optuna.pruners.WilcoxonPruner"
        p_threshold: float = 0.1
        n_startup_steps: int = 2

    for name, node in (
        ("median", MedianPrunerConf),
        ("percentile", PercentilePrunerConf),
        ("wilcoxon", WilcoxonPrunerConf),
    ):
        ConfigStore.instance().store(
            group="hydra/sweeper/pruner", name=name, node=node, provider="sweeper"
        )

    ConfigStore.instance().store(
        group="hydra/sweeper", name="optuna_async", node=AsyncOptunaSweeperConf, provider="sweeper"
    )
    ConfigStore.instance().store(
        group="hydra/sweeper/sampler",
        name="tpe_async",
        node=ConstantLiarTPESamplerConf,
        provider="sweeper",
    )
