"""`python -m sweeper`: the Hydra application.

With `-m` the project's sweeper and launcher plugins take over
(`hydra_plugins/sweeper_plugins`); without it, the composed config is a sweep of one trial.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig


def config_dir() -> str:
    """The config tree: inside the package when installed from a wheel, beside it in a checkout."""
    packaged = Path(__file__).with_name("conf")
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf")


@hydra.main(config_path=config_dir(), config_name="config", version_base="1.3")
def run_single(cfg: DictConfig) -> float | None:
    from sweeper.plan import Job, build_plan
    from sweeper.run import run_plan

    hydra_cfg = HydraConfig.get()
    if cfg.backend == "argo":
        from sweeper.argo.dispatch import run_on_argo

        status = run_on_argo(list(hydra_cfg.overrides.task), multirun=False, cfg=cfg)
        if status:
            sys.exit(status)
        return None
    job = Job(0, tuple(hydra_cfg.overrides.task), cfg, str(hydra_cfg.runtime.choices.model))
    result = run_plan(build_plan([job]))
    if result.n_failed:
        sys.exit(1)
    return result.best.mse if result.best else None


def main() -> None:
    from sweeper import start_workers_early
    from sweeper.expand import defer_model_values

    start_workers_early(sys.argv[1:])  # for the `sweeper` script; `python -m sweeper` did it
    sys.argv[1:] = defer_model_values(sys.argv[1:])
    # An optimiser's sweep run stays open between its batches: end it however the run ends.
    try:
        run_single()
    except KeyboardInterrupt:
        _end_studies("KILLED")
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as stop:
        _end_studies("FAILED" if stop.code else None)
        raise
    _end_studies(None)


def _end_studies(status: str | None) -> None:
    """See sweeper.study.end_studies. Only a multirun loads that module (the launcher does):
    a single run or `--help` does not import it just to find nothing to end."""
    study = sys.modules.get("sweeper.study")
    if study is not None:
        study.end_studies(status)


if __name__ == "__main__":
    main()
