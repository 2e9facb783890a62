"""Job configs for a batch of override lists, composing once per distinct non-model configuration.

Hydra's own launchers compose every job from scratch (tens of milliseconds each). Trials that differ
only in `model.*` values share one composition here; their values are applied on top with
Hydra's own override semantics.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, open_dict

from sweeper.planning.plan import Job

MODEL_PREFIX = "model."


def compose_jobs(
    job_overrides: Sequence[Sequence[str]],
    compose: Callable[[list[str]], DictConfig],
    parser: OverridesParser,
    first_index: int = 0,
) -> tuple[list[Job], DictConfig]:
    """The jobs, and the hydra node of the first composition (sweep-wide Hydra settings)."""
    bases: dict[tuple[str, ...], tuple[DictConfig, str]] = {}
    hydra_cfg: DictConfig | None = None
    jobs = []
    for offset, overrides in enumerate(job_overrides):
        parsed = parser.parse_overrides(list(overrides))
        values = [o for o in parsed if o.key_or_group.startswith(MODEL_PREFIX)]
        base_key = tuple(str(o.input_line) for o in parsed if o not in values)
        if base_key not in bases:
            composed = compose(list(base_key))
            with open_dict(composed):
                hydra_node = composed.pop("hydra")
            hydra_cfg = hydra_cfg or hydra_node
            bases[base_key] = (composed, str(hydra_node.runtime.choices.model))
        base, model_name = bases[base_key]
        cfg = copy.deepcopy(base) if values else base
        # Hydra's own rules for `key=v`, `+key=v`, `++key=v` and `~key`.
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        jobs.append(Job(first_index + offset, tuple(overrides), cfg, model_name))
    assert hydra_cfg is not None
    return jobs, hydra_cfg
