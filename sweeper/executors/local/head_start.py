"""The first batch's data preprocessed in the sweeping process while the fork server imports.

Until the fork server has imported scikit-learn, MLflow and the rest (~4 s), no worker exists and
the sweeping process, its configs composed, only waits: one core idle. So it preprocesses the
first batch's groups itself meanwhile, one after another in a thread, with the same step a
worker runs (`steps.preprocess.preprocess`); a worker then only looks the group's finished
trials up and checks its model values. A group the thread has not started by the time the pool
is ready is left to a worker as usual, so many groups are not preprocessed one at a time here.
The thread is a daemon: Ctrl-C does not wait for it (a split is stored atomically, its meta.json
last, so one cut short is rebuilt by the next sweep, never trusted).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Any, TypeGuard

from sweeper.core.records import PreprocessGroup, StoredSplit, Trial, TrialValues
from sweeper.core.settings import SearchKind, Settings
from sweeper.executors.local import worker
from sweeper.trial.lifecycle import Finished

LookedUp = Mapping[str, tuple[StoredSplit, Finished]]  # group id → its split and finished trials


@dataclass(frozen=True)
class Preprocessed:
    """A scheduler's work item: a group this process is preprocessing, or has (`split`)."""

    group: PreprocessGroup
    split: StoredSplit | None = None


def in_this_process(work: object) -> TypeGuard[Preprocessed]:
    """Whether a scheduler's work item is being preprocessed here (its future is no pool's)."""
    return isinstance(work, Preprocessed) and work.split is None


def group_of(work: PreprocessGroup | Preprocessed) -> PreprocessGroup:
    return work.group if isinstance(work, Preprocessed) else work


class HeadStart:
    """Preprocess `groups` into `storage_root` in a thread of this process, in order."""

    def __init__(self, groups: Sequence[PreprocessGroup], storage_root: str, cv: int) -> None:
        self._root = storage_root
        self._cv = cv  # the sweep's eval.cv: the folds each split is stored with
        self._futures: dict[str, Future[StoredSplit]] = {g.id: Future() for g in groups}
        self._groups = list(groups)
        if groups:
            threading.Thread(target=self._run, name="sweeper-head-start", daemon=True).start()

    def prepare(
        self,
        item: PreprocessGroup | Preprocessed,
        pool: Executor,
        settings: Settings,
        trials: list[Trial],
        check: bool,
    ) -> tuple[Future[Any], PreprocessGroup | Preprocessed]:
        """The work that prepares a group (`worker.prepare_group`: preprocessed, its `trials`
        looked up and, with `check`, their model values checked) and what the scheduler waits
        for: its preprocessing here, once that started, else the whole of it in `pool` (with
        the split, once stored here)."""
        sent = _sent(trials, settings)
        if isinstance(item, Preprocessed):  # stored here: a worker looks it up
            work = (item.group, settings, sent, check, item.split)
            return pool.submit(worker.prepare_group, *work), item
        here = self.take(item)
        if here is not None:
            return here, Preprocessed(item)
        return pool.submit(worker.prepare_group, item, settings, sent, check), item

    def take(self, group: PreprocessGroup) -> Future[StoredSplit] | None:
        """The group's preprocessing here, once started (running or done); None when it was not
        (nor will be: a worker preprocesses it)."""
        future = self._futures.pop(group.id, None)
        if future is None or future.cancel():  # not started: the thread skips it
            return None
        return future

    def _run(self) -> None:
        from steps.preprocess import preprocess

        for group in self._groups:
            future = self._futures.get(group.id)
            if future is None or not future.set_running_or_notify_cancel():
                continue
            try:
                split = preprocess(group.data, group.preprocess, group.seed, self._root, self._cv)
            except BaseException as err:  # the scheduler reads it as a worker's task's
                future.set_exception(err)
            else:
                future.set_result(split)


def _sent(trials: list[Trial], settings: Settings) -> list[Trial] | list[TrialValues]:
    """What a worker needs of the trials it looks up: their values (a grid), or whole Trials
    (a halving makes its rungs' trials from them)."""
    if settings.search.kind == SearchKind.halving:
        return trials
    return [TrialValues.of(trial) for trial in trials]
