"""The fitted model of the best trial a process has trained, kept so that the sweep's winner is
logged as its trial fitted it, never fitted again at the end.

One per process (a local worker, an Argo train pod), replaced when one of its trials beats it:
memory holds one model, not one per trial. Whoever holds it hands it over to whoever concludes:
a local worker, after each improvement, pickles it into its sweep's private folder (`hand_over`:
a folder only this sweep's own processes use, so as trusted as they are, and pickle costs
microseconds where skops costs a second of imports); a train pod, at the end of its chunk,
writes it to the sweep's storage, `<root>/sweeps/<sweep_id>/models/<run_id>.skops` (`write`),
with the same trust rule as a stored split's transformer: a model of other types (xgboost, a
user's class) is not kept there, and is fitted again. The conclusion loads the winner's
(`load`) and removes the storage folder (`discard`).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec

from sweeper.core import storage

if TYPE_CHECKING:
    from sklearn.base import BaseEstimator

MODELS = "models"
_SUFFIX = ".skops"


@dataclass
class _Kept:
    sweep_id: str
    run_id: str
    loss: float
    estimator: BaseEstimator
    written_to: str | None = None  # the file holding it, once written


_kept: _Kept | None = None  # this process's best trial so far
_written: str | None = None  # the file this process wrote last (replaced by the next)


def offer(sweep_id: str, run_id: str, loss: float, estimator: BaseEstimator) -> bool:
    """Keep the trial's fitted model if it beats the one kept for this sweep (lower loss);
    whether it was kept."""
    global _kept
    if _kept is not None and _kept.sweep_id == sweep_id and _kept.loss <= loss:
        return False
    _kept = _Kept(sweep_id, run_id, loss, estimator)
    return True


def write(root: str) -> str | None:
    """Write the kept model to the sweep's storage unless it is there already, removing the one
    this process wrote before; its URL (None: nothing kept, or not of trusted types)."""
    global _written
    if _kept is None or _kept.written_to is not None:
        return _kept.written_to if _kept else None
    import skops.io

    from sweeper.trial.fitting import skops_types

    data = skops.io.dumps(_kept.estimator)
    if skops_types(data)[1]:  # a type not trusted: the summary refits instead
        return None
    url = model_url(root, _kept.sweep_id, _kept.run_id)
    storage.write_bytes_atomic(url, data)
    if _written is not None and _written != url:
        _remove(_written)
    _kept.written_to = _written = url
    return url


def hand_over(folder: Path) -> None:
    """Pickle the kept model into `folder` (a sweep's private folder) unless it is there,
    removing the one this process left before."""
    global _written
    if _kept is None or _kept.written_to is not None:
        return
    folder.mkdir(exist_ok=True)
    path = folder / f"{_kept.run_id}.pickle"
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "wb") as file:
        pickle.dump(_kept.estimator, file, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    if _written is not None and _written != str(path):
        Path(_written).unlink(missing_ok=True)
    _kept.written_to = _written = str(path)


def model_url(root: str, sweep_id: str, run_id: str) -> str:
    return storage.sweep_url(root, sweep_id, f"{MODELS}/{run_id}{_SUFFIX}")


def load(root: str, sweep_id: str, run_id: str, handed_over: Path | None = None) -> Any | None:
    """The trial's fitted model as some process of the sweep kept it (here, handed over into
    the folder `handed_over`, or in storage); None when none did."""
    url = model_url(root, sweep_id, run_id)
    if _kept is not None and _kept.run_id == run_id and _kept.sweep_id == sweep_id:
        return _kept.estimator  # this very process trained it
    pickled = handed_over / f"{run_id}.pickle" if handed_over else None
    if pickled is not None and pickled.is_file():
        return pickle.loads(pickled.read_bytes())  # written by this sweep's own workers
    if not storage.exists(url):
        return None
    import skops.io

    from sweeper.trial.fitting import skops_types

    data = storage.read_bytes(url)
    types, foreign = skops_types(data)
    return None if foreign else skops.io.loads(data, trusted=types)


def discard(root: str, sweep_id: str) -> None:
    """Remove the sweep's kept models (its winner is logged in MLflow by now)."""
    _remove(storage.sweep_url(root, sweep_id, MODELS), recursive=True)


def _remove(url: str, recursive: bool = False) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=recursive)
