"""`hydra/sweeper=optuna_async`: Hydra's Optuna sweeper without batch barriers.

Hydra's Optuna sweeper asks for `n_jobs` trials, waits for the slowest of them, tells Optuna,
and asks again (hydra #3091): with an SVR and three lassos in a batch, three workers idle while
the SVR fits. This one asks for a new trial as soon as one ends, so every worker stays busy; the
pending trials are known to the sampler (its default here is TPE with `constant_liar`, which
takes each pending trial for a bad one, so parallel asks spread out). Each finished trial is
told with its CV folds reported as intermediate values first (`trial.report`, one step per
fold), so a study's trials carry the same per-step history a pruner reads.

Its settings are the Optuna sweeper's (search space, `n_trials`, `n_jobs`: trials at once,
storage, study name, sampler, `max_failure_rate`: once exceeded, no more trials are asked for and
the command fails). On a backend that runs an optimiser's trials in batches (Argo: a workflow
each) it is Hydra's Optuna sweeper, batches and all.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any, Protocol, cast, runtime_checkable

import optuna
from hydra.core.utils import JobReturn
from omegaconf import OmegaConf
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hydra_plugins.hydra_optuna_sweeper._impl import (
    OptunaSweeperImpl,
    create_params_from_overrides,
)
from sweeper.launching.launcher import Told

log = logging.getLogger(__name__)


@runtime_checkable
class Streaming(Protocol):
    """A launcher that runs an optimiser's trials as it asks for them (SweeperLauncher)."""

    def stream(self, first: Sequence[Sequence[str]], initial_job_idx: int, told: Told) -> int: ...


class AsyncOptunaSweeperImpl(OptunaSweeperImpl):
    def sweep(self, arguments: list[str]) -> None:
        launcher = self.launcher
        if not getattr(launcher, "streams", False):  # batches only there: Hydra's own loop
            return super().sweep(arguments)
        assert isinstance(launcher, Streaming) and self.config is not None
        study, space, fixed = self._study(arguments)
        asked: dict[int, optuna.trial.Trial] = {}
        state = {"next": self.job_idx, "left": self.n_trials, "told": 0}
        failed: list[BaseException] = []

        def ask(count: int) -> Sequence[Sequence[str]]:
            count = min(count, state["left"])
            trials = [study.ask() for _ in range(count)]
            overrides = self._configure_trials(trials, space, fixed)
            for trial in trials:  # the launcher numbers them in this order
                asked[state["next"]] = trial
                state["next"] += 1
            state["left"] -= count
            return overrides

        def told(index: int, ret: JobReturn, folds: Sequence[float]) -> Sequence[Sequence[str]]:
            trial = asked.pop(index)
            state["told"] += 1
            try:
                value = float(ret.return_value)
            except Exception as err:  # a failed trial's return_value raises its error
                study.tell(trial, state=TrialState.FAIL)
                log.warning(f"Failed experiment: {err}")
                failed.append(err)
            else:
                for step, score in enumerate(folds):
                    trial.report(score, step)
                study.tell(trial, value)
            if len(failed) / state["told"] > self.max_failure_rate:
                state["left"] = 0  # as Hydra's sweeper stops after such a batch
            return ask(1) if state["left"] > 0 else []

        self.job_idx += launcher.stream(ask(self.n_jobs), self.job_idx, told)
        if failed and len(failed) / state["told"] > self.max_failure_rate:
            log.error(
                f"Failed {len(failed)} times out of {state['told']} "
                f"with max_failure_rate={self.max_failure_rate}."
            )
            raise failed[0]  # the first failed trial's error, as Hydra's sweeper raises it
        self._save_results(study)

    def _study(self, arguments: list[str]) -> tuple[optuna.Study, dict[str, Any], dict[str, Any]]:
        """The study and its search space, as Hydra's Optuna sweeper makes them."""
        self._process_searchspace_config()
        params = [*self._parse_sweeper_params_config(), *arguments]
        from_overrides, fixed = create_params_from_overrides(params)
        space = dict(self.search_space_distributions or {})
        space.update(from_overrides)
        sampler = self.sampler
        if isinstance(sampler, functools.partial) and sampler.func == optuna.samplers.GridSampler:
            grid = {name: self._to_grid_sampler_choices(d) for name, d in space.items()}
            self.sampler = sampler(grid)
            self.n_trials = min(
                self.n_trials, functools.reduce(lambda a, v: a * len(v), grid.values(), 1)
            )
        for name in fixed:
            space.pop(name, None)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=self.storage,
            sampler=self.sampler,
            directions=cast(list[StudyDirection], self._get_directions()),
            load_if_exists=True,
        )
        log.info(f"Study name: {study.study_name}")
        log.info(f"Storage: {self.storage}")
        log.info(f"Sampler: {type(self.sampler).__name__}, asked as workers free up")
        return study, space, fixed

    def _save_results(self, study: optuna.Study) -> None:
        assert self.config is not None
        results: dict[str, Any]
        if len(study.directions) < 2:
            best = study.best_trial
            results = {"name": "optuna", "best_params": best.params, "best_value": best.value}
            log.info(f"Best parameters: {best.params}")
            log.info(f"Best value: {best.value}")
        else:
            front = [{"params": t.params, "values": t.values} for t in study.best_trials]
            results = {"name": "optuna", "solutions": front}
        OmegaConf.save(
            OmegaConf.create(results), f"{self.config.hydra.sweep.dir}/optimization_results.yaml"
        )
