"""Where each preprocess group's stored split is, recorded under the sweep for its other steps
(Argo's train and summary pods read it; a local sweep keeps it in memory)."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import asdict

from sweeper.core import storage
from sweeper.core.metrics import ProblemType
from sweeper.core.records import SPLIT_REPORT, Plan, StoredSplit
from sweeper.errors import SweeperError

log = logging.getLogger(__name__)


def record_split(plan: Plan, group_id: str, split: StoredSplit) -> str:
    """Where a group's split is, for the sweep's other steps (Argo's train and summary pods)."""
    text = json.dumps(asdict(split))
    return storage.write_record(
        plan.settings.storage.root, plan.sweep_id, storage.split_record(group_id), text
    )


def recorded_split(plan: Plan, group_id: str) -> StoredSplit:
    """The split `record_split` recorded for a group; FileNotFoundError when none was."""
    text = storage.read_record(
        plan.settings.storage.root, plan.sweep_id, storage.split_record(group_id)
    )
    record = json.loads(text)
    return StoredSplit(**{**record, "warnings": tuple(record.get("warnings") or ())})


def announce_split(group_id: str, split: StoredSplit, cv: int) -> str | None:
    """Say what preprocessing did to a group's data and what it warns of; a reason the group's
    trials cannot run on it, if there is one."""
    done = "reused" if split.reused else "stored"
    log.info("Preprocess %s: %s %s: %s", group_id, done, split.url, split.describe())
    for warning in split.warnings:
        log.warning("Preprocess %s: %s", group_id, warning)
    rows = split.report.get("rows_train", 0)
    return folds_refused(cv, rows, split.task, split.smallest_class)


def folds_refused(cv: int, rows: int, task: str, smallest_class: int) -> str | None:
    """Why `cv` folds cannot be cut from these training rows, if they cannot (0 rows: not known
    yet). The one rule: the sweep says it before a trial runs, and cutting the folds again."""
    if rows and cv > rows:
        return f"eval.cv={cv} needs at least {cv} training rows; the split has {rows}"
    if task == ProblemType.classification and cv > smallest_class:
        return (
            f"eval.cv={cv} needs {cv} training rows of each class; the smallest class has "
            f"{smallest_class} (use eval.cv={max(2, smallest_class)} or fewer, or more data)"
        )
    return None


def run_params(plan: Plan, splits: Mapping[str, StoredSplit]) -> dict[str, str]:
    """The sweep run's params once its input is known: the plan's, what preprocessing did, the
    data's task and the metric trials are ranked by."""
    tasks = sorted({split.task for split in splits.values()})
    if len(tasks) > 1:
        raise SweeperError(
            f"the sweep's groups have different tasks ({', '.join(tasks)}); "
            "sweep one target at a time"
        )
    task = ProblemType(tasks[0] if tasks else ProblemType.regression)
    ranked_by = plan.settings.ranking(task).key
    return {
        **plan.sweep_params,
        **report_params(splits),
        "data.task": task.value,
        "ranked_by": ranked_by,
    }


def report_params(splits: Mapping[str, StoredSplit]) -> dict[str, str]:
    """The sweep run's params of what preprocessing did (`data.rows_dropped_missing_target`…):
    for one group as they are, for several one per group (`….<group>`)."""
    reports = {group: split.report for group, split in splits.items() if split.report}
    params = {}
    for group, report in reports.items():
        suffix = "" if len(reports) == 1 else f".{group}"
        params.update({f"data.{key}{suffix}": str(report[key]) for key in SPLIT_REPORT})
    return params


def recorded_splits(plan: Plan) -> dict[str, StoredSplit]:
    """Every group's recorded split (a group whose preprocess step failed has none)."""
    splits = {}
    for group in plan.groups:
        with contextlib.suppress(FileNotFoundError):
            splits[group.id] = recorded_split(plan, group.id)
    return splits
