"""Which configurations are really different: a paired test on the CV folds every trial of a
split shares, as scikit-learn's model-comparison example does it.

Folds of one training set overlap, so their scores are not independent, and the plain paired t-test
calls differences real far too often; Nadeau and Bengio's correction widens the variance by the
ratio of held-out to fitting rows (C. Nadeau, Y. Bengio, "Inference for the Generalization
Error", Machine Learning 52, 2003). Importable without pandas or scikit-learn; SciPy's Student t
is loaded when a test is made.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

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
