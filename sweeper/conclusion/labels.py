"""A classification's winner on the test rows, for people to look at: its confusion matrix (a
PNG) and scikit-learn's per-class report (precision, recall, F1, support) as a CSV."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


def write_label_report(
    model: Pipeline, X_test: pd.DataFrame, y_test: pd.Series, trial: str, tables: Path, plots: Path
) -> list[Path]:
    """results/classification_report.csv and plots/confusion_matrix.png of `model` (the best
    trial's pipeline) on the raw test rows."""
    import matplotlib

    matplotlib.use("Agg")  # files only: pods and CI have no display
    import matplotlib.pyplot as plt
    import pandas as pd
    from sklearn.metrics import ConfusionMatrixDisplay, classification_report

    from sweeper.conclusion.artifacts import write_csv

    predicted = model.predict(X_test)
    report = classification_report(y_test, predicted, output_dict=True, zero_division=0)
    table = tables / "classification_report.csv"
    write_csv(pd.DataFrame(report).transpose().rename_axis("class"), table, index=True)
    display = ConfusionMatrixDisplay.from_predictions(y_test, predicted, cmap="Blues")
    display.ax_.set_title(f"{trial}: test rows")
    picture = plots / "confusion_matrix.png"
    display.figure_.tight_layout()
    display.figure_.savefig(picture, dpi=100)
    plt.close(display.figure_)
    return [table, picture]
