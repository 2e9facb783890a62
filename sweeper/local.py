"""The local executor: a plan run by a pool of warm worker processes on this machine.

Workers run the step functions (`steps.preprocess.preprocess`, `steps.train.score`); this process
does all MLflow writing, so a SQLite store has one writer and logging overlaps training.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from steps.preprocess import StoredSplit, preprocess
from steps.train import TrialScore, limit_threads, score
from sweeper import storage
from sweeper.outcome import Outcome, SweepResult
from sweeper.plan import Plan, PreprocessGroup, Trial, trial_key
from sweeper.storage import write_record
from sweeper.tracking import Tracker, TrialRecord

log = logging.getLogger(__name__)

# Imported once by the fork server, so every worker starts with them loaded.
_WARM_MODULES = [
    "sweeper.local",
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
    # Workers import and preprocess while this process opens the tracking store.
    with _Run(plan, workers) as run:
        storage.check_root(settings.storage_root)
        tracker = Tracker(settings.tracking_uri, settings.experiment)
        for orphan in tracker.end_orphaned_sweeps():
            log.info(
                "Sweep run %s was left running by a process that is gone: marked KILLED", orphan
            )
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


class WorkerDied(RuntimeError):
    """The process training a trial died: killed by a signal (a crash, the OOM killer)."""


def score_marked(index: int, model: dict[str, Any], split_url: str, markers: str) -> TrialScore:
    """`score`, with a marker file while it runs: if the worker dies, the marker names the trial."""
    marker = Path(markers, str(os.getpid()))
    marker.write_text(str(index))
    try:
        return score(model, split_url)
    finally:
        marker.unlink(missing_ok=True)


class _Run:
    """The event loop of one sweep: preprocess each group, then fan its trials out.

    A worker that dies breaks the whole pool and every trial queued on it. The trials that were
    running then (their markers say which) are re-run one at a time in a pool of their own, so the
    one that kills its worker is named and fails alone; the others go to a fresh pool.
    """

    def __init__(self, plan: Plan, workers: int) -> None:
        self.plan, self.workers = plan, workers
        self.markers = tempfile.mkdtemp(prefix="sweeper-workers-")
        self.pool = _pool(workers)
        self.isolation: ProcessPoolExecutor | None = None
        self.isolated: Future[Any] | None = None
        self.suspects: list[Trial] = []
        self.split_urls: dict[str, str] = {}
        self.keys: dict[int, tuple[str, str]] = {}  # trial index → (trial key, split key)
        self.preprocess_breaks: Counter[str] = Counter()
        self.pending: dict[Future[Any], PreprocessGroup | Trial] = {}
        for group in plan.groups:
            self._submit(group)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc: object) -> None:
        for pool in (self.pool, self.isolation):
            if pool is not None:
                pool.shutdown(wait=exc == (None, None, None), cancel_futures=True)
        shutil.rmtree(self.markers, ignore_errors=True)

    def _submit(
        self, item: PreprocessGroup | Trial, pool: ProcessPoolExecutor | None = None
    ) -> Future[Any]:
        pool = pool or self.pool
        if isinstance(item, PreprocessGroup):
            root = self.plan.settings.storage_root
            future = pool.submit(preprocess, item.data, item.preprocess, item.seed, root)
        else:
            url = self.split_urls[item.group]
            future = pool.submit(score_marked, item.index, item.model, url, self.markers)
        self.pending[future] = item
        return future

    def until_done(self, tracker: Tracker, result: SweepResult) -> None:
        self.tracker, self.result = tracker, result
        while self.pending:
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future not in self.pending:  # settled with the rest of a broken pool
                    continue
                item = self.pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    self._broken(item, future)
                elif isinstance(item, PreprocessGroup):
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
        self.split_urls[group.id] = split.url
        log.info(
            "Preprocess %s: %s %s", group.id, "reused" if split.reused else "stored", split.url
        )
        # Trials some sweep already finished on this very split are not trained again.
        finished = {} if self.plan.settings.rerun else self.tracker.finished_trials(split.key)
        for trial in trials:
            key = trial_key(split.key, trial.model)
            self.keys[trial.index] = (key, split.key)
            if key in finished:
                run_id, metrics = finished[key]
                self._settle(Outcome.reused_from(trial, metrics, run_id))
            else:
                self._submit(trial)

    def _trained(self, trial: Trial, future: Future[TrialScore]) -> None:
        if future is self.isolated:
            self.isolated = None
            self._isolate_next()
        try:
            trial_score = future.result()
        except Exception as err:
            self._record(trial, error=err)
        else:
            self._record(trial, trial_score=trial_score)

    def _record(
        self, trial: Trial, trial_score: TrialScore | None = None, error: Exception | None = None
    ) -> None:
        key, split_key = self.keys[trial.index]
        record = dataclasses.replace(TrialRecord.of(trial), key=key, split_key=split_key)
        parent, sweep_id = self.result.parent_run_id, self.plan.sweep_id
        if trial_score is not None:
            run_id = self.tracker.log_trial(parent, sweep_id, record, score=trial_score)
            outcome = Outcome.finished(trial, trial_score.metrics, run_id)
        else:
            assert error is not None
            run_id = self.tracker.log_trial(parent, sweep_id, record, error=error)
            outcome = Outcome.failed(trial, error, run_id)
        self._settle(outcome)

    def _settle(self, outcome: Outcome) -> None:
        self.result.outcomes.append(outcome)
        log.info("[%d/%d] %s", len(self.result.outcomes), len(self.plan.trials), outcome.line())

    def _broken(self, item: PreprocessGroup | Trial, future: Future[Any]) -> None:
        if future is self.isolated:  # alone in its pool: this trial killed its worker
            assert isinstance(item, Trial) and self.isolation is not None
            how = _death(self.isolation)
            self.isolation.shutdown(wait=False, cancel_futures=True)
            self.isolation, self.isolated = None, None
            self._record(item, error=WorkerDied(f"its worker process died ({how})"))
            self._isolate_next()
            return
        # The shared pool broke: every item still queued on it failed with it.
        affected = [item]
        for other in list(self.pending):
            if other is not self.isolated:
                affected.append(self.pending.pop(other))
        running = self._running_when_broken()
        log.warning(
            "A worker process died; re-running %d trial(s) alone to find which", len(running)
        )
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = _pool(self.workers)
        for lost in affected:
            if isinstance(lost, Trial) and lost.index in running:
                self.suspects.append(lost)
            elif isinstance(lost, PreprocessGroup) and self.preprocess_breaks[lost.id] >= 1:
                error = f"the preprocess worker died twice for group {lost.id}"
                self.result.preprocess_errors.append(error)
                trials = self.plan.trials_of(lost.id)
                self.result.outcomes.extend(Outcome.not_run(t, error) for t in trials)
            else:
                if isinstance(lost, PreprocessGroup):
                    self.preprocess_breaks[lost.id] += 1
                self._submit(lost)
        self._isolate_next()

    def _running_when_broken(self) -> set[int]:
        running = set()
        for marker in Path(self.markers).iterdir():
            index = int(marker.read_text() or -1)
            if self.isolated is None or index != self.pending[self.isolated].index:
                running.add(index)
                marker.unlink()
        return running

    def _isolate_next(self) -> None:
        if self.isolated is not None or not self.suspects:
            return
        self.isolation = self.isolation or _pool(1)
        self.isolated = self._submit(self.suspects.pop(0), self.isolation)


def _death(pool: ProcessPoolExecutor) -> str:
    """How the single worker of an isolation pool ended, as far as the OS tells."""
    processes = list(getattr(pool, "_processes", {}).values())
    code = processes[0].exitcode if processes else None
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    # A fork-server child's status reaches us through the fork server, which reports 255 when
    # it could not learn it (the child was killed too abruptly): say so rather than guess.
    if code is None or code == 255:
        return "killed or crashed; the OS did not report how"
    return f"exit code {code}"
