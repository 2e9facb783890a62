"""The paired test that says which configurations the folds cannot tell apart, against the
formula of scikit-learn's model-comparison example, worked out with SciPy's Student t; and the
one-standard-error rule that picks the simplest configuration near the best."""

from __future__ import annotations

import json
from urllib.parse import unquote

import numpy as np
import pytest
import scipy.stats
from rich.console import Console

from support.results import lassos
from sweeper.core.evidence import held_out_per_fit, worse_p_value
from sweeper.display.table import print_results

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


def test_the_simplest_within_one_standard_error_is_chosen_when_asked() -> None:
    best = [9.0, 11.0, 10.0, 10.5, 9.5]  # mean 10, standard error 0.354
    folds = {
        0.1: best,
        1.0: [x + 0.3 for x in best],  # within one standard error, and simpler
        10.0: [x + 0.5 for x in best],  # simpler still, but beyond it
        0.01: [x + 0.1 for x in best],  # within, but more complex
    }
    se = np.std(best, ddof=1) / np.sqrt(5)
    assert 0.3 < se < 0.5
    metrics = {a: {"cv_mse": float(np.mean(f)), "mse": 1.0} for a, f in folds.items()}
    best_of = lassos(metrics, folds).best
    assert best_of is not None and best_of.trial.name == "lasso alpha=0.1"
    chosen = lassos(metrics, folds, choose="simplest")
    assert chosen.best is not None and chosen.best.trial.name == "lasso alpha=1.0"
    console = Console(width=200, record=True)
    print_results(chosen, console)
    said = console.export_text()
    assert "Best: lasso alpha=0.1 (cv_mse 10; test mse 1)" in said
    assert "Chosen: lasso alpha=1.0 (cv_mse 10.3" in said and "eval.choose=simplest" in said


def test_the_compare_link_names_the_top_runs_of_a_large_sweep() -> None:
    """MLflow's compare page struggles past a hundred runs and a link of every run of a large
    sweep outgrows what a browser opens: the best COMPARED are named, and the line says so."""
    from sweeper.display.table import COMPARED, compare_line

    ranked = [f"{n:032x}" for n in range(20_000)]  # MLflow's run ids: 32 hex digits
    text = compare_line("http://127.0.0.1:5000", ranked, "7")
    link, said = text.removeprefix("Compare the trials: ").split(" ", 1)
    assert len(link) <= 8 * 1024
    assert runs_named(link) == ranked[:COMPARED] and COMPARED == 100
    assert said == (
        "(the top 100 of 20,000; every trial is in results/results.csv and under the sweep's run)"
    )
    few = compare_line("http://127.0.0.1:5000", ranked[:3], "7")
    assert few.count(" ") == 3 and runs_named(few) == ranked[:3]


def runs_named(link: str) -> list[str]:
    named: list[str] = json.loads(unquote(link.split("runs=")[1].split("&")[0]))
    return named
