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
import json
import logging
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
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
from sweeper.core.outcomes import Outcome
from sweeper.errors import SweeperError
from sweeper.launching.launcher import PrunerFor, Told

log = logging.getLogger(__name__)
# Pruners that record their decisions on the study's trials (system attributes, brackets by
# study name and trial number): a worker's copy of the study has neither.
STATEFUL_PRUNERS = (optuna.pruners.SuccessiveHalvingPruner, optuna.pruners.HyperbandPruner)


@runtime_checkable
class Streaming(Protocol):
    """A launcher that runs an optimiser's trials as it asks for them (SweeperLauncher)."""

    def stream(
        self,
        first: Sequence[Sequence[str]],
        initial_job_idx: int,
        told: Told,
        pruning: PrunerFor | None = None,
    ) -> int: ...


@dataclass(frozen=True)
class Pruning:
    """The study's pruner asked after each fold of a trial's CV, in the worker that fits it:
    the trial's scores so far are reported to a copy of the study built from `path`, where the
    sweeping process keeps every told trial's per-fold values (a JSON list), and the pruner
    says whether to stop. A stopped trial's run says after how many folds; Optuna gets it as
    PRUNED, with the folds it had as its intermediate values."""

    path: str
    pruner: optuna.pruners.BasePruner
    direction: str  # the study's: minimize or maximize
    metric: str  # the ranking metric, whose per-fold scores are the intermediate values

    def worse(self, scores: Sequence[float]) -> bool:
        try:
            told = json.loads(Path(self.path).read_text())
        except (OSError, ValueError):  # nothing told yet
            told = []
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study per look: not said
        direction = StudyDirection[self.direction.upper()]
        copy = optuna.create_study(direction=direction, pruner=self.pruner)
        copy.add_trials(
            [
                optuna.trial.create_trial(
                    state=TrialState[entry["state"]],
                    value=entry.get("value"),
                    intermediate_values=dict(enumerate(entry["folds"])),
                )
                for entry in told
            ]
        )
        trial = copy.ask()
        for step, score in enumerate(scores):
            trial.report(score, step)
        return trial.should_prune()


def keep_told(path: str, study: optuna.Study) -> None:
    """The sweeping process's side of Pruning: every told trial's per-fold values, replacing
    the file whole."""
    told = [
        {
            "state": t.state.name,
            "value": t.value,
            "folds": [t.intermediate_values[k] for k in sorted(t.intermediate_values)],
        }
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    ]
    partial = Path(f"{path}.partial")
    partial.write_text(json.dumps(told))
    os.replace(partial, path)


class AsyncOptunaSweeperImpl(OptunaSweeperImpl):
    def __init__(
        self, *args: Any, pruner: optuna.pruners.BasePruner | None = None, **kwargs: Any
    ) -> None:
        """Hydra's Optuna sweeper's settings, and `pruner` (`hydra.sweeper.pruner`, an Optuna
        pruner: asked after each CV fold of every trial; None: none)."""
        super().__init__(*args, **kwargs)
        self.pruner = pruner

    def sweep(self, arguments: list[str]) -> None:
        launcher = self.launcher
        assert self.config is not None
        if self.pruner is not None and self.config.eval.early_stop:
            raise SweeperError(
                "hydra.sweeper.pruner and eval.early_stop both stop a trial's CV early: choose one"
            )
        if isinstance(self.pruner, STATEFUL_PRUNERS):
            raise SweeperError(
                f"hydra.sweeper.pruner: {type(self.pruner).__name__} keeps its rungs in the "
                "study's own trials, which a worker's copy cannot update: use median, "
                "percentile or wilcoxon (or search=halving for successive halving)"
            )
        if not getattr(launcher, "streams", False):  # batches only there: Hydra's own loop
            if self.pruner is not None:
                raise SweeperError(
                    f"hydra.sweeper.pruner needs backend=local (backend={self.config.backend} "
                    "runs an optimiser's trials in batches, each in full)"
                )
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

        def told(outcome: Outcome, ret: JobReturn, metric: str) -> Sequence[Sequence[str]]:
            trial = asked.pop(outcome.trial.index)
            state["told"] += 1
            try:
                value = float(ret.return_value)
            except Exception as err:  # a failed trial's return_value raises its error
                study.tell(trial, state=TrialState.FAIL)
                log.warning(f"Failed experiment: {err}")
                failed.append(err)
            else:
                for step, score in enumerate(outcome.folds.get(metric, ())):
                    trial.report(score, step)
                if outcome.stopped:  # its pruner stopped it after these folds
                    study.tell(trial, state=TrialState.PRUNED)
                else:
                    study.tell(trial, value)
            if self.pruner is not None:
                keep_told(told_path, study)
            if len(failed) / state["told"] > self.max_failure_rate:
                state["left"] = 0  # as Hydra's sweeper stops after such a batch
            return ask(1) if state["left"] > 0 else []

        direction = self._get_directions()[0]
        with tempfile.TemporaryDirectory(prefix="sweeper-pruning-") as folder:
            told_path = f"{folder}/told.json"
            pruning = None
            if self.pruner is not None:  # per ranking metric, known once the data is read
                pruning = functools.partial(Pruning, told_path, self.pruner, direction)
            first = ask(self.n_jobs)
            if not first:  # hydra.sweeper.n_trials=0: nothing to run, as with Hydra's sweeper
                return
            self.job_idx += launcher.stream(first, self.job_idx, told, pruning)
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
            pruner=self.pruner,
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
