"""The local worker pool: forked from a warm fork server that is started as early as possible.

The fork server imports scikit-learn, pandas, MLflow and matplotlib once, while the sweeping
process is still composing configs on the other core; every worker forked from it starts with
them loaded. (Left to the workers, the imports met nothing to overlap with: measured, W1 took a
third longer and its end waited ~2 s for matplotlib and MLflow's scikit-learn flavour.)
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from multiprocessing import forkserver
from typing import Any, Generic, TypeVar

from sweeper.executors.local import lifeline

T = TypeVar("T")
W = TypeVar("W")

WARM_MODULES = [
    "sweeper.executors.local.forkserver_lifeline",  # first: the server ends with the sweep
    "sweeper.executors.local.worker",
    "sweeper.trial.fitting",
    "steps.preprocess",
    "hydra.utils",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.metrics",
    "matplotlib.pyplot",  # the sweep's end: plots
    "mlflow.sklearn",  # and the best model
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
    "sweeper.executors.local.forkserver_frozen",  # last: what the workers share stays shared
]


# Command lines that only print something: no workers.
_NO_TRIALS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--version"}


def warm_up_unless_elsewhere(args: list[str]) -> None:
    """Start the fork server now, before Hydra starts, unless the command line runs no trials
    or names another backend: its imports then overlap the sweep's composition. Only a head
    start: which executor runs the sweep is decided once, by sweeper.executors.executor_for,
    and a local sweep starts the server itself if this did not. Calling it again is free."""
    if _NO_TRIALS.isdisjoint(args) and not any(
        a.startswith("backend=") and a != "backend=local" for a in args
    ):
        warm_up()


def warm_up() -> None:
    """Start the fork server (and its imports) now; a pool made later forks from it. Calling it
    again is free."""
    multiprocessing.set_forkserver_preload(WARM_MODULES)
    if threading.current_thread() is not threading.main_thread():  # signals are the main's
        forkserver.ensure_running()
        return
    # Ctrl-C reaches the whole process group, and the sweeping process alone decides what stops.
    # The server inherits "ignore" through its exec, so it holds from its first instruction:
    # multiprocessing ignores Ctrl-C there only after the preloaded imports, and one pressed
    # during them printed the server's traceback.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, previous)


def new_pool(workers: int) -> ProcessPoolExecutor:
    warm_up()  # started here when nothing did it sooner: the same server either way
    context = multiprocessing.get_context("forkserver")
    # Each worker's BLAS/OpenMP threads get its share of the cores: no oversubscription.
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads, os.getpid())
    )


class InProcess(Executor):
    """Runs each task at once, in this process: the pool of a sweep with nothing to train
    (`cached`), which then needs no worker and none of the fork server's imports."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except Exception as err:  # as a worker's task would: the scheduler reads it
            future.set_exception(err)
        return future


def in_process(workers: int) -> Executor:
    return InProcess()


class Pending(Generic[W]):
    """The futures in flight, each with the work it is for, in the order they finish.

    Futures report themselves done through a callback into a queue. `concurrent.futures.wait`
    would take every pending future's lock in a Python loop: a Ctrl-C landing inside that loop
    leaves a lock held, and at exit the pool's manager thread hangs on it (seen: a sweep that
    printed "interrupted" and never ended)."""

    def __init__(self) -> None:
        self.work: dict[Future[Any], W] = {}
        self._done: queue.SimpleQueue[Future[Any]] = queue.SimpleQueue()

    def add(self, future: Future[Any], work: W) -> None:
        self.work[future] = work
        future.add_done_callback(self._done.put)  # at once if it is done already

    def take(self, future: Future[Any]) -> W:
        """Take a future out before it is done: it is then never reported."""
        return self.work.pop(future)

    def finished(self) -> tuple[Future[Any], W]:
        """Wait for the next future still pending to finish; it and its work, taken out."""
        while True:
            future = self._done.get()
            if future in self.work:  # not taken out meanwhile (a broken pool's)
                return future, self.work.pop(future)

    def __len__(self) -> int:
        return len(self.work)

    def __iter__(self) -> Iterator[Future[Any]]:
        return iter(list(self.work))


def stop(pool: Executor) -> None:
    """Stop a pool now, running tasks included (a worker finishes a tracking write first)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # None once shut down
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def _init_worker(threads: int, owner: int) -> None:
    from sweeper.trial.fitting import limit_threads

    # Ctrl-C reaches the whole process group; the sweeping process alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lifeline.watch(owner)  # and a worker ends when it is gone, however it ended
    limit_threads(threads)


class WorkerDied(RuntimeError):
    """The process training a trial died: killed by a signal (a crash, the OOM killer)."""


def death(pool: Executor) -> str:
    """How the single worker of an isolation pool ended, as far as the OS tells."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    code = processes[0].exitcode if processes else None
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    # A fork-server child's status reaches us through the fork server, which reports 255 when
    # it could not learn it (the child was killed too abruptly): say so rather than guess.
    if code is None or code == 255:
        return "killed or crashed; the OS did not report how"
    return f"exit code {code}"
