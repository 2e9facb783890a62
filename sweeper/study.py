"""A sweep whose trials an optimiser asks for a batch at a time (`hydra/sweeper=optuna`).

Hydra's Optuna sweeper calls the launcher once per batch of `n_jobs` trials and reads each trial's
test MSE back before it asks for the next batch. Locally, the whole invocation is ONE sweep: one
sweep id, one MLflow parent run that the first batch opens and the last one closes with the result
of every batch (artifacts, best model, summary metrics, as a grid sweep's). Each batch is one
shared-preprocess fan-out (from the second batch on, the stored split is reused) and prints one
line; the ranked table and MLflow link come once, at the end. A run left open when the process
stops early (Ctrl-C, the optimiser raising) is ended by `end_studies`, which `sweeper.app` calls.

On Argo each batch is a workflow of its own, so a sweep run of its own (see sweeper.argo.batch).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from omegaconf import DictConfig

from sweeper.errors import SweeperError
from sweeper.outcome import Outcome, SweepResult
from sweeper.plan import Job, Plan, build_plan, new_sweep_id
from sweeper.storage import redact

log = logging.getLogger(__name__)

_open: list[Study] = []  # studies whose sweep run is open in this process


class Study:
    """The launcher-side state of one optimiser's sweep, kept across its batches."""

    def __init__(self, config: DictConfig) -> None:
        sweeper = config.hydra.sweeper
        self.config = config
        self.budget = int(sweeper.n_trials)  # trials this invocation asks for (a resume: more)
        self.batch_size = max(1, int(sweeper.get("n_jobs") or 1))
        self.sweep_id = new_sweep_id()
        self.name_keys = search_keys(config)
        self.params = study_params(config)
        self.launched = 0
        self.batches = 0
        self.result: SweepResult | None = None  # every batch's trials so far
        self.sweeps: list[str] = []  # on Argo: each batch's workflow, a sweep of its own

    @staticmethod
    def asked_for(config: DictConfig) -> bool:
        """A sweeper with a trial budget asks for its trials in batches."""
        sweeper = config.hydra.get("sweeper")
        return sweeper is not None and "n_trials" in sweeper

    def plan_batch(self, jobs: Sequence[Job]) -> Plan:
        """The batch's plan: this sweep's id and run, names that show the searched values."""
        plan = build_plan(jobs, self.sweep_id, self.name_keys)
        plan = dataclasses.replace(plan, sweep_params={**plan.sweep_params, **self.params})
        if self.result is None:
            self.result = SweepResult(plan, "", plan.settings.tracking_uri)
            return plan
        whole = self.result.plan
        if plan.settings != whole.settings:
            raise SweeperError(
                f"settings of the whole sweep differ between batches ({whole.settings} vs "
                f"{plan.settings}); they cannot be part of the search space"
            )
        groups = {g.id: g for g in (*whole.groups, *plan.groups)}
        self.result.plan = dataclasses.replace(
            whole, groups=tuple(groups.values()), trials=whole.trials + plan.trials
        )
        return plan.with_parent(self.result.parent_run_id) if self.result.parent_run_id else plan

    def run_batch(self, plan: Plan) -> list[Outcome]:
        """Run one batch (planned by `plan_batch`); its trials' outcomes, in plan order."""
        assert self.result is not None
        self.batches += 1
        self.launched += len(plan.trials)
        if plan.settings.backend == "argo":
            return self._on_argo(plan)
        from sweeper.local import run_local

        last = self.launched >= self.budget
        first = not self.result.parent_run_id
        if first:
            _open.append(self)
        done = len(self.result.outcomes)
        try:
            run_local(plan, into=self.result, close=last)
        except BaseException as err:
            self.end("KILLED" if isinstance(err, KeyboardInterrupt) else "FAILED")
            raise
        if not first:  # the first batch's run recorded the plan when it opened the sweep run
            from sweeper.storage import write_record

            write_record(plan.settings.storage_root, plan.sweep_id, "plan.json",
                         self.result.plan.to_json())  # fmt: skip
        outcomes = self.result.outcomes[done:]
        if last:
            self._forget()
            self._report()
        else:
            self._batch_line(outcomes)
        if self.result.preprocess_errors:
            self.end("FAILED")
            raise SweeperError(self.result.preprocess_errors[0])
        return sorted(outcomes, key=lambda o: o.trial.index)

    def _on_argo(self, plan: Plan) -> list[Outcome]:
        from sweeper.argo.batch import run_batch_on_argo

        assert self.result is not None
        # Each workflow counts its own trials and models; these tie it to the study.
        params = {k: v for k, v in self.params.items() if k.startswith("study")}
        params.update({"study.invocation": self.sweep_id, "study.batch": str(self.batches)})
        sweep_id, outcomes = run_batch_on_argo(plan, self.config, self.name_keys, params)
        self.sweeps.append(sweep_id)
        self.result.outcomes.extend(outcomes)
        self._batch_line(outcomes, sweep_id)
        if self.launched >= self.budget:
            best = self.result.best
            shown = f"best {best.line()}" if best else "no trial finished"
            workflows = "workflow" if len(self.sweeps) == 1 else "workflows"
            print(f"Study: {len(self.result.outcomes)} trials in {len(self.sweeps)} {workflows} "
                  f"({', '.join(self.sweeps)}); {shown}", flush=True)  # fmt: skip
        return outcomes

    def end(self, status: str | None = None) -> None:
        """End the sweep run from this process (no batch is running): `status` KILLED or FAILED,
        or None when the optimiser stopped before its budget (a grid sampler's smaller grid) and
        the trials decide, with the usual report."""
        if self not in _open:
            return
        self._forget()
        result = self.result
        if result is None or not result.parent_run_id:
            return
        from sweeper import work

        final = status or ("FINISHED" if result.n_failed == 0 else "FAILED")
        end = work.close_sweep(result.plan.settings, result, final)
        result.experiment_id = end.experiment_id
        result.notes.extend(end.notes)
        if status is None:
            self._report()
        else:
            log.info("Sweep %s ended %s after %d trials", result.plan.sweep_id, final,
                     len(result.outcomes))  # fmt: skip

    def _forget(self) -> None:
        if self in _open:
            _open.remove(self)

    def _report(self) -> None:
        from sweeper.results import print_results

        assert self.result is not None
        if any(o.status != "NOT_RUN" for o in self.result.outcomes):
            print_results(self.result)

    def _batch_line(self, outcomes: Sequence[Outcome], sweep_id: str | None = None) -> None:
        assert self.result is not None
        batches = math.ceil(self.budget / self.batch_size)
        finished = sum(o.status == "FINISHED" for o in outcomes)
        ranked = sorted(outcomes, key=lambda o: (o.status != "FINISHED", o.mse))
        best, overall = (ranked[0] if finished else None), self.result.best
        parts = [
            f"Batch {self.batches}/{batches} of sweep {sweep_id or self.sweep_id}: "
            f"{len(outcomes)} trials, {finished} finished",
            f"best {best.line()}" if best else "none finished",
        ]
        if overall is not None:
            parts.append(f"best so far {overall.line()}")
        print("; ".join(parts), flush=True)


def end_studies(status: str | None = None) -> None:
    """End the sweep run of every study still open (see `Study.end`)."""
    for study in list(_open):
        try:
            study.end(status)
        except Exception as err:  # the exit goes on; the next sweep ends an orphan KILLED
            log.warning("Could not end sweep %s: %s", study.sweep_id, err)


def search_keys(config: DictConfig) -> list[str]:
    """Keys of the optimiser's search space: every trial's name shows their values."""
    sweeper = config.hydra.sweeper
    keys = [str(k) for k in (sweeper.get("params") or {})]
    keys += [str(k) for k in (sweeper.get("search_space") or {})]
    for override in _overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():
            keys.append(override.key_or_group)
    return [k.lstrip("+~") for k in dict.fromkeys(keys)]


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
