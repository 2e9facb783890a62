"""Which models fit the data: a regressor for a numeric target, a classifier for labels.

Each model's config says what it is (`estimator_type`, scikit-learn's own word); the data's task
is `data.task`, or (auto) what its target column holds. `model=glob(*)` keeps the models that fit;
a model chosen by name that does not fit is refused once the data is read, naming those that do.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from sweeper.core import storage
from sweeper.core.metrics import ProblemType
from sweeper.core.records import StoredSplit, Trial
from sweeper.core.settings import config_dir

ESTIMATOR_TYPE = {ProblemType.regression: "regressor", ProblemType.classification: "classifier"}


def data_task(data: Mapping[str, Any]) -> ProblemType | None:
    """The task preprocessing will find: `data.task` when given, else the target column's kind
    (from its first 10,000 rows); None when that cannot be told here (preprocessing says why)."""
    asked = data.get("task", "auto")
    if asked != "auto":
        return ProblemType(asked) if asked in tuple(ProblemType) else None
    path = data.get("path")
    if path is None:  # the bundled data set, diabetes: a number to predict
        return ProblemType.regression
    import pandas as pd

    try:
        raw = io.BytesIO(storage.read_bytes(str(path)))
        if str(path).lower().endswith((".parquet", ".pq")):
            target = pd.read_parquet(raw, columns=[data["target"]])[data["target"]]
        else:
            target = pd.read_csv(raw, usecols=[data["target"]], nrows=10_000)[data["target"]]
    except Exception:  # missing, unreadable, no such column: preprocessing names the problem
        return None
    numeric = pd.api.types.is_numeric_dtype(target) and not pd.api.types.is_bool_dtype(target)
    return ProblemType.regression if numeric else ProblemType.classification


def fits(estimator_type: str | None, task: ProblemType | None) -> bool:
    """A model without an `estimator_type` (a config of one's own) is taken to fit."""
    return task is None or not estimator_type or estimator_type == ESTIMATOR_TYPE[task]


def models_for(task: ProblemType) -> list[str]:
    """The model configs of conf/model/ that fit a task."""
    folder = Path(config_dir(), "model")
    found = []
    for path in sorted(folder.glob("*.yaml")):
        config = OmegaConf.load(path)
        kind = config.get("estimator_type") if isinstance(config, DictConfig) else None
        if fits(kind, task):
            found.append(path.stem)
    return found


def misfits(trials: Sequence[Trial], split: StoredSplit) -> str | None:
    """One line refusing the trials' models that do not fit the split's task, if any."""
    task = ProblemType(split.task)
    wrong = sorted({t.model_name for t in trials if not fits(t.estimator_type, task)})
    if not wrong:
        return None
    return (
        f"model={','.join(wrong)} cannot be fitted to a {task} target; models that fit: "
        f"{', '.join(models_for(task))}"
    )
