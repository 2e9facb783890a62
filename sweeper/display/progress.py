"""How far a sweep has got: counts of trials, time spent and left, the best trial so far.

A local sweep feeds one `Progress` with its executor's events. In a terminal it shows as a rich
live display; anywhere else (CI, pods, cron, pipes) as a plain log line now and then, without
escape codes. `describe` is the one formatter of those counts: the Argo watch prints it too.

This module is imported by the sweeping process and needs no MLflow, pandas or scikit-learn:
it reads outcomes through their attributes and imports rich only to display.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TextIO

from sweeper.core.metrics import Ranking

if TYPE_CHECKING:
    from rich.console import RenderableType

    from sweeper.core.outcomes import Outcome

log = logging.getLogger(__name__)

QUIET_EVERY = 10.0  # seconds: plain lines come at most this often...
QUIET_HEARTBEAT = 60.0  # ...and at least this often, so a long trial does not look like a hang
# ...or, past the first minutes, at most QUIET_SHARE times per time elapsed so far: a day-long
# sweep logs a few hundred lines, not thousands (~30 more each time the elapsed time triples).
QUIET_SHARE = 30
LIVE_REFRESH = 4  # live display updates per second


@dataclass(frozen=True)
class Counts:
    """Trials of a sweep by state. Queued is whatever is neither finished nor running."""

    total: int
    done: int = 0  # finished, including trials reused from earlier sweeps
    failed: int = 0  # failed, or not run because their preprocess step failed
    running: int = 0

    @property
    def queued(self) -> int:
        return max(0, self.total - self.done - self.failed - self.running)


def clock_time(seconds: float) -> str:
    """`1:02:03`: hours grow as needed, so a day-long sweep still reads at a glance."""
    whole = max(0, int(seconds))
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def describe(
    counts: Counts,
    elapsed: float,
    left: float | None = None,
    best: tuple[float, str] | None = None,
    ranked_by: str = "mse",
) -> str:
    """`12/40 done, 1 failed, 2 running, 25 queued; 0:00:31 elapsed, ~0:01:10 left; best mse
    2743.6 (rf n_estimators=100 max_depth=4)`; the time left and the best are left out when
    unknown."""
    text = (
        f"{counts.done}/{counts.total} done, {counts.failed} failed, {counts.running} running, "
        f"{counts.queued} queued; {clock_time(elapsed)} elapsed"
    )
    if left is not None:
        text += f", ~{clock_time(math.ceil(left))} left"  # rounded up: never "0:00:00 left"
    if best is not None:
        value, name = best
        text += f"; best {ranked_by} {value:.6g} ({name})"
    return text


class Progress:
    """The state of one local sweep, updated from its event loop and read by the display.

    A worker pool takes tasks first in, first out, one per worker; so a released trial is taken
    to start when a worker is free by that model, and a trial's duration is from then until its
    outcome comes back (its fit and its MLflow logging). Running trials are counted from the
    marker files workers keep while they fit (`executors.local.worker.train_trial`): exact.
    """

    def __init__(
        self,
        total: int,
        workers: int,
        markers: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        ranking: Ranking | None = None,  # None: by test MSE
    ) -> None:
        self.total, self.workers, self.markers, self.clock = total, max(1, workers), markers, clock
        self.ranking = ranking or Ranking()
        self.started_at = clock()
        self.done = self.failed = 0
        # The ranking metric's value, trial index, trial name.
        self.best: tuple[float, int, str] | None = None
        self._lead = (math.inf, -1)  # the best's (loss, index): what a newcomer must beat
        self._lock = threading.Lock()  # the display reads from its own thread
        # Released, no worker free yet (by the model), in order; the set says which of the
        # deque's are still waiting (one may end first: found and dropped in O(1) at any size).
        self._waiting: deque[int] = deque()
        self._still_waiting: set[int] = set()
        self._started: dict[int, float] = {}  # trial index → when a worker took it
        self._trained = 0  # finished trials this sweep trained (not reused)
        self._trained_seconds = 0.0
        self._display: _Live | _Quiet | None = None

    # Events from the executor.

    def released(self, indices: Iterable[int]) -> None:
        """These trials were handed to the worker pool, in this order."""
        with self._lock:
            indices = list(indices)
            self._waiting.extend(indices)
            self._still_waiting.update(indices)
            self._take(self.clock())

    def went_on(self, index: int) -> None:
        """A halving's trial finished a rung and goes on (or waits to): not running for now."""
        with self._lock:
            self._started.pop(index, None)
            self._take(self.clock())

    def settled(self, *outcomes: Outcome) -> None:
        """These trials ended: finished (trained or reused), failed, or never run."""
        with self._lock:
            now = self.clock()
            for outcome in outcomes:
                index = outcome.trial.index
                began = self._started.pop(index, None)
                if began is None:  # the model was behind the pool
                    self._still_waiting.discard(index)
                if not outcome.ok:
                    self.failed += 1
                    continue
                self.done += 1
                if not outcome.reused and began is not None:
                    self._trained += 1
                    self._trained_seconds += now - began
                value = None if outcome.stopped else self.ranking.value(outcome.metrics)
                if value is not None and (self.ranking.loss(outcome.metrics), index) < self._lead:
                    self.best = (value, index, outcome.trial.name)
                    self._lead = (self.ranking.loss(outcome.metrics), index)
            self._take(now)

    def _take(self, now: float) -> None:
        while self._waiting and len(self._started) < self.workers:
            index = self._waiting.popleft()
            if index in self._still_waiting:
                self._still_waiting.discard(index)
                self._started[index] = now

    # What is shown.

    def counts(self) -> Counts:
        with self._lock:
            done, failed = self.done, self.failed
        # A dead worker's marker may outlive it for a moment: never more running than remain.
        running = min(self._running(), max(0, self.total - done - failed))
        return Counts(self.total, done, failed, running)

    def _running(self) -> int:
        if self.markers is None:
            return 0
        try:
            with os.scandir(self.markers) as entries:
                return sum(1 for _ in entries)
        except OSError:  # removed when the sweep ends
            return 0

    def elapsed(self) -> float:
        return self.clock() - self.started_at

    def mean_duration(self) -> float | None:
        with self._lock:
            return self._trained_seconds / self._trained if self._trained else None

    def left(self, counts: Counts) -> float | None:
        """Seconds left: the remaining trials at the mean duration, spread over the workers.
        None until a trained trial has finished (reused ones say nothing about speed)."""
        mean = self.mean_duration()
        remaining = counts.total - counts.done - counts.failed
        if mean is None or remaining <= 0:
            return None
        return mean * remaining / min(self.workers, remaining)

    def line(self, counts: Counts | None = None) -> str:
        counts = counts or self.counts()
        best = self.best
        shown = (best[0], best[2]) if best is not None else None
        return describe(counts, self.elapsed(), self.left(counts), shown, self.ranking.key)

    # The display.

    def start(self) -> None:
        """Show progress until `stop`: live in a terminal, plain log lines otherwise."""
        if self._display is None:
            self._display = _Live(self) if _is_terminal(sys.stdout) else _Quiet(self)

    def stop(self, leave: bool = True) -> None:
        """End the display, leaving the final counts on screen or in the log (`leave`; not
        when the input was refused: no trial ran, and the refusal is the one line to read)."""
        display, self._display = self._display, None
        if display is not None:
            display.stop(leave)


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):  # a replaced or closed stream
        return False


