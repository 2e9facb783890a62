"""backend=local: the executor, whose event loop is `scheduler.Scheduler`."""

from __future__ import annotations

import logging
import os
import signal

from sweeper.core import storage
from sweeper.core.outcomes import Outcome
from sweeper.core.processes import ENDING_RUNS, raise_if_ctrl_c, uninterrupted
from sweeper.core.records import Plan, Status
from sweeper.display.table import print_results
from sweeper.executors.base import Batch, Sweep
from sweeper.executors.local import cached
from sweeper.executors.local import pool as pools
from sweeper.executors.local.scheduler import Scheduler

log = logging.getLogger(__name__)


class LocalExecutor:
    """The local side of the executor seam; the event loop is `scheduler.Scheduler`."""

    streams = True  # a streaming optimiser's trials join the running batch (Scheduler.run)

    def __init__(self) -> None:
        self.scheduler: Scheduler | None = None

    def check(self, sweep: Sweep) -> None:
        """Nothing to refuse before planning: storage is checked once the plan is sound."""

    def open(self, sweep: Sweep, first: Batch) -> None:
        raise_if_ctrl_c()  # pressed while the plan's modules loaded, and lost there
        plan = sweep.plan(first)
        storage.check_root(plan.settings.storage.root)
        # Nothing to train at all is known only for a batch that will not grow.
        looked_up = cached.finished_before(plan) if first.last and first.more is None else None
        if looked_up is not None:  # answered here, no worker started
            self.scheduler = Scheduler(sweep.result, 1, pools.in_process)
        else:
            cores = plan.settings.local.workers or os.cpu_count() or 1
            self.scheduler = Scheduler(sweep.result, min(cores, max(1, len(plan.trials))))
        self.scheduler.open(plan.groups, looked_up, first.definition.portable().encoded())

    def run(self, sweep: Sweep, batch: Batch) -> list[Outcome]:
        assert self.scheduler is not None, "open the sweep first"
        plan = sweep.plan(batch)
        more = None
        if batch.more is not None:  # a streaming optimiser: its next trials, planned here
            asked = batch.more

            def more(outcome: Outcome) -> Plan | None:
                added = asked(outcome)
                return None if added is None else sweep.plan(added)

        try:
            return self.scheduler.run(plan, batch.last, more, batch.expected, batch.pruning)
        except BaseException:
            # A second Ctrl-C waits until the workers have stopped and the runs are ended.
            with uninterrupted(signal.SIGINT, signal.SIGTERM, say=ENDING_RUNS):
                self.scheduler.abandon()
            raise

    def close(self, sweep: Sweep, status: Status | None) -> int:
        if self.scheduler is None:  # never opened, or closed already
            return 0 if status is None else 1
        result = sweep.result
        final = status or (Status.FINISHED if result.n_failed == 0 else Status.FAILED)
        scheduler, self.scheduler = self.scheduler, None
        scheduler.close(final)
        if status is None:  # ended as planned: the table, unless nothing could run at all
            if any(o.status != Status.NOT_RUN for o in result.outcomes):
                print_results(result)
        elif result.parent_run_id:
            log.info(
                "Sweep %s ended %s after %d trials",
                result.plan.sweep_id,
                final,
                len(result.outcomes),
            )
        return 0 if final == Status.FINISHED else 1
