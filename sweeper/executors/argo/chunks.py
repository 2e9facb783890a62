"""The trials an Argo sweep has left to train, cut into the chunks its train pods run.

Argo sees only chunk numbers. Each chunk is a plan of its own under storage.root
(`sweeps/<id>/chunks/<n>.json`: its trials, its group, the settings), and the plan step's output
lists, per preprocess group, runs of consecutive chunk numbers that share a pod size, which the
workflow fans out with `withSequence`. So what Argo keeps in the workflow's status is the same
size for ten trials or 100,000.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sweeper.core import cost, storage
from sweeper.core.records import Plan, Trial

AUTO = "auto"
MAX_PODS = 1000  # train pods a workflow runs at most with trials_per_pod=auto
POD_SECONDS = 300.0  # with trials_per_pod=auto, cheap trials share a pod until it has this much


@dataclass(frozen=True)
class Chunk:
    number: int
    group: str
    trials: tuple[Trial, ...]
    resources: tuple[tuple[str, str], ...]  # ("cpu", "1"), ("memory", …), ("memory_limit", …)


def cut(
    plan: Plan, trials: Sequence[Trial], trials_per_pod: int | str, rows: Mapping[str, int]
) -> list[Chunk]:
    """Chunks of `trials` (in plan order), one model's trials of one group per chunk, numbered
    from 0. `trials_per_pod`: a number, or AUTO (sized by each trial's estimated cost, so a pod
    has a few minutes of work and the workflow at most MAX_PODS pods). `rows`: training rows
    per group, for the estimate."""
    classes: dict[tuple[str, str], list[Trial]] = {}
    for trial in trials:
        classes.setdefault((trial.group, trial.model_name), []).append(trial)
    sizes = {key: _size(members, trials_per_pod, rows.get(key[0], 0))
             for key, members in classes.items()}  # fmt: skip
    if trials_per_pod == AUTO:
        sizes = _within_max_pods(classes, sizes)
    chunks: list[Chunk] = []
    for group in plan.groups:  # chunks of one group are consecutive numbers
        for (of_group, _), members in classes.items():
            if of_group != group.id:
                continue
            resources = _pod_resources(members[0])
            size = sizes[(of_group, members[0].model_name)]
            for start in range(0, len(members), size):
                chunk = tuple(members[start : start + size])
                chunks.append(Chunk(len(chunks), group.id, chunk, resources))
    return chunks


def fan_out(plan: Plan, chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    """The plan step's output: per group, how many trials it trains and how many finished
    before, and its runs of chunk numbers with the pod size they share (`first`, `count`, cpu,
    memory, memory_limit, and `trials`: each chunk's number of trials, which the watch counts)."""
    items = []
    for group in plan.groups:
        pods: list[dict[str, Any]] = []
        mine = [c for c in chunks if c.group == group.id]
        for chunk, previous in zip(mine, [None, *mine], strict=False):
            if previous is None or previous.resources != chunk.resources:
                pods.append({"first": chunk.number, "count": 0, "trials": [],
                             **dict(chunk.resources)})  # fmt: skip
            pods[-1]["count"] += 1
            pods[-1]["trials"].append(len(chunk.trials))
        to_train = sum(len(c.trials) for c in mine)
        finished = len(plan.trials_of(group.id)) - to_train
        items.append({"group": group.id, "to_train": to_train, "finished": finished, "pods": pods})
    return items


def write(plan: Plan, chunks: Sequence[Chunk]) -> None:
    """Each chunk as a plan of its own, next to the sweep's plan.json."""
    root = plan.settings.storage.root
    files = {}
    for chunk in chunks:
        groups = tuple(g for g in plan.groups if g.id == chunk.group)
        part = dataclasses.replace(plan, groups=groups, trials=chunk.trials)
        url = storage.sweep_url(root, plan.sweep_id, storage.chunk_record(chunk.number))
        files[url] = part.to_json().encode()
    storage.write_many(files)


def _size(trials: Sequence[Trial], trials_per_pod: int | str, training_rows: int) -> int:
    if trials_per_pod != AUTO:
        return max(1, int(trials_per_pod))
    seconds = max(cost.trial_seconds(t.model, training_rows, t.cv) for t in trials[:100])
    return max(1, int(POD_SECONDS // max(seconds, 1e-3)))


def _within_max_pods(
    classes: Mapping[tuple[str, str], Sequence[Trial]], sizes: dict[tuple[str, str], int]
) -> dict[tuple[str, str], int]:
    """Sizes scaled up together until the workflow runs at most MAX_PODS pods (or one pod per
    group and model, when there are more of those)."""

    def pods(scaled: Mapping[tuple[str, str], int]) -> int:
        return sum(math.ceil(len(classes[k]) / scaled[k]) for k in classes)

    factor = 1
    while pods(scaled := {k: s * factor for k, s in sizes.items()}) > MAX_PODS:
        if all(scaled[k] >= len(classes[k]) for k in classes):
            break
        factor = max(factor + 1, math.ceil(factor * pods(scaled) / MAX_PODS))
    return scaled


def _pod_resources(trial: Trial) -> tuple[tuple[str, str], ...]:
    requests = trial.resources.get("requests") or {}
    limits = trial.resources.get("limits") or {}
    return (
        ("cpu", str(requests.get("cpu", "1"))),
        ("memory", str(requests.get("memory", "1Gi"))),
        ("memory_limit", str(limits.get("memory", requests.get("memory", "1Gi")))),
    )
