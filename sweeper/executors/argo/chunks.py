"""The trials an Argo sweep has left to train, cut into the chunks its train pods run.

Argo sees only chunk numbers. Each chunk is a plan of its own under storage.root
(`sweeps/<id>/chunks/<n>.json`: its trials, its group, the settings), and the plan step's output
lists, per preprocess group, runs of consecutive chunk numbers that share a pod size, which the
workflow fans out with `withSequence`. So what Argo keeps in the workflow's status is the same
size for ten trials or 100,000.
"""

from __future__ import annotations

import argparse
import dataclasses
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
    from 0. `trials_per_pod`: a number, or AUTO: packed by each trial's estimated cost until a
    chunk has a few minutes of work, more when the workflow would otherwise run more than
    MAX_PODS pods. `rows`: training rows per group, for the estimate."""
    classes: dict[tuple[str, str], list[Trial]] = {}
    for trial in trials:
        classes.setdefault((trial.group, trial.model_name), []).append(trial)
    ordered = [
        (key, members)
        for group in plan.groups  # a group's chunks: consecutive numbers
        for key, members in classes.items()
        if key[0] == group.id
    ]
    if trials_per_pod == AUTO:
        cv = plan.settings.eval.cv
        seconds = {
            key: [cost.trial_seconds(t.model, rows.get(key[0], 0), cv) for t in members]
            for key, members in ordered
        }
        # Every chunk but a class's last holds at least `budget` seconds, so this many are
        # at most MAX_PODS (when there are fewer classes than that).
        total = sum(sum(each) for each in seconds.values())
        budget = max(POD_SECONDS, total / max(MAX_PODS - len(classes), 1))
        parts = [(members, _packed(seconds[key], budget)) for key, members in ordered]
    else:
        size = max(1, int(trials_per_pod))
        parts = [(members, list(range(0, len(members), size))[1:]) for _, members in ordered]
    chunks: list[Chunk] = []
    for members, cuts in parts:
        resources = _pod_resources(members[0])
        for start, end in zip([0, *cuts], [*cuts, len(members)], strict=True):
            chunks.append(
                Chunk(len(chunks), members[0].group, tuple(members[start:end]), resources)
            )
    return chunks


def _packed(seconds: Sequence[float], budget: float) -> list[int]:
    """Where chunks of these trials start (after the first): a chunk closes once it holds
    `budget` seconds of estimated work."""
    cuts, held = [], 0.0
    for position, spent in enumerate(seconds):
        if held >= budget:
            cuts.append(position)
            held = 0.0
        held += spent
    return cuts


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
                pods.append(
                    {"first": chunk.number, "count": 0, "trials": [], **dict(chunk.resources)}
                )
            pods[-1]["count"] += 1
            pods[-1]["trials"].append(len(chunk.trials))
        to_train = sum(len(c.trials) for c in mine)
        finished = len(plan.trials_of(group.id)) - to_train
        items.append({"group": group.id, "to_train": to_train, "finished": finished, "pods": pods})
    return items


def write(plan: Plan, chunks: Sequence[Chunk], prefix: str = "") -> None:
    """Each chunk as a plan of its own, next to the sweep's plan.json; `prefix` before its
    number names a halving round's (see rounds)."""
    root = plan.settings.storage.root
    files = {}
    for chunk in chunks:
        groups = tuple(g for g in plan.groups if g.id == chunk.group)
        part = dataclasses.replace(plan, groups=groups, trials=chunk.trials)
        url = storage.sweep_url(
            root, plan.sweep_id, storage.chunk_record(f"{prefix}{chunk.number}")
        )
        files[url] = part.to_json().encode()
    storage.write_many(files)


def _pod_resources(trial: Trial) -> tuple[tuple[str, str], ...]:
    requests = trial.resources.get("requests") or {}
    limits = trial.resources.get("limits") or {}
    return (
        ("cpu", str(requests.get("cpu", "1"))),
        ("memory", str(requests.get("memory", "1Gi"))),
        ("memory_limit", str(limits.get("memory", requests.get("memory", "1Gi")))),
    )


def add_trials_per_pod(parser: argparse.ArgumentParser) -> None:
    """The pod steps' --trials-per-pod: a number of trials, or auto."""
    parser.add_argument(
        "--trials-per-pod",
        type=_trials_per_pod,
        default=AUTO,
        help="trials a pod trains, or auto (by estimated cost)",
    )


def _trials_per_pod(text: str) -> int | str:
    if text == AUTO:
        return text
    if text.isdigit() and int(text) >= 1:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a number of trials (at least 1) or auto")
