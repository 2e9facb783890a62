"""One sweep, however many batches its trials come in: one id, one plan, one result, one executor.

A grid sweep (and a single run) is one batch; an optimiser's study is batch after batch through
the same executor, its run left open between them. A sweep left open when the process stops early
(Ctrl-C, the optimiser raising) is ended by `end_open_sweeps`, which `sweeper.app` calls.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import signal
from collections.abc import Sequence

from sweeper.core.faults import Fault
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.processes import ENDING_RUNS, uninterrupted
from sweeper.core.records import Plan, Status
from sweeper.core.settings import Settings
from sweeper.errors import SweeperError
from sweeper.executors import executor_for
from sweeper.executors.base import Batch
from sweeper.launching.study import Study
from sweeper.planning.plan import build_plan, new_sweep_id
from sweeper.safe_text import guard_logging

log = logging.getLogger(__name__)

_open: list[SweepSession] = []  # sweeps whose run is open in this process
_exit_status = 0  # non-zero once a sweep of this process did not end well


class SweepSession:
    """Implements `sweeper.executors.Sweep`: what its executor sees of it."""

    def __init__(self, settings: Settings, study: Study | None = None) -> None:
        guard_logging()  # what the sweep logs quotes its data
        self._settings, self.study = settings, study
        self._sweep_id = new_sweep_id()
        self._result: SweepResult | None = None
        self.executor = executor_for(settings.backend)
        self.opened = self.closed = False
        self.batches = 0
        self.executor.check(self)

    @property
    def sweep_id(self) -> str:
        return self._sweep_id

    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def optimiser(self) -> str | None:
        return self.study.optimiser if self.study else None

    @property
    def result(self) -> SweepResult:
        assert self._result is not None, "no batch has been planned yet"
        return self._result

    def plan(self, batch: Batch) -> Plan:
        if batch.plan is not None:
            return batch.plan
        names = self.study.name_keys if self.study else ()
        plan = build_plan(batch.jobs(), self.sweep_id, names)
        if self.study:
            plan = plan.with_params(self.study.params)
        if self._result is None:
            self._result = SweepResult(plan, "")
        else:
            whole = self._result.plan
            if plan.settings != whole.settings:
                raise SweeperError(
                    f"settings of the whole sweep differ between batches ({whole.settings} vs "
                    f"{plan.settings}); they cannot be part of the search space"
                )
            groups = {g.id: g for g in (*whole.groups, *plan.groups)}
            self._result.plan = dataclasses.replace(
                whole, groups=tuple(groups.values()), trials=whole.trials + plan.trials
            )
            if self._result.parent_run_id:
                plan = plan.with_parent(self._result.parent_run_id)
        batch.plan = plan
        return plan

    @property
    def streams(self) -> bool:
        """Whether this sweep's executor runs a streaming optimiser's trials as it asks for
        them (see Batch.more)."""
        return bool(self.executor.streams)

    def run(self, batch: Batch) -> list[Outcome] | None:
        """Run one batch; the sweep is closed after its last (`batch.last`)."""
        self.batches += 1
        try:
            if not self.opened:
                self.executor.open(self, batch)
                self.opened = True
                _open.append(self)
            outcomes = self.executor.run(self, batch)
        except BaseException as err:
            if isinstance(err, Fault) and self._result is not None:
                self._result.stopped_by = str(err)
            self.end(Status.KILLED if isinstance(err, KeyboardInterrupt) else Status.FAILED)
            raise
        if self.study is not None and outcomes is not None and batch.more is None:
            self._batch_line(outcomes, batch.ran_as)  # (a streamed study has one: its table)
            self.study.check(self.result.ranking)  # once the data's task is known
        errors = self._result.input_errors if self._result else []
        if batch.last or errors:  # refused input ends the sweep: no table of what did not run
            self.end(Status.FAILED if errors else None)
        if errors:
            raise SweeperError(errors[0])
        return outcomes

    def end(self, status: Status | None = None) -> None:
        """End the sweep: None after its last batch (its trials decide), KILLED or FAILED when it
        was cut short, or when the optimiser stopped before its budget (a smaller grid). Once
        begun, the ending is not cut short: it is marked closed first, so a Ctrl-C (a second
        one, after the one that stopped the sweep) or a SIGTERM waits until it is done."""
        global _exit_status
        if self.closed:
            return
        self.closed = True
        if self in _open:
            _open.remove(self)
        with uninterrupted(signal.SIGINT, signal.SIGTERM, say=ENDING_RUNS):
            code = self.executor.close(self, status) if self.opened else int(status is not None)
        _exit_status = _exit_status or code

    def _batch_line(self, outcomes: Sequence[Outcome], ran_as: str | None) -> None:
        assert self.study is not None
        batches = math.ceil(self.study.budget / self.study.batch_size)
        ranking = self.result.ranking
        finished = [o for o in outcomes if o.ok]
        best = min(finished, key=lambda o: ranking.loss(o.metrics)) if finished else None
        parts = [
            f"Batch {self.batches}/{batches} of sweep {ran_as or self.sweep_id}: "
            f"{len(outcomes)} trials, {len(finished)} finished",
            f"best {best.line(ranking)}" if best else "none finished",
        ]
        overall = self.result.best
        if overall is not None:
            parts.append(f"best so far {overall.line(ranking)}")
        print("; ".join(parts), flush=True)


def end_open_sweeps(status: Status | None = None) -> None:
    """End every sweep still open in this process (see `SweepSession.end`)."""
    for sweep in list(_open):
        try:
            sweep.end(status)
        except Exception as err:  # the exit goes on; the next sweep ends an orphan KILLED
            log.warning("Could not end sweep %s: %s", sweep.sweep_id, err)


def exit_status() -> int:
    """The process's exit status for its sweeps: 1 once one failed or was cut short."""
    return _exit_status
