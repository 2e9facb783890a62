"""The fitted model of the best trial a process has trained, kept so that the sweep's winner is
logged as its trial fitted it, never fitted again at the end.

One per process (a local worker, an Argo train pod), replaced when one of its trials beats it:
memory holds one model, not one per trial. Whoever holds it writes it to the sweep's storage,
`<root>/sweeps/<sweep_id>/models/<run_id>.skops` (a local worker after each improvement, a train
pod at the end of its chunk), replacing the file it wrote before; the sweep's conclusion loads the
winner's from there and removes the folder. skops, with the same trust rule as a stored split's
transformer: a model of other types (xgboost, a user's class) is not kept, and is fitted again.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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

    from sweeper.core.fitting import TRUSTED_MODULES

    data = skops.io.dumps(_kept.estimator)
    if not all(t.startswith(TRUSTED_MODULES) for t in skops.io.get_untrusted_types(data=data)):
        return None
    url = model_url(root, _kept.sweep_id, _kept.run_id)
    storage.write_bytes_atomic(url, data)
    if _written is not None and _written != url:
        _remove(_written)
    _kept.written_to = _written = url
    return url


def model_url(root: str, sweep_id: str, run_id: str) -> str:
    return storage.sweep_url(root, sweep_id, f"{MODELS}/{run_id}{_SUFFIX}")


def load(root: str, sweep_id: str, run_id: str) -> Any | None:
    """The trial's fitted model as some process of the sweep kept it; None when none did."""
    url = model_url(root, sweep_id, run_id)
    if _kept is not None and _kept.run_id == run_id and _kept.sweep_id == sweep_id:
        return _kept.estimator  # this very process trained it
    if not storage.exists(url):
        return None
    import skops.io

    from sweeper.core.fitting import TRUSTED_MODULES

    data = storage.read_bytes(url)
    types = skops.io.get_untrusted_types(data=data)
    if not all(t.startswith(TRUSTED_MODULES) for t in types):
        return None
    return skops.io.loads(data, trusted=types)


def discard(root: str, sweep_id: str) -> None:
    """Remove the sweep's kept models (its winner is logged in MLflow by now)."""
    _remove(storage.sweep_url(root, sweep_id, MODELS), recursive=True)


def _remove(url: str, recursive: bool = False) -> None:
    fs, path = fsspec.core.url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=recursive)
