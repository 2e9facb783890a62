"""A Hydra callback that writes every event it hears to a JSON-lines file (`path`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf


class Recorder(Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def _write(self, event: str, **fields: Any) -> None:
        with self.path.open("a") as log:
            log.write(json.dumps({"event": event, **fields}) + "\n")

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._write("run_start")

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write("run_end")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._write("multirun_start", sweep_dir=str(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._write("multirun_end")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        overrides = list(config.hydra.overrides.task)
        self._write("job_start", num=_num(config), overrides=overrides, model=config.model._target_)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        ok = job_return.status == JobStatus.COMPLETED
        self._write(
            "job_end",
            num=_num(config),
            status=job_return.status.name,
            value=job_return.return_value if ok else str(job_return._return_value),
            working_dir=job_return.working_dir,
            alpha=None if job_return.cfg is None else job_return.cfg.model.get("alpha"),
        )


def _num(config: DictConfig) -> int | None:
    """The job's number in its sweep (a single run has none)."""
    num = OmegaConf.select(config, "hydra.job.num", default=None)
    return None if num is None else int(num)
