"""The local executor's event loop: one sweep's batches run by a pool of warm worker processes.

Workers do what Argo's pods do (`worker`): preprocess (the first batch's data is preprocessed
here while they start: `head_start`), open the sweep's run, claim, train and log (with nothing
to train, this process does it: `cached`). Trials go out longest first once their split is
stored. The run opens only when the input is sound (the first batch's groups preprocessed, its
model values accepted): bad input leaves no run. A dead worker breaks the pool: the trials it
may have run are re-run alone to find which (`isolation`), the rest go to a fresh pool."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sweeper.conclusion.conclude import load_table_libraries
from sweeper.core import cost, storage
from sweeper.core.evidence import EarlyStop, FoldStop
from sweeper.core.faults import Fault
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.records import Plan, PreprocessGroup, Status, StoredSplit, Trial
from sweeper.core.settings import SearchKind
from sweeper.display.progress import Progress
from sweeper.display.trial_lines import TrialLines
from sweeper.executors.local import pool as pools
from sweeper.executors.local import private, worker
from sweeper.executors.local.head_start import (
    HeadStart,
    LookedUp,
    Preprocessed,
    group_of,
    in_this_process,
)
from sweeper.executors.local.isolation import Isolation
from sweeper.executors.local.worker import OpenRun, WarmStore
from sweeper.planning.task import misfits
from sweeper.search.halving import Halving, halving, halving_rows
from sweeper.trial import lifecycle
from sweeper.trial.lifecycle import Finished, SweepRef
from sweeper.trial.splits import announce_split, run_params

log = logging.getLogger(__name__)

AHEAD = 2  # trials handed to the pool per worker: one running, one to start at once after it
Work = PreprocessGroup | Preprocessed | Trial | WarmStore | OpenRun
Refill = Callable[[Outcome], Plan | None]  # a trial's outcome → the next trials, if any


class Scheduler:
    """One sweep on this machine across its batches: `open`, `run` each, `close`. `new_pool`
    makes the worker pools (a test may pass its own)."""

    def __init__(
        self,
        result: SweepResult,
        workers: int,
        new_pool: Callable[[int], Executor] = pools.new_pool,
    ) -> None:
        self.result, self.workers, self.new_pool = result, workers, new_pool
        self.settings = result.plan.settings
        self.markers = private.make_folder()  # removed by close, or by a later sweep
        self.pool = new_pool(workers)
        self.isolation = Isolation(new_pool)
        self.splits: dict[str, StoredSplit] = {}
        self.waiting: list[Trial] = []  # split stored, sweep run not yet open
        self.unchecked: set[str] = set()  # groups whose input the run waits for
        self.checking = True  # their trials' model values too (the first batch's)
        self.deferred: set[int] = set()  # trials another process held: waited for this time
        self.prepared: Future[str | None] | None = None  # worker.prepare_end, once sent
        self.pending: pools.Pending[Work] = pools.Pending()
        # Trials released, not handed to the pool yet: it gets AHEAD per worker at a time, so
        # that 100,000 released trials are a queue here, not 100,000 futures and work items.
        self.queued: deque[tuple[Trial, int | None]] = deque()
        self.batch: Plan | None = None
        self.last_batch = True
        self.progress, self.abandoned = Progress(0, workers), False
        self.trial_lines = TrialLines(len(result.plan.trials))
        self.here = isinstance(self.pool, pools.InProcess)  # nothing to train: no workers
        self.head = HeadStart((), self.settings.storage.root, self.settings.eval.cv)
        # group id → its split and finished trials, looked up before any worker (`cached`)
        self.looked_up: dict[str, tuple[StoredSplit, Finished]] = {}
        # search=halving: each group's halving, and the trials it found finished before
        self.halvings: dict[str, tuple[Halving, Finished]] = {}
        self.more: Refill | None = None  # a streaming optimiser's next trials (see run)
        self.untold: list[Outcome] = []  # outcomes `more` has not heard of yet
        self.pruning: Callable[[str], FoldStop] | None = None  # its pruner (see run)
        self.telling = False
        self.finished: dict[str, Finished] = {}  # group id → what its lookup found
        self.refused: dict[str, str] = {}  # group id → why its input was refused
        # eval.early_stop: per (group, rung) the loss of the best trial finished in full so
        # far; its per-fold scores are in a file its trials' CV is stopped against
        self.references: dict[tuple[str, int | None], float] = {}
        self.definition = ""  # the sweep's, encoded: where its run says it came from (see open)

    def open(
        self,
        groups: Sequence[PreprocessGroup] = (),
        found: LookedUp | None = None,
        definition: str = "",
    ) -> None:
        """Open the tracking store in a worker while the first batch's input is checked; its
        `groups` are preprocessed here meanwhile, while the pool's first workers start (or, for
        a sweep with nothing to train, were looked up here already: `found`, see `cached`).
        `definition`: the sweep's, encoded (its run's provenance tags: core.provenance)."""
        self.definition = definition
        self.head = HeadStart(
            () if self.here else groups, self.settings.storage.root, self.settings.eval.cv
        )
        self.looked_up = dict(found or {})
        self._submit(WarmStore())

    @property
    def sweep(self) -> SweepRef:
        return SweepRef.of(self.result.plan)

    def run(
        self,
        batch: Plan,
        last: bool = True,
        more: Refill | None = None,
        total: int = 0,
        pruning: Callable[[str], FoldStop] | None = None,
    ) -> list[Outcome]:
        """Run one batch's trials (already in `result.plan`; `last`: the sweep's last batch);
        their outcomes, in plan order. `more`: a streaming optimiser's, told each trial's
        outcome as it settles, which gives the trials to start next (planned into
        `result.plan`), run as part of this batch; `total`: how many trials it grows to;
        `pruning`: its pruner for the ranking metric, asked after each fold of every trial."""
        self.batch, self.last_batch, done = batch, last, len(self.result.outcomes)
        self.more, self.pruning = more, pruning
        was_open = bool(self.result.parent_run_id)
        self.progress = Progress(
            max(total, len(batch.trials)), self.workers, self.markers, ranking=self.result.ranking
        )
        self.progress.start()
        try:
            if not was_open:  # the first batch: the run waits for its input to be checked
                self.unchecked = {g.id for g in batch.groups}
            self.checking = not was_open
            for group in batch.groups:
                self._submit(group)
            if not was_open and not self.here:  # not waited for: a worker idle meanwhile
                targets = {str(t.model.get("_target_", "")) for t in batch.trials}
                self.pool.submit(worker.warm_fitting, sorted(targets))
            self._until_done()
            if self.waiting:  # their sweep never started: its input was refused
                reason = self.result.input_errors[0] if self.result.input_errors else "not run"
                self._not_run(self.waiting, reason, refused=False)
                self.waiting = []
        finally:
            # Before the results table is printed; refused input prints no counts, only itself.
            self.progress.stop(leave=not self.result.input_errors)
        # The batches so far (the first batch's was written when the run opened, before a
        # streaming optimiser added to it).
        if (was_open or more is not None) and self.result.parent_run_id:
            self._write_plan()
        return sorted(self.result.outcomes[done:], key=lambda o: o.trial.index)

    def close(self, status: Status) -> SweepResult:
        """Conclude the sweep's run in the pool (best model and table side by side), or here
        when the workers were stopped (`abandon`). After an outage, only its reason
        (`worker.stop_sweep`): what finished is in MLflow for the next command."""
        result = self.result
        try:
            if result.parent_run_id and not result.stopped_by:  # never opened: nothing to do
                if self.abandoned:  # the workers were stopped: here, one part after the other
                    ended = worker.conclude_here(self.settings, result, status, self.markers)
                else:
                    if worker.written_here(len(result.outcomes)) and not self.here:
                        self._fresh_worker()
                    ended = worker.conclude_in(
                        self.pool, self.settings, result, status, self.markers, self.prepared
                    )
                result.experiment_id = ended.experiment_id
                result.notes.extend(ended.notes)
        except Fault as err:
            result.stopped_by = str(err)
            raise
        finally:
            self._shutdown()
            worker.stop_sweep(self.settings, result)
        if status != Status.KILLED and result.parent_run_id and not result.stopped_by:
            storage.write_record(
                self.settings.storage.root, result.plan.sweep_id, storage.RESULTS, result.to_json()
            )
        return result

    def abandon(self) -> None:
        """Interrupted: stop every worker now (a worker finishes a tracking write first)."""
        self.abandoned = True
        for pool in (p for p in (self.pool, self.isolation.pool) if p is not None):
            pools.stop(pool)

    def _fresh_worker(self) -> None:
        """End a long sweep on one new worker, forked from the fork server, instead of the ones
        that trained: each holds tens of MB of its own by then (what its trials and lookups left
        in its arenas), while this process writes the tables, its own largest moment. The best
        model is on disk (`handed_over`) and the tracking store in MLflow: nothing is lost."""
        self.pool.shutdown()
        self.pool = self.new_pool(1)

    def _shutdown(self) -> None:
        for pool in (p for p in (self.pool, self.isolation.pool) if p is not None):
            if not self.abandoned:  # stopped already
                pool.shutdown()
        shutil.rmtree(self.markers, ignore_errors=True)

    def _submit(
        self, item: Work, pool: Executor | None = None, threads: int | None = None
    ) -> Future[Any]:
        pool = pool or self.pool
        future: Future[Any]
        if isinstance(item, OpenRun):
            # Owned by this process (tagged with a worker's pid, the next sweep would take it
            # for an orphan once that worker exits); its params say what preprocessing did.
            params = run_params(self.result.plan, self.splits)
            future = pool.submit(
                worker.open_sweep,
                self.settings,
                self.result.plan.sweep_id,
                params,
                os.getpid(),
                list(self.splits.values()),
                self.definition,
            )
        elif isinstance(item, WarmStore):
            future = pool.submit(worker.warm_tracking, self.settings)
        elif isinstance(item, PreprocessGroup) and item.id in self.looked_up:
            future = Future()  # what a worker's prepare_group would find, found before
            future.set_result((*self.looked_up.pop(item.id), []))
        elif isinstance(item, PreprocessGroup | Preprocessed):
            assert self.batch is not None
            trials = self.batch.trials_of(group_of(item).id)
            future, item = self.head.prepare(item, pool, self.settings, trials, self.checking)
        else:
            assert isinstance(item, Trial)
            split = self.splits[item.group]
            future = pool.submit(
                worker.train_trial,
                self.settings,
                self.sweep,
                item,
                split,
                self.markers,
                item.index in self.deferred,
                threads,
                self._early_stop(item),
            )
        self.pending.add(future, item)
        return future

    def _threads(self, trials: list[Trial]) -> int | None:
        """A halving's trial started alone, with nothing else pending (its last rung, often),
        gets the cores of the workers that have nothing to do: the sweep waits on it alone.
        (Not one of several: OpenMP's threads spin while they wait, and two such workers on
        one core slow each other down many times over.)"""
        if len(trials) != 1 or trials[0].rung is None or self.here or self.pending or self.queued:
            return None
        return os.cpu_count() or 1

    def _until_done(self) -> None:
        while True:
            self._fill()
            if not self.pending:
                return
            future, item = self.pending.finished()
            if isinstance(future.exception(), BrokenProcessPool):
                self._broken(item, future)
            elif isinstance(item, WarmStore):
                future.result()  # an unreachable store is said now, before anything runs
            elif isinstance(item, OpenRun):
                self._opened(future)
            elif in_this_process(item) and future.exception() is None:
                self._submit(Preprocessed(item.group, future.result()))  # to a worker now
            elif isinstance(item, PreprocessGroup | Preprocessed):  # refused here or there
                self._preprocessed(item, future)
            else:
                assert isinstance(item, Trial)
                self._trained(item, future)

    def _opened(self, future: Future[tuple[str, list[str]]]) -> None:
        parent_run_id, orphans = future.result()
        for orphan in orphans:
            log.info("Sweep run %s was left running by a process that is gone: KILLED", orphan)
        self.result.parent_run_id = parent_run_id
        plan = self.result.plan = self.result.plan.with_parent(parent_run_id)
        workers = "finished before, no workers" if self.here else f"{self.workers} workers"
        log.info(
            "Sweep %s: %d trials, %d preprocess group(s), %s; MLflow run %s",
            plan.sweep_id,
            len(plan.trials),
            len(plan.groups),
            workers,
            parent_run_id,
        )
        self._release(self.waiting)  # the first trials start while the plan is written down
        self.waiting = []
        self._write_plan()

    def _write_plan(self) -> None:
        plan = self.result.plan
        storage.write_record(
            self.settings.storage.root, plan.sweep_id, storage.PLAN, plan.to_json()
        )

    def _preprocessed(self, item: PreprocessGroup | Preprocessed, future: Future[Any]) -> None:
        group = group_of(item)
        assert self.batch is not None
        trials = self.batch.trials_of(group.id)
        try:
            split, finished, errors = future.result()
        except Fault:
            raise  # the store or the disk, not the input
        except Exception as err:
            self.refused[group.id] = str(err)
            self._not_run(trials, str(err))
            return
        self.result.splits[group.id] = self.splits[group.id] = split
        self.finished[group.id] = finished
        self.progress.ranking = self.result.ranking  # the task is known now
        refused = announce_split(group.id, split, self.settings.eval.cv) or misfits(trials, split)
        if refused or errors:
            self.result.input_errors.extend(errors[1:])
            self.refused[group.id] = refused or errors[0]
            self._not_run(trials, refused or errors[0])
            return
        if group.id in self.unchecked:  # the run opens once all of the input is sound
            self.unchecked.discard(group.id)
            if not self.unchecked and not self.result.input_errors:
                self._submit(OpenRun())
        if self.settings.search.kind == SearchKind.halving:
            rows, floor = halving_rows(split, self.settings.eval.cv)
            search = halving(trials, self.settings.search, self.result.ranking, rows, floor)
            self.halvings[group.id] = (search, finished)
            trials = search.start()
            log.info("Group %s: %s", group.id, search.describe())
        to_train = []
        for trial in trials:
            earlier = self._reused(trial, split, finished)
            if earlier is not None:  # some sweep already finished this very trial on this split
                self._settle(earlier)
            else:
                to_train.append(trial)
        self._start(to_train)

    def _reused(self, trial: Trial, split: StoredSplit, finished: Finished) -> Outcome | None:
        eval_ = self.settings.eval
        stopping = eval_.early_stop or self.pruning is not None  # a stopped run is an answer
        return lifecycle.reused(trial, split, finished, eval_.cv, stopping)

    def _start(self, trials: list[Trial]) -> None:
        if self.result.parent_run_id:
            self._release(trials)
        else:
            self.waiting.extend(trials)

    def _not_run(self, trials: list[Trial], error: str, refused: bool = True) -> None:
        if refused:
            self.result.input_errors.append(error)
        self.result.outcomes.extend(not_run := [Outcome.not_run(t, error) for t in trials])
        self.progress.settled(*not_run)
        if self.more is not None:  # a streaming optimiser hears of them as failed trials
            self.untold.extend(not_run)
            self._tell()

    def _release(self, trials: list[Trial]) -> None:
        threads = self._threads(trials)
        for trial in sorted(trials, key=lambda t: -cost.work_estimate(t.model)):
            self.queued.append((trial, threads))
        self._fill()

    def _fill(self) -> None:
        """Hand queued trials to the pool while it holds fewer than AHEAD per worker."""
        in_pool = sum(isinstance(work, Trial) for work in self.pending.work.values())
        while self.queued and in_pool < AHEAD * self.workers:
            trial, threads = self.queued.popleft()
            self._submit(trial, threads=threads)
            self.progress.released([trial.index])
            in_pool += 1

    def _trained(self, trial: Trial, future: Future[Outcome]) -> None:
        if self.isolation.holds(future):
            self.isolation.cleared()
            self._isolate_next()
        # A failing trial is logged by its worker, not raised. The outcome comes back with a
        # copy of its trial: the plan's own is held instead (100,000 copies were ~0.6 GB).
        outcome = dataclasses.replace(future.result(), trial=trial)
        if outcome.status == Status.RUNNING:  # another process holds it: after the queue
            self.deferred.add(trial.index)
            self.queued.append((trial, None))
        else:
            self._settle(outcome)

    def _early_stop(self, trial: Trial) -> FoldStop | None:
        """What stops the trial's CV early: a streaming optimiser's pruner, eval.early_stop's
        test against the best so far, or nothing."""
        if self.pruning is not None:
            return self.pruning(self.result.ranking.metric)
        return self._against_best(trial) if self.settings.eval.early_stop else None

    def _against_best(self, trial: Trial) -> EarlyStop:
        ranking = self.result.ranking
        where = os.path.join(self.markers, f"best-{trial.group}-{trial.rung}.json")
        return EarlyStop(where, ranking.metric, ranking.maximised, self.settings.eval.tie_level)

    def _reference(self, outcome: Outcome) -> None:
        """The best trial finished in full on its group's folds (and rung) so far."""
        ranking = self.result.ranking
        folds = outcome.folds.get(ranking.metric, ())
        if not outcome.ok or outcome.stopped or len(folds) != self.settings.eval.cv:
            return
        where, loss = (outcome.trial.group, outcome.trial.rung), ranking.loss(outcome.metrics)
        if where not in self.references or loss < self.references[where]:
            self.references[where] = loss
            self._against_best(outcome.trial).keep(folds)

    def _settle(self, outcome: Outcome) -> None:
        if self.settings.eval.early_stop:
            self._reference(outcome)
        if outcome.trial.rung is not None:  # a halving's rung: the halving decides what it ends
            self._rung_settled(outcome)
            return
        self._ended(outcome)

    def _rung_settled(self, outcome: Outcome) -> None:
        """Tell the group's halving; start what it promotes (those finished before are told in
        turn), and report the configurations it decided."""
        search, finished = self.halvings[outcome.trial.group]
        split, told = self.splits[outcome.trial.group], [outcome]
        if outcome.trial.partial:
            self.progress.went_on(outcome.trial.index)
        while told:
            promoted, decided = search.settle(told.pop())
            for final in decided:
                self._ended(final)
            to_train = []
            for trial in promoted:
                earlier = self._reused(trial, split, finished)
                if earlier is not None:
                    if self.settings.eval.early_stop:
                        self._reference(earlier)
                    told.append(earlier)
                else:
                    to_train.append(trial)
            self._start(to_train)

    def _ended(self, outcome: Outcome) -> None:
        self.result.outcomes.append(outcome)
        self.progress.settled(outcome)
        if self.more is not None:
            self.untold.append(outcome)
            self._tell()
        # A worker no trial is left for, while others run theirs, prepares the sweep's end
        few = 0 < len(self.pending) < self.workers and not self.queued  # (O(1) first)
        if (
            self.prepared is None
            and few
            and self.last_batch
            and not self.halvings  # a halving's next rung may still come: no end to prepare
            and self.more is None  # nor a streaming optimiser's next trial
            and all(isinstance(work, Trial) for work in self.pending.work.values())
        ):
            best = self.result.of_best()  # the best so far: all the worker needs
            self.prepared = self.pool.submit(worker.prepare_end, self.settings, best, self.markers)
            if worker.written_here(len(self.result.plan.trials)):
                # this process writes the tables at the end: it imports what they need now
                warm = threading.Thread(target=load_table_libraries, daemon=True)
                warm.start()
        # of the whole sweep, earlier batches included (a streaming one: all it will ask for)
        total = max(len(self.result.plan.trials), self.progress.total)
        self.trial_lines.settled(outcome, len(self.result.outcomes), total, self.result.ranking)

    def _tell(self) -> None:
        """Tell `more` each outcome in turn and start what it adds. A loop, not recursion: an
        added trial found finished before settles at once, and is told after this one."""
        if self.telling:
            return
        self.telling = True
        try:
            while self.untold and self.more is not None:
                added = self.more(self.untold.pop(0))
                if added is not None:
                    self._added(added)
        finally:
            self.telling = False

    def _added(self, added: Plan) -> None:
        """A streaming optimiser's next trials, part of the running batch: started at once on a
        split stored already, else when their group's is (preprocessed once)."""
        assert self.batch is not None
        known = {g.id for g in self.batch.groups}
        self.batch = dataclasses.replace(
            self.batch,
            groups=(*self.batch.groups, *(g for g in added.groups if g.id not in known)),
            trials=(*self.batch.trials, *added.trials),
        )
        for group in added.groups:
            trials = added.trials_of(group.id)
            if group.id in self.refused:  # its input was refused: so is every trial of it
                self._not_run(trials, self.refused[group.id], refused=False)
                continue
            if group.id not in self.splits:
                if group.id not in known:
                    self._submit(group)  # _preprocessed starts the batch's trials of it
                continue
            split, to_train = self.splits[group.id], []
            for trial in trials:
                earlier = self._reused(trial, split, self.finished[group.id])
                if earlier is not None:
                    self._settle(earlier)
                else:
                    to_train.append(trial)
            self._start(to_train)

    def _broken(self, item: Work, future: Future[Any]) -> None:
        if self.isolation.holds(future):  # alone in its pool: this trial killed its worker
            assert isinstance(item, Trial)
            error = self.isolation.convicted()
            logged = self.pool.submit(
                worker.log_failure, self.settings, self.sweep, item, self.splits[item.group], error
            )
            self.pending.add(logged, item)
            self._isolate_next()
            return
        # The shared pool broke: every task still queued on it failed with it.
        affected = [item]
        for other in list(self.pending):
            if not (self.isolation.holds(other) or in_this_process(self.pending.work[other])):
                affected.append(self.pending.take(other))
        running = self.isolation.running_when_broken(self.markers)
        log.warning(
            "A worker process died; re-running %d trial(s) alone to find which", len(running)
        )
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self.new_pool(self.workers)
        again, given_up = self.isolation.share(affected, running)
        for group in given_up:
            assert self.batch is not None
            died = f"the preprocess worker died twice for group {group.id}"
            self._not_run(self.batch.trials_of(group.id), died)
        for lost in again:
            self._submit(lost)
        self._isolate_next()

    def _isolate_next(self) -> None:
        self.isolation.next(lambda trial, pool: self._submit(trial, pool))
