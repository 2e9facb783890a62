from dataclasses import dataclass
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
