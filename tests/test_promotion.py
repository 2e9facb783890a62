"""Promotion by evidence, night after night, against a real tracking server: the registry's
`@champion` moves only when tonight's best is better than it on tonight's test rows beyond the
noise (a paired bootstrap), and `@challenger` and `@previous_champion` say what else there is."""

from __future__ import annotations

import itertools
import secrets
import warnings
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from steps.preprocess import preprocess
from support.servers import data_file, preprocess_recipe
from sweeper.conclusion.best_model import best_pipeline, log_best_model, register_if_better
from sweeper.conclusion.promotion import Scored, compare
from sweeper.core.metrics import ProblemType, Ranking
from sweeper.core.records import PreprocessGroup, Trial
from sweeper.core.settings import TrustSettings
from sweeper.tracking.tracker import Tracker
from sweeper.trial.fitting import read_raw_test, score_labels
from sweeper.trial.lifecycle import SweepRef, run_trial

NIGHTS = 20
MSE = Ranking("mse", 0, ProblemType.regression)
DATA = {"name": "csv", "target": "Sales", "drop": [], "test_size": 0.3}
# Night 0 registers a lasso regularised into the mean; every night after, one of three ridges
# that differ by noise only: the first of them is clearly better, none after is.
WEAK = {"_target_": "sklearn.linear_model.Lasso", "alpha": 5.0}
RIDGES = [{"_target_": "sklearn.linear_model.Ridge", "alpha": a} for a in (0.5, 2.0, 8.0)]


def night_model(night: int) -> dict[str, object]:
    return WEAK if night == 0 else RIDGES[night % len(RIDGES)]


def test_twenty_nights_of_the_same_data_move_the_champion_at_most_once(
    mlflow_server: str, tmp_path: Path
) -> None:
    name = f"replay-{secrets.token_hex(3)}"
    tracker = Tracker(mlflow_server, name)
    client = MlflowClient(mlflow_server)
    data = {**DATA, "path": str(data_file("carseats.csv"))}
    champions, lines = [], []
    naive_champion, naive_flips = None, 0  # "better by any amount on one test set"
    for night in range(NIGHTS):
        split = preprocess(data, preprocess_recipe(), night, str(tmp_path / "store"))
        group = PreprocessGroup("g", data, preprocess_recipe(), night)
        model = night_model(night)
        trial = Trial(night, f"night {night}", "ridge", model, group.id, (), {}, seed=night)
        parent = tracker.start_sweep(f"night-{night}", {})
        best = run_trial(tracker, SweepRef(f"night-{night}", parent), trial, split)
        logged = log_best_model(tracker, best, split.url)
        lines.append(
            register_if_better(
                tracker, name, logged, best, split.url, f"night-{night}", MSE, TrustSettings()
            )
        )
        champions.append(client.get_model_version_by_alias(name, "champion").version)
        assert client.get_model_version_by_alias(name, "challenger").version == str(night + 1)

        tonight = best_pipeline(model, split.url)
        X, y = read_raw_test(split.url)
        if naive_champion is not None:
            held = np.mean((naive_champion.predict(X) - y) ** 2)
            if np.mean((tonight.predict(X) - y) ** 2) < held:
                naive_champion, naive_flips = tonight, naive_flips + 1
        else:
            naive_champion = tonight

    changes = sum(a != b for a, b in itertools.pairwise(champions))
    assert changes <= 1, lines
    # The one change is the clear one: night 1's ridge over night 0's lasso.
    assert champions[:2] == ["1", "2"] and set(champions[1:]) == {"2"}, lines
    assert lines[1].startswith(f"Registry: {name} version 2 is the champion, replacing version 1")
    assert all(
        line.startswith(f"Registry: kept {name} version 2 as champion") for line in lines[2:]
    )
    aliases = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert aliases == {"champion": "2", "challenger": str(NIGHTS), "previous_champion": "1"}
    # Without the evidence rule ("better on tonight's rows by any amount"), the same nights
    # would have moved it more than once: this replay tells the two rules apart.
    assert naive_flips >= 2, naive_flips


@pytest.mark.unit
def test_the_bootstrap_says_what_the_rows_say() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(0, 1, 300)
    close = Scored(y + rng.normal(0, 0.50, 300))
    closer = Scored(y + rng.normal(0, 0.49, 300))
    clearly = Scored(y + rng.normal(0, 0.30, 300))
    noise = compare(y, close, closer, MSE)
    assert noise.p_value > 0.05 and not noise.promotes(0.05, 0.0)
    low, high = noise.interval
    assert low < 0 < high and low < noise.improvement < high
    better = compare(y, close, clearly, MSE)
    assert better.promotes(0.05, 0.0) and better.interval[0] > 0
    assert better.improvement == pytest.approx(
        np.mean((close.predicted - y) ** 2) - np.mean((clearly.predicted - y) ** 2)
    )
    assert not better.promotes(0.05, margin=better.improvement)  # not by more than the margin
    worse = compare(y, clearly, close, MSE)
    assert worse.improvement < 0 and worse.p_value > 0.95
    # A maximised metric: the improvement is the rise, not the fall.
    accuracy = Ranking("accuracy", 0, ProblemType.classification)
    labels = (y > 0).astype(int)
    right = compare(labels, Scored(np.zeros(300, int)), Scored(labels), accuracy)
    assert right.improvement == pytest.approx(np.mean(labels == 1)) and right.p_value < 0.01


@pytest.mark.unit
def test_a_resample_a_metric_is_undefined_on_counts_against_the_challenger() -> None:
    """ROC AUC of a class-less resample is not a number: not a reason to promote, nor a crash,
    nor a warning at every resample."""
    rng = np.random.default_rng(0)
    y = np.array(["a"] * 150 + ["b"] * 148 + ["c"] * 2)  # "c" is missing from most resamples
    proba = rng.dirichlet([1, 1, 1], size=300)
    same = Scored(np.array(["a", "b", "c"])[proba.argmax(1)], proba, np.array(["a", "b", "c"]))
    roc_auc = Ranking("roc_auc", 0, ProblemType.classification)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = compare(y, same, same, roc_auc, resamples=200)
    assert found.improvement == 0 and found.p_value == 1.0 and not found.promotes(0.05, 0.0)


@pytest.mark.unit
@pytest.mark.parametrize("metric", ["log_loss", "roc_auc", "balanced_accuracy", "f1_macro"])
def test_each_classification_metric_is_scikit_learns_on_the_rows(metric: str) -> None:
    rng = np.random.default_rng(2)
    classes = np.array(["no", "yes"])
    y = rng.choice(classes, 200)
    proba = rng.dirichlet([2, 2], size=200)
    scored = Scored(classes[proba.argmax(1)], proba, classes)
    found = compare(y, scored, scored, Ranking(metric, 0, ProblemType.classification), 50)
    assert found.champion == pytest.approx(
        score_labels(y, scored.predicted, proba, classes)[metric]
    )
