"""Where each preprocess group's stored split is, recorded under the sweep for its other steps
(Argo's train and summary pods read it; a local sweep keeps it in memory)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict

from sweeper.core import storage
from sweeper.core.records import Plan, StoredSplit


def record_split(plan: Plan, group_id: str, split: StoredSplit) -> str:
    """Where a group's split is, for the sweep's other steps (Argo's train and summary pods)."""
    text = json.dumps(asdict(split))
    return storage.write_record(
        plan.settings.storage.root, plan.sweep_id, storage.split_record(group_id), text
    )


def recorded_split(plan: Plan, group_id: str) -> StoredSplit:
    """The split `record_split` recorded for a group; FileNotFoundError when none was."""
    text = storage.read_record(plan.settings.storage.root, plan.sweep_id,
                               storage.split_record(group_id))  # fmt: skip
    return StoredSplit(**json.loads(text))


def recorded_splits(plan: Plan) -> dict[str, StoredSplit]:
    """Every group's recorded split (a group whose preprocess step failed has none)."""
    splits = {}
    for group in plan.groups:
        with contextlib.suppress(FileNotFoundError):
            splits[group.id] = recorded_split(plan, group.id)
    return splits
