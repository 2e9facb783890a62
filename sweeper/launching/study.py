"""What an optimising sweeper (`hydra/sweeper=optuna`) brings to a sweep: its trial budget, the
search space whose values every trial's name shows, and the params of the sweep's run.

Hydra's Optuna sweeper calls the launcher once per batch of `n_jobs` trials and reads each trial's
ranking value back (its CV MSE by default: `eval.*`) before it asks for the next batch. The whole
invocation is one sweep (see
sweeper.launching.sweep): locally one sweep id and one MLflow parent run across its batches; on
Argo each batch is a workflow, so a sweep run of its own, tied to the study by its params.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from sweeper.core import overrides
from sweeper.core.metrics import Ranking
from sweeper.errors import SweeperError
from sweeper.safe_text import redact


@dataclass(frozen=True)
class Study:
    """An optimiser's sweep as the launcher learns it from the config."""

    optimiser: str  # the sweeper's short name: "optuna"
    budget: int  # trials this invocation asks for (a resume: more)
    batch_size: int
    name_keys: tuple[str, ...]
    params: dict[str, str]
    direction: str | None = None  # the optimiser's: `minimize` or `maximize`

    @classmethod
    def of(cls, config: DictConfig) -> Study | None:
        """A sweeper with a trial budget asks for its trials in batches; None for a grid."""
        sweeper = config.hydra.get("sweeper")
        if sweeper is None or "n_trials" not in sweeper:
            return None
        target = str(sweeper.get("_target_", ""))
        optimiser = "optuna" if "optuna" in target else target.rsplit(".", 1)[-1]
        direction = sweeper.get("direction")
        return cls(
            optimiser,
            int(sweeper.n_trials),
            max(1, int(sweeper.get("n_jobs") or 1)),
            tuple(search_keys(config)),
            study_params(config),
            str(direction).lower() if isinstance(direction, str) else None,
        )

    def check(self, ranking: Ranking) -> None:
        """Each trial returns the value it is ranked by (`ranking.key`): the optimiser must go
        the way that metric does."""
        wanted = "maximize" if ranking.maximised else "minimize"
        if self.direction is not None and self.direction != wanted:
            raise SweeperError(
                f"hydra.sweeper.direction={self.direction}, but trials return {ranking.key} "
                f"(eval.metric={ranking.metric}), which is {wanted[:-1]}ed: set "
                f"hydra.sweeper.direction={wanted}"
            )


def search_keys(config: DictConfig) -> list[str]:
    """Keys of the optimiser's search space: every trial's name shows their values."""
    sweeper = config.hydra.sweeper
    keys = [str(k) for k in (sweeper.get("params") or {})]
    keys += [str(k) for k in (sweeper.get("search_space") or {})]
    for override in _overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():
            keys.append(override.key_or_group)
    return [overrides.key(k) for k in dict.fromkeys(keys)]


def study_params(config: DictConfig) -> dict[str, str]:
    """The sweep run's params: the trial budget, the models, and which study it belongs to."""
    sweeper = config.hydra.sweeper
    params = {"n_trials": str(int(sweeper.n_trials)), "models": _models(config)}
    if sweeper.get("study_name"):
        params["study"] = str(sweeper.study_name)
    if sweeper.get("storage"):
        params["study.storage"] = str(redact(str(sweeper.storage)))
    sampler = sweeper.get("sampler") or {}
    if sampler.get("_target_"):
        params["study.sampler"] = str(sampler["_target_"]).rsplit(".", 1)[-1]
    return params


def _models(config: DictConfig) -> str:
    """The model choice: fixed, or a dimension of the search space (the command line wins)."""
    params = config.hydra.sweeper.get("params") or {}
    lines = [*(f"{k}={v}" for k, v in params.items()), *config.hydra.overrides.task]
    for override in reversed(_overrides(lines)):
        if override.key_or_group != "model":
            continue
        if override.is_discrete_sweep():
            return ",".join(override.sweep_string_iterator())
        if not override.is_sweep_override():
            return override.get_value_element_as_str()
    return str(config.hydra.runtime.choices.model)


def _overrides(lines: Sequence[str]) -> list[Override]:
    parser = OverridesParser.create()
    parsed = []
    for line in lines:
        try:
            parsed.append(parser.parse_override(line))
        except Exception:  # Hydra has reported malformed overrides already
            continue
    return parsed
