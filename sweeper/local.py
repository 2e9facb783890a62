"""The local executor: a plan run by a pool of warm worker processes on this machine.

Workers run the step functions (`steps.preprocess.preprocess`, `steps.train.score`); this process
does all MLflow writing, so a SQLite store has one writer and logging overlaps training.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from steps.preprocess import StoredSplit, preprocess
from steps.train import TrialScore, limit_threads, score
from sweeper.outcome import Outcome, SweepResult
from sweeper.plan import Plan, PreprocessGroup, Trial
from sweeper.storage import write_record
from sweeper.tracking import Tracker, TrialRecord

log = logging.getLogger(__name__)

# Imported once by the fork server, so every worker starts with them loaded.
_WARM_MODULES = [
    "steps.preprocess",
    "steps.train",
    "hydra.utils",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.metrics",
]


def run_local(plan: Plan) -> SweepResult:
    settings = plan.settings
    workers = min(settings.workers or os.cpu_count() or 1, max(1, len(plan.trials)))
    with _pool(workers) as pool:
        # Workers import and preprocess while this process opens the tracking store.
        run = _Run(plan, pool)
        tracker = Tracker(settings.tracking_uri, settings.experiment)
        parent_run_id = tracker.start_sweep(plan.sweep_id, plan.sweep_params)
        plan = dataclasses.replace(plan, parent_run_id=parent_run_id)
        write_record(settings.storage_root, plan.sweep_id, "plan.json", plan.to_json())
        result = SweepResult(plan, parent_run_id, tracker.tracking_uri)
        log.info(
            "Sweep %s: %d trials, %d preprocess group(s), %d workers; MLflow run %s",
            plan.sweep_id,
            len(plan.trials),
            len(plan.groups),
            workers,
            parent_run_id,
        )
        try:
            run.until_done(tracker, result)
        except BaseException:
            tracker.finish_sweep(parent_run_id, result.summary_metrics(), "KILLED")
            raise
    status = "FINISHED" if result.n_failed == 0 else "FAILED"
    tracker.finish_sweep(parent_run_id, result.summary_metrics(), status)
    write_record(settings.storage_root, plan.sweep_id, "results.json", result.to_json())
    return result


def _pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_WARM_MODULES)
    # Each worker's BLAS/OpenMP threads get its share of the cores: no oversubscription.
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=limit_threads, initargs=(threads,)
    )


class _Run:
    """The event loop of one sweep: preprocess each group, then fan its trials out."""

    def __init__(self, plan: Plan, pool: ProcessPoolExecutor) -> None:
        self.plan, self.pool = plan, pool
        self.pending: dict[Future[Any], PreprocessGroup | Trial] = {}
        root = plan.settings.storage_root
        for group in plan.groups:
            future = pool.submit(preprocess, group.data, group.preprocess, group.seed, root)
            self.pending[future] = group

    def until_done(self, tracker: Tracker, result: SweepResult) -> None:
        self.tracker, self.result = tracker, result
        while self.pending:
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                item = self.pending.pop(future)
                if isinstance(item, PreprocessGroup):
                    self._preprocessed(item, future)
                else:
                    self._trained(item, future)

    def _preprocessed(self, group: PreprocessGroup, future: Future[StoredSplit]) -> None:
        trials = self.plan.trials_of(group.id)
        try:
            split = future.result()
        except Exception as err:
            self.result.preprocess_errors.append(str(err))
            self.result.outcomes.extend(Outcome.not_run(t, str(err)) for t in trials)
            return
        self.result.splits[group.id] = split
        log.info(
            "Preprocess %s: %s %s", group.id, "reused" if split.reused else "stored", split.url
        )
        for trial in trials:
            self.pending[self.pool.submit(score, trial.model, split.url)] = trial

    def _trained(self, trial: Trial, future: Future[TrialScore]) -> None:
        record = TrialRecord.of(trial)
        try:
            trial_score = future.result()
        except Exception as err:
            run_id = self.tracker.log_trial(
                self.result.parent_run_id, self.plan.sweep_id, record, error=err
            )
            outcome = Outcome.failed(trial, err, run_id)
        else:
            run_id = self.tracker.log_trial(
                self.result.parent_run_id, self.plan.sweep_id, record, score=trial_score
            )
            outcome = Outcome.finished(trial, trial_score.metrics, run_id)
        self.result.outcomes.append(outcome)
        log.info("[%d/%d] %s", len(self.result.outcomes), len(self.plan.trials), outcome.line())
