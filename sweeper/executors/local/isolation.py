"""Finding the trial that kills its worker: suspects re-run one at a time in a pool of their own.

When a worker dies, the whole pool breaks with it and every trial on it fails. The trials that
were running then are the suspects; alone in a one-worker pool, the one that kills its worker
again is named (and fails alone) and the others finish as usual.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any, TypeVar

from sweeper.core.records import PreprocessGroup, Trial
from sweeper.executors.local import pool as pools

W = TypeVar("W")  # the scheduler's work: a trial, a preprocess group, a sweep task


class Isolation:
    """The suspects and the one-worker pool the next of them runs in."""

    def __init__(self, new_pool: Callable[[int], Executor]) -> None:
        self.new_pool = new_pool
        self.pool: Executor | None = None
        self.future: Future[Any] | None = None  # the suspect running alone
        self.trial: Trial | None = None
        self.suspects: list[Trial] = []
        self.preprocess_breaks: Counter[str] = Counter()

    def holds(self, future: Future[Any]) -> bool:
        return self.future is not None and future is self.future

    def next(self, submit: Callable[[Trial, Executor], Future[Any]]) -> None:
        """Start the next suspect alone, unless one is running."""
        if self.future is not None or not self.suspects:
            return
        self.pool = self.pool or self.new_pool(1)
        self.trial = self.suspects.pop(0)
        self.future = submit(self.trial, self.pool)

    def cleared(self) -> None:
        """The suspect running alone came back: it did not kill its worker."""
        self.future = self.trial = None

    def convicted(self) -> pools.WorkerDied:
        """The suspect running alone killed its worker: why, and a fresh pool for the next."""
        assert self.pool is not None
        how = pools.death(self.pool)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool, self.future, self.trial = None, None, None
        return pools.WorkerDied(f"its worker process died ({how})")

    def running_when_broken(self, markers: str) -> set[int]:
        """The trials the broken pool's workers were fitting (their marker files say which),
        besides the one running alone; their markers are cleared."""
        running = set()
        for marker in Path(markers).iterdir():
            if not marker.name.isdigit():  # not a worker's marker (the kept models' folder)
                continue
            index = int(marker.read_text() or -1)
            if self.trial is None or index != self.trial.index:
                running.add(index)
                marker.unlink()
        return running

    def share(self, lost: Sequence[W], running: set[int]) -> tuple[list[W], list[PreprocessGroup]]:
        """A broken pool's lost work: the trials that were running become suspects (each to
        run alone); the rest goes to a fresh pool, but for the preprocess groups whose worker
        died twice, which are given up (returned second)."""
        again: list[W] = []
        given_up: list[PreprocessGroup] = []
        for work in lost:
            if isinstance(work, Trial) and work.index in running:
                self.suspects.append(work)
            elif isinstance(work, PreprocessGroup) and self.preprocess_breaks[work.id] >= 1:
                given_up.append(work)
            else:
                if isinstance(work, PreprocessGroup):
                    self.preprocess_breaks[work.id] += 1
                again.append(work)
        return again, given_up
