"""The seam between a sweep and where its trials run.

A sweep is checked, opened with its first batch of trials, runs one or more batches (a grid sweep
is one batch; an optimiser's study asks for many), and is closed with a status. An executor does
those things for one backend; `sweeper.executors.executor_for` is the one place that picks it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from sweeper.core.evidence import FoldStop
from sweeper.core.outcomes import Outcome, SweepResult
from sweeper.core.records import Plan, Status
from sweeper.core.settings import Settings
from sweeper.planning.definition import Definition

if TYPE_CHECKING:
    from sweeper.planning.plan import Job


@dataclass
class Batch:
    """Trials for an executor, two ways: as the command line described them (`definition`, what
    a remote planner is sent instead of the trials) and as Hydra jobs composed here, which cost
    time for large sweeps and so are composed only when an executor asks (`jobs()`)."""

    definition: Definition
    compose: Callable[[], Sequence[Job]]
    last: bool = True  # the sweep ends after this batch
    _jobs: Sequence[Job] | None = field(default=None, repr=False)
    plan: Plan | None = field(default=None, repr=False)  # set by the sweep that plans it
    ran_as: str | None = None  # the sweep id it ran as, when not the sweep's (an Argo workflow)
    # A streaming optimiser's batch grows as its trials end: told each trial's outcome, `more`
    # gives the next trials to run as part of it (None: none now). An executor that can
    # (`Executor.streams`) runs them without waiting for the batch; `expected`: trials in all.
    more: Callable[[Outcome], Batch | None] | None = field(default=None, repr=False)
    expected: int = 0
    # Its pruner for the ranking metric (known once the data is read), asked after each fold.
    pruning: Callable[[str], FoldStop] | None = field(default=None, repr=False)

    def jobs(self) -> Sequence[Job]:
        if self._jobs is None:
            self._jobs = self.compose()
        return self._jobs


class Sweep(Protocol):
    """What an executor sees of the sweep it runs (see sweeper.launching.sweep)."""

    @property
    def sweep_id(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    @property
    def optimiser(self) -> str | None:
        """The optimising sweeper asking for batches (`optuna`), None for a grid sweep."""
        ...

    @property
    def result(self) -> SweepResult:
        """Every batch's trials and outcomes so far (after the first `plan`)."""
        ...

    def plan(self, batch: Batch) -> Plan:
        """The batch's plan, with this sweep's id and trial names; added to `result.plan`."""
        ...


class Executor(Protocol):
    def check(self, sweep: Sweep) -> None:
        """Refuse settings this backend cannot run, in one line, before anything is written."""
        ...

    def open(self, sweep: Sweep, first: Batch) -> None:
        """Begin the sweep with its first batch (its MLflow run may open now)."""
        ...

    def run(self, sweep: Sweep, batch: Batch) -> list[Outcome] | None:
        """Run the batch's trials and add their outcomes to `sweep.result`. None when they run
        where their results do not come back to this process (a rendered manifest, a scheduled
        or unwatched workflow, a workflow that reports its own results)."""
        ...

    def close(self, sweep: Sweep, status: Status | None) -> int:
        """End the sweep: FINISHED/FAILED after its last batch (None: as its trials decide),
        KILLED when cut short. The process's exit status: 0 when all went well."""
        ...

    @property
    def streams(self) -> bool:
        """Whether `run` grows a batch with its `more` trials as they are asked for (the local
        pool); else an optimiser asks in batches (an Argo workflow each)."""
        ...
