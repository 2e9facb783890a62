"""The local executor: a plan run by a pool of warm worker processes on this machine.

Workers do what an Argo pod does (`sweeper.work`): open the sweep's run, preprocess each group,
train and log each trial. This process only schedules: trials go out longest first as soon as
their group's split is stored, and outcomes come back with their MLflow run ids.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from sweeper import pool as pools
from sweeper import storage, work
from sweeper.outcome import Outcome, SweepResult
from sweeper.plan import Plan, PreprocessGroup, Trial, trial_key
from sweeper.progress import Progress
from sweeper.storage import write_record
from sweeper.tracking import TrialRecord

log = logging.getLogger(__name__)


class WorkerDied(RuntimeError):
    """The process training a trial died: killed by a signal (a crash, the OOM killer)."""


def run_local(plan: Plan, into: SweepResult | None = None, close: bool = True) -> SweepResult:
    """Run the plan's trials. One batch of a longer sweep (an optimiser asking for a few trials
    at a time) passes the sweep's result so far as `into` (its plan already holding this batch's
    trials) and `close=False`; a plan with a `parent_run_id` runs under that open sweep run."""
    settings = plan.settings
    storage.check_root(settings.storage_root)
    workers = min(settings.workers or os.cpu_count() or 1, max(1, len(plan.trials)))
    run = _Run(plan, workers, into, close)
    run.progress.start()
    try:
        result = run.until_done()
    except BaseException:
        run.abandon()
        raise
    finally:
        run.progress.stop()  # before the results table is printed
        shutil.rmtree(run.markers, ignore_errors=True)
    write_record(settings.storage_root, plan.sweep_id, "results.json", result.to_json())
    return result


def work_estimate(model: Mapping[str, Any]) -> float:
    """A rough relative cost of fitting a model config, to start the longest trials first:
    more and deeper trees take longer; configs without such knobs count the same."""
    trees = model.get("n_estimators")
    depth = model.get("max_depth")
    leaf = model.get("min_samples_leaf")
    cost = float(trees) if isinstance(trees, int | float) else 1.0
    cost *= float(depth) if isinstance(depth, int | float) else 32.0
    if isinstance(leaf, int | float) and leaf >= 1:
        cost /= float(leaf) ** 0.25
    return cost


class _Run:
    """The event loop of one sweep.

    A worker that dies breaks the whole pool and every task queued on it. The trials that were
    running then (their markers say which) are re-run one at a time in a pool of their own, so the
    one that kills its worker is named and fails alone; the others go to a fresh pool.
    """

    def __init__(
        self, plan: Plan, workers: int, into: SweepResult | None = None, close: bool = True
    ) -> None:
        self.plan, self.workers, self.close = plan, workers, close
        # A sweep that spans several runs (`into`) is ended by its owner when one is cut short.
        self.standalone = into is None
        settings = plan.settings
        self.result = into if into is not None else SweepResult(plan, "", settings.tracking_uri)
        self.markers = tempfile.mkdtemp(prefix="sweeper-workers-")
        self.progress = Progress(len(plan.trials), workers, self.markers)
        self.pool = pools.new_pool(workers)
        self.isolation: ProcessPoolExecutor | None = None
        self.isolated: Future[Any] | None = None
        self.suspects: list[Trial] = []
        self.split_urls: dict[str, str] = {}
        self.waiting: list[Trial] = []  # split stored, sweep run not yet open
        self.records: dict[int, TrialRecord] = {}
        self.preprocess_breaks: Counter[str] = Counter()
        self.pending: dict[Future[Any], PreprocessGroup | Trial | None] = {}
        if plan.parent_run_id:  # a later batch of a sweep whose run is open
            self.result.parent_run_id = plan.parent_run_id
        else:  # the sweep's run opens while the groups preprocess
            self.pending[self.pool.submit(work.open_sweep, *self._sweep_args())] = None
        for group in plan.groups:
            self._submit(group)

    def _sweep_args(self) -> tuple[Any, ...]:
        # A run that outlives this batch's workers is owned by this process: were it tagged with
        # the opening worker's pid, the next sweep would take it for an orphan once that exits.
        owner = None if self.close else os.getpid()
        return self.plan.settings, self.plan.sweep_id, self.plan.sweep_params, owner

    @property
    def context(self) -> work.SweepContext:
        plan = self.plan
        return work.SweepContext(plan.settings, plan.sweep_id, self.result.parent_run_id)

    def _submit(
        self, item: PreprocessGroup | Trial, pool: ProcessPoolExecutor | None = None
    ) -> Future[Any]:
        pool = pool or self.pool
        if isinstance(item, PreprocessGroup):
            future = pool.submit(work.prepare_group, item, self.plan.settings)
        else:
            record, url = self.records[item.index], self.split_urls[item.group]
            future = pool.submit(
                work.train_trial, self.context, record, item.model, url, self.markers
            )
        self.pending[future] = item
        return future

    def until_done(self) -> SweepResult:
        while self.pending:
            done, _ = wait(self.pending, return_when=FIRST_COMPLETED)
            for future in done:
                if future not in self.pending:  # settled with the rest of a broken pool
                    continue
                item = self.pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):
                    self._broken(item, future)
                elif item is None:
                    self._opened(future)
                elif isinstance(item, PreprocessGroup):
                    self._preprocessed(item, future)
                else:
                    self._trained(item, future)
        if self.close:
            self._close("FINISHED" if self.result.n_failed == 0 else "FAILED")
        for pool in (self.pool, self.isolation):
            if pool is not None:
                pool.shutdown()
        return self.result

    def abandon(self) -> None:
        """Interrupted: stop every worker, then mark the sweep's run KILLED (if it was opened)."""
        for pool in (self.pool, self.isolation):
            if pool is not None:
                pools.stop(pool)
        if self.result.parent_run_id and self.standalone:
            work.close_sweep(self.plan.settings, self.result, "KILLED")

    def _close(self, status: str) -> None:
        settings, result = self.plan.settings, self.result
        # The best model and the table/plots are logged side by side, each in its own worker.
        parts = (work.log_best, work.log_results)
        extras = [self.pool.submit(part, settings, result) for part in parts]
        notes = [note for extra in extras for note in extra.result()]
        end = self.pool.submit(work.end_sweep, settings, result, status, notes).result()
        self.result.experiment_id = end.experiment_id
        self.result.notes.extend(end.notes)

    def _opened(self, future: Future[tuple[str, list[str]]]) -> None:
        parent_run_id, orphans = future.result()
        for orphan in orphans:
            log.info(
                "Sweep run %s was left running by a process that is gone: marked KILLED", orphan
            )
        self.result.parent_run_id = parent_run_id
        self.plan = self.plan.with_parent(parent_run_id)
        self.result.plan = self.result.plan.with_parent(parent_run_id)  # all batches' trials
        write_record(self.plan.settings.storage_root, self.plan.sweep_id, "plan.json",
                     self.result.plan.to_json())  # fmt: skip
        log.info(
            "Sweep %s: %d trials, %d preprocess group(s), %d workers; MLflow run %s",
            self.plan.sweep_id,
            len(self.plan.trials),
            len(self.plan.groups),
            self.workers,
            parent_run_id,
        )
        self._release(self.waiting)
        self.waiting = []

    def _preprocessed(self, group: PreprocessGroup, future: Future[Any]) -> None:
        trials = self.plan.trials_of(group.id)
        try:
            split, finished = future.result()
        except Exception as err:
            self.result.preprocess_errors.append(str(err))
            not_run = [Outcome.not_run(t, str(err)) for t in trials]
            self.result.outcomes.extend(not_run)
            self.progress.settled(*not_run)
            return
        self.result.splits[group.id] = split
        self.split_urls[group.id] = split.url
        log.info(
            "Preprocess %s: %s %s", group.id, "reused" if split.reused else "stored", split.url
        )
        to_train = []
        for trial in trials:
            key = trial_key(split.key, trial.model)
            self.records[trial.index] = work.with_key(TrialRecord.of(trial), key, split.key)
            if key in finished:  # some sweep already finished this very trial on this split
                run_id, metrics = finished[key]
                self._settle(Outcome.reused_from(trial, metrics, run_id))
            else:
                to_train.append(trial)
        if self.result.parent_run_id:
            self._release(to_train)
        else:
            self.waiting.extend(to_train)

    def _release(self, trials: list[Trial]) -> None:
        for trial in sorted(trials, key=lambda t: -work_estimate(t.model)):
            self._submit(trial)
            self.progress.released([trial.index])

    def _trained(self, trial: Trial, future: Future[work.TrialDone]) -> None:
        if future is self.isolated:
            self.isolated = None
            self._isolate_next()
        done = future.result()  # a failing trial is logged by its worker, not raised
        if done.score is not None:
            self._settle(Outcome.finished(trial, done.score.metrics, done.run_id))
        else:
            self._settle(Outcome(trial, "FAILED", error=done.error, run_id=done.run_id))

    def _settle(self, outcome: Outcome) -> None:
        self.result.outcomes.append(outcome)
        self.progress.settled(outcome)
        total = len(self.result.plan.trials)  # of the whole sweep, earlier batches included
        log.info("[%d/%d] %s", len(self.result.outcomes), total, outcome.line())

    def _broken(self, item: PreprocessGroup | Trial | None, future: Future[Any]) -> None:
        if future is self.isolated:  # alone in its pool: this trial killed its worker
            assert isinstance(item, Trial) and self.isolation is not None
            how = _death(self.isolation)
            self.isolation.shutdown(wait=False, cancel_futures=True)
            self.isolation, self.isolated = None, None
            error = WorkerDied(f"its worker process died ({how})")
            logged = self.pool.submit(work.log_failure, self.context, self.records[item.index],
                                      error)  # fmt: skip
            self.pending[logged] = item
            self._isolate_next()
            return
        # The shared pool broke: every task still queued on it failed with it.
        affected = [item]
        for other in list(self.pending):
            if other is not self.isolated:
                affected.append(self.pending.pop(other))
        running = self._running_when_broken()
        log.warning(
            "A worker process died; re-running %d trial(s) alone to find which", len(running)
        )
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = pools.new_pool(self.workers)
        for lost in affected:
            if lost is None:
                self.pending[self.pool.submit(work.open_sweep, *self._sweep_args())] = None
            elif isinstance(lost, Trial) and lost.index in running:
                self.suspects.append(lost)
            elif isinstance(lost, PreprocessGroup) and self.preprocess_breaks[lost.id] >= 1:
                error = f"the preprocess worker died twice for group {lost.id}"
                self.result.preprocess_errors.append(error)
                trials = self.plan.trials_of(lost.id)
                not_run = [Outcome.not_run(t, error) for t in trials]
                self.result.outcomes.extend(not_run)
                self.progress.settled(*not_run)
            else:
                if isinstance(lost, PreprocessGroup):
                    self.preprocess_breaks[lost.id] += 1
                self._submit(lost)
        self._isolate_next()

    def _running_when_broken(self) -> set[int]:
        running = set()
        for marker in Path(self.markers).iterdir():
            index = int(marker.read_text() or -1)
            isolated = self.pending.get(self.isolated) if self.isolated else None
            if not isinstance(isolated, Trial) or index != isolated.index:
                running.add(index)
                marker.unlink()
        return running

    def _isolate_next(self) -> None:
        if self.isolated is not None or not self.suspects:
            return
        self.isolation = self.isolation or pools.new_pool(1)
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
