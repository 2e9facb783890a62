"""The pictures agree with the table: they draw the score trials are ranked by and mark the
winner the table names, for a regression and a classification alike."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from support.results import lassos
from sweeper.conclusion import artifacts
from sweeper.core.outcomes import RungScore

pytestmark = pytest.mark.unit


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Figure]:
    """The figures write_plots saves, by file name, instead of their PNGs."""
    figures: dict[str, Figure] = {}

    def keep(figure: Figure, path: Path) -> Path:
        figures[path.name] = figure
        return path

    monkeypatch.setattr(artifacts, "_save", keep)
    return figures


def star(figure: Figure) -> tuple[float, float]:
    """Where the winner's star is."""
    [axes] = figure.axes
    sized = [c for c in axes.collections if hasattr(c, "get_sizes")]
    [marked] = [c for c in sized if c.get_sizes().tolist() == [220.0]]
    [[x, y]] = marked.get_offsets().tolist()
    return x, y


def test_the_winner_marked_is_the_tables_not_the_lowest_test_score(
    drawn: dict[str, Figure], tmp_path: Path
) -> None:
    # alpha=1 wins on CV; alpha=3 has the lowest test MSE, which chose nothing.
    result = lassos(
        {
            0.3: {"cv_mse": 12.0, "mse": 11.0},
            1.0: {"cv_mse": 10.0, "mse": 12.0},
            3.0: {"cv_mse": 11.0, "mse": 9.0},
        }
    )
    assert result.best is not None and result.best.trial.name == "lasso alpha=1.0"
    paths = artifacts.write_plots(result, tmp_path)
    assert [p.name for p in paths] == ["cv_mse_by_trial.png", "cv_mse_vs_lasso.png"]
    by_trial = drawn["cv_mse_by_trial.png"]
    [axes] = by_trial.axes
    assert axes.get_xlabel() == "CV MSE (lower is better)"
    x, _ = star(by_trial)
    assert x == 10.0
    [line] = [line for line in axes.lines if line.get_linestyle() == "--"]
    assert line.get_xdata()[0] == 10.0
    assert star(drawn["cv_mse_vs_lasso.png"]) == (1.0, 10.0)


def test_a_classification_gets_its_metric_plots_the_highest_marked(
    drawn: dict[str, Figure], tmp_path: Path
) -> None:
    result = lassos(
        {
            0.3: {"cv_accuracy": 0.80, "accuracy": 0.90},
            1.0: {"cv_accuracy": 0.85, "accuracy": 0.82},
        },
        task="classification",
    )
    artifacts.write_plots(result, tmp_path)
    by_trial = drawn["cv_accuracy_by_trial.png"]
    assert by_trial.axes[0].get_xlabel() == "CV accuracy (higher is better)"
    assert star(by_trial)[0] == 0.85


def test_many_trials_get_a_column_per_model_the_winner_starred(
    drawn: dict[str, Figure], tmp_path: Path
) -> None:
    """More than LABELLED_TRIALS: a column of dots per model; a perfect score (0) is drawn too."""
    scores = {float(a): {"cv_mse": float(a), "mse": 1.0} for a in range(45)}
    result = lassos(scores)
    artifacts.write_plots(result, tmp_path)
    by_model = drawn["cv_mse_by_trial.png"]
    [axes] = by_model.axes
    assert axes.get_ylabel() == "CV MSE (lower is better)"
    assert star(by_model)[1] == 0.0  # the winner, alpha=0, with its score of 0


def test_a_halving_draws_each_configuration_against_its_resource(
    drawn: dict[str, Figure], tmp_path: Path
) -> None:
    """Stopped configurations are left out of the by-trial plot (their scores are on less) and
    drawn against the resource: a line per configuration, a cross where it stopped, the winner
    starred at its last rung."""
    result = lassos(
        {
            0.3: {"cv_mse": 14.0},  # stopped at rung 0
            1.0: {"cv_mse": 10.0, "mse": 12.0},  # the winner, in full
            3.0: {"cv_mse": 13.0},  # stopped at rung 1
        }
    )
    rungs = {
        0: (RungScore(100, 14.0, "a0"),),
        1: (RungScore(100, 12.0, "b0"), RungScore(300, 11.0, "b1"), RungScore(900, 10.0, "r1")),
        2: (RungScore(100, 13.5, "c0"), RungScore(300, 13.0, "r2")),
    }
    stopped = {0: 0, 2: 1}  # trial index → the rung it stopped at
    result.outcomes = [
        dataclasses.replace(
            o,
            trial=dataclasses.replace(
                o.trial,
                rung=stopped.get(o.trial.index, 2),
                partial=o.trial.index in stopped,
                rows=100 if o.trial.index in stopped else None,
            ),
            stopped=o.trial.index in stopped,
            rungs=rungs[o.trial.index],
        )
        for o in result.outcomes
    ]
    assert result.best is not None and result.best.trial.name == "lasso alpha=1.0"
    paths = artifacts.write_plots(result, tmp_path)
    assert [p.name for p in paths][:1] == ["cv_mse_by_trial.png"]
    assert "cv_mse_by_resource.png" in [p.name for p in paths]
    [by_trial_axes] = drawn["cv_mse_by_trial.png"].axes
    assert [t.get_text() for t in by_trial_axes.get_yticklabels()] == ["lasso alpha=1.0"]
    figure = drawn["cv_mse_by_resource.png"]
    [axes] = figure.axes
    curves = sorted((list(line.get_xdata()), list(line.get_ydata())) for line in axes.lines)
    assert curves == sorted(
        ([r.amount for r in scores], [r.score for r in scores]) for scores in rungs.values()
    )
    crosses = [c for c in axes.collections if c.get_sizes().tolist() != [220.0]]
    assert sorted(tuple(c.get_offsets().tolist()[0]) for c in crosses) == [(100, 14.0), (300, 13.0)]
    assert star(figure) == (900, 10.0)
    assert axes.get_xscale() == "log"
