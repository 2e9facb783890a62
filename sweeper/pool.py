"""The local worker pool: forked from a warm fork server that is started as early as possible.

The fork server imports scikit-learn, pandas and MLflow once, while the sweeping process is still
composing configs on the other core; every worker forked from it starts with them loaded.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import forkserver

WARM_MODULES = [
    "sweeper.work",
    "steps.preprocess",
    "steps.train",
    "hydra.utils",
    "sklearn.ensemble",
    "sklearn.linear_model",
    "sklearn.neighbors",
    "sklearn.svm",
    "sklearn.metrics",
    "mlflow.tracking",
    "mlflow.store.tracking.sqlalchemy_store",
]


def warm_up() -> None:
    """Start the fork server (and its imports) now; a pool made later forks from it."""
    multiprocessing.set_forkserver_preload(WARM_MODULES)
    forkserver.ensure_running()


def new_pool(workers: int) -> ProcessPoolExecutor:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WARM_MODULES)
    # Each worker's BLAS/OpenMP threads get its share of the cores: no oversubscription.
    threads = max(1, (os.cpu_count() or 1) // workers)
    return ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
    )


def stop(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now, running tasks included (a worker finishes a tracking write first)."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def _init_worker(threads: int) -> None:
    from steps.train import limit_threads

    # Ctrl-C reaches the whole process group; the sweeping process alone decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    limit_threads(threads)
