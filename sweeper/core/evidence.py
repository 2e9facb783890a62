"""Which configurations are really different: a paired test on the CV folds every trial of a
split shares, as scikit-learn's model-comparison example does it.

Folds of one training set overlap, so their scores are not independent, and the plain paired t-test
calls differences real far too often; Nadeau and Bengio's correction widens the variance by the
ratio of held-out to fitting rows (C. Nadeau, Y. Bengio, "Inference for the Generalization
Error", Machine Learning 52, 2003). Importable without pandas or scikit-learn; SciPy's Student t
is loaded when a test is made.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

P_WORSE = "p_worse_than_best"  # the column of results.csv and configs.csv that holds it


def worse_p_value(differences: Sequence[float], held_out_per_fit: float) -> float:
    """The one-sided p-value of "the candidate's loss is higher than the best's", from its
    per-fold loss minus the best's on the same folds (over seeds too: one difference per fold of
    each split); `held_out_per_fit`: held-out rows per fitting row of a fold, 1/(k-1) for k-fold.
    A constant difference is certain evidence either way."""
    from scipy.special import stdtr

    n = len(differences)
    mean = statistics.fmean(differences)
    variance = statistics.variance(differences) if n > 1 else 0.0
    corrected = variance * (1 / n + held_out_per_fit)
    if corrected == 0:
        return 1.0 if mean <= 0 else 0.0
    t = mean / math.sqrt(corrected)
    return float(stdtr(n - 1, -t))  # P(T >= t) with n-1 degrees of freedom


def held_out_per_fit(cv: int) -> float:
    """k-fold CV holds out 1/k of the training rows and fits on the other (k-1)/k."""
    return 1 / (cv - 1)


class FoldStop(Protocol):
    """What a trial's CV asks after each fold: whether to stop here (EarlyStop, or an
    optimiser's pruner: sweeper.launching.optuna_async.Pruning). Sent to the worker process
    that fits the trial, so it pickles."""

    @property
    def metric(self) -> str:
        """The ranking metric, whose per-fold scores it reads."""
        ...

    def worse(self, scores: Sequence[float]) -> bool:
        """`scores`: the trial's per-fold scores of the ranking metric so far."""
        ...


@dataclass(frozen=True)
class EarlyStop:
    """eval.early_stop for one trial: stop its CV after a fold (from the second on) once its
    scores so far are worse than the reference's on the same folds (the best trial finished
    on them yet), by the corrected paired test above at `level` (eval.tie_level): a trial the
    table would mark worse than the best is not fitted on the rest. The reference is read from
    `path` at each fold, where the sweep keeps the best so far (a JSON list of per-fold scores
    of `metric`), so a trial queued before the best finished is stopped against it too."""

    path: str
    metric: str
    maximised: bool
    level: float

    def reference(self) -> list[float]:
        try:
            found = json.loads(Path(self.path).read_text())
        except (OSError, ValueError):  # none finished yet
            return []
        return [float(v) for v in found] if isinstance(found, list) else []

    def worse(self, scores: Sequence[float]) -> bool:
        if len(scores) < 2:  # one fold says nothing of its spread: nothing to read yet
            return False
        reference = self.reference()
        if len(scores) > len(reference):
            return False
        sign = -1.0 if self.maximised else 1.0  # differences of losses: positive is worse
        differences = [sign * (mine - best) for mine, best in zip(scores, reference, strict=False)]
        return worse_p_value(differences, held_out_per_fit(len(reference))) < self.level

    def keep(self, reference: Sequence[float]) -> None:
        """The sweep's side: a new best's per-fold scores, replacing the file whole."""
        partial = Path(f"{self.path}.partial")
        partial.write_text(json.dumps(list(reference)))
        os.replace(partial, self.path)
