"""The paired test that says which configurations the folds cannot tell apart, against the
formula of scikit-learn's model-comparison example, worked out with SciPy's Student t."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from sweeper.core.evidence import held_out_per_fit, worse_p_value

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cv", [3, 5, 10])
def test_the_p_value_is_the_corrected_resampled_t_tests(cv: int) -> None:
    rng = np.random.default_rng(cv)
    for shift in (-0.5, 0.0, 0.2, 1.5):
        differences = rng.normal(shift, 1.0, size=cv * 3)
        n = len(differences)
        corrected_std = np.sqrt(np.var(differences, ddof=1) * (1 / n + 1 / (cv - 1)))
        t = differences.mean() / corrected_std
        expected = scipy.stats.t.sf(t, n - 1)
        assert worse_p_value(list(differences), held_out_per_fit(cv)) == pytest.approx(expected)


def test_the_correction_makes_it_more_cautious_than_the_plain_paired_test() -> None:
    differences = [0.3, 0.25, 0.4, 0.2, 0.35]  # always worse, by a little
    plain = scipy.stats.ttest_1samp(differences, 0.0, alternative="greater").pvalue
    corrected = worse_p_value(differences, held_out_per_fit(5))
    assert plain < 0.001 and corrected > 3 * plain


def test_identical_scores_tie_and_a_constant_loss_is_worse() -> None:
    assert worse_p_value([0.0] * 5, held_out_per_fit(5)) == 1.0
    assert worse_p_value([0.2] * 5, held_out_per_fit(5)) == 0.0
    assert worse_p_value([-0.2] * 5, held_out_per_fit(5)) == 1.0