class _Quiet:
    """Plain `progress: …` lines through logging, beside the executor's per-trial lines: when the
    counts changed (at most every QUIET_EVERY s, or a 30th of the time elapsed), at least every
    QUIET_HEARTBEAT s (or that 30th), and at the end. From a thread of its own, since the event
    loop sleeps while trials run."""

    def __init__(self, progress: Progress, every: float = QUIET_EVERY) -> None:
        self.progress, self.every = progress, every
        self.shown: Counts | None = None
        self.shown_at = progress.clock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="sweeper-progress", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while not self.stopped.wait(self._every()):
            counts = self.progress.counts()
            quiet_for = self.progress.clock() - self.shown_at
            if counts != self.shown or quiet_for >= max(QUIET_HEARTBEAT, self._every()):
                self._emit(counts)

    def _every(self) -> float:
        return max(self.every, self.progress.elapsed() / QUIET_SHARE)

    def _emit(self, counts: Counts) -> None:
        self.shown, self.shown_at = counts, self.progress.clock()
        log.info("progress: %s", self.progress.line(counts))

    def stop(self, leave: bool = True) -> None:
        self.stopped.set()
        self.thread.join()
        if leave:
            self._emit(self.progress.counts())


class _Live:
    """A rich live display: a bar and the progress line, redrawn LIVE_REFRESH times a second.

    Writes to stdout and stderr go above it while it shows. Logging handlers hold the stream
    they were configured with (Hydra's writes to the real stdout), so they are pointed at
    rich's proxies for that time: the per-trial lines keep their format and do not tear the
    display. Output of the worker processes goes to the terminal directly, as before."""

    def __init__(self, progress: Progress) -> None:
        from rich.live import Live

        self.progress = progress
        streams = sys.stdout, sys.stderr
        self.live = Live(get_renderable=self._render, refresh_per_second=LIVE_REFRESH)
        self.live.start()  # replaces sys.stdout and sys.stderr with proxies
        self.moved = _point_handlers(list(zip(streams, (sys.stdout, sys.stderr), strict=True)))

    def _render(self) -> RenderableType:
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        counts = self.progress.counts()
        grid = Table.grid(padding=(0, 1))
        grid.add_column(no_wrap=True)
        grid.add_column()
        ended = counts.done + counts.failed
        bar = ProgressBar(total=max(1, counts.total), completed=ended, width=24)
        grid.add_row(bar, self.progress.line(counts))
        return grid

    def stop(self, leave: bool = True) -> None:
        for handler, stream in self.moved:
            handler.setStream(stream)
        self.live.transient = not leave  # rich erases a transient display when it stops
        self.live.stop()  # draws the final counts once more and leaves them


def _point_handlers(
    streams: list[tuple[TextIO, TextIO]],
) -> list[tuple[logging.StreamHandler[Any], Any]]:
    """Point every logging handler writing to a stream (old, new) at the new one; returns the
    handlers moved, each with its former stream."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    moved = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):  # placeholders have none
            if not isinstance(handler, logging.StreamHandler):
                continue
            for old, new in streams:
                if handler.stream is old and new is not old:
                    moved.append((handler, handler.setStream(new)))
                    break
    return moved
