"""A trial is claimed in MLflow before it is trained, so that overlapping sweeps, two pods on one
chunk (an Argo retry of a pod still running) and resumed sweeps train and log it once.

A claim is the trial's child run itself, created RUNNING with its trial key and its holder: the
host, the process and its start time, and a lease the holder renews while it fits. MLflow has no
conditional create, so a claimant creates its run first and then reads every run of that key:

- one FINISHED already: the trial is done; the new run is deleted and that one is the outcome;
- any other live claim: it deletes its run and waits for that claim to end, then looks again
  (or first does other work: a local sweep defers such a trial to the end of its queue, a pod to
  the end of its chunk);
- no other live claim: it holds the trial. Claims whose holder is gone (same host, process
  ended) or whose lease ran out (another host) do not count and are taken over: deleted when its
  own sweep's (a retry), else marked KILLED.

Each reads after its own create is stored, so of two claimants at least one sees the other: never
do both go on, whatever the clocks or the store's delays say (an order by time would not hold: a
create that waits for SQLite's lock is stored after a later one's read). Two that see each other
both step back, and try again apart after a random pause.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sweeper.core.processes import lives, started
from sweeper.core.records import Status, TrialRecord, now_ms
from sweeper.tracking.tracker import PARENT_TAG

if TYPE_CHECKING:
    from mlflow.entities import Run

    from sweeper.tracking.tracker import Tracker

LEASE_SECONDS = 60.0  # a holder on another host is taken for gone this long after its last renewal
_RENEW_EVERY = LEASE_SECONDS / 3
_POLL_SECONDS = 1.0  # how often a waiting claimant looks at the claim it waits for
HOST, PID, PID_STARTED, EXPIRES = "claim.host", "claim.pid", "claim.pid_started", "claim.expires"


@dataclass(frozen=True)
class Held:
    """This process holds the trial: its run, RUNNING."""

    run_id: str
    started_ms: int


@dataclass(frozen=True)
class Done:
    """Another run finished the trial first."""

    run: Run


@dataclass(frozen=True)
class Busy:
    """Another live claim on the trial (returned instead of waiting, when asked)."""

    run: Run


def claim(
    tracker: Tracker,
    parent_run_id: str,
    sweep_id: str,
    record: TrialRecord,
    this_sweep_only: bool,
    wait: bool = True,
) -> Held | Done | Busy:
    """Claim the trial (`record.key`): among this sweep's runs only (`this_sweep_only`: a sweep
    that re-runs every trial), or any sweep's of the experiment. While another holds it: wait,
    or (not `wait`) say so, for the caller to come back to it after other work."""
    assert record.key is not None, "only a trial with a key can be claimed"
    while True:
        started_ms = now_ms()
        run_id = tracker.open_trial(parent_run_id, sweep_id, record, started_ms, _holder())
        runs = tracker.trial_claims(record.key, parent_run_id if this_sweep_only else None)
        finished = [r for r in runs if r.info.status == Status.FINISHED]
        if finished:
            tracker.drop_run(run_id)
            return Done(finished[0])
        others = []
        for run in runs:
            if run.info.run_id == run_id or run.info.status != Status.RUNNING:
                continue
            if _same_holder(run):  # a create retried after its answer was lost: ours too
                tracker.drop_run(run.info.run_id)
            elif not live(run):  # taken over: one run per trial in a sweep, KILLED in another
                if run.data.tags.get(PARENT_TAG) == parent_run_id:
                    tracker.drop_run(run.info.run_id)
                else:
                    tracker.set_terminated(run.info.run_id, Status.KILLED)
            else:
                others.append(run)
        if not others:
            return Held(run_id, started_ms)
        tracker.drop_run(run_id)
        oldest = min(others, key=_order)  # most likely the one that holds it
        if not wait:
            return Busy(oldest)
        wait_for(tracker, oldest.info.run_id)
        time.sleep(random.uniform(0, _POLL_SECONDS))  # two that saw each other: apart


def live(run: Run) -> bool:
    """Whether a RUNNING claim's holder may still finish it. A run without a holder (the RUNNING
    moment of `log_trial`, which writes a run whole) counts as live for one lease."""
    tags = run.data.tags
    if EXPIRES not in tags:
        return bool(run.info.start_time + LEASE_SECONDS * 1000 > now_ms())
    if tags.get(HOST) == socket.gethostname():
        pid = int(tags.get(PID, "0"))
        return lives(pid, tags.get(PID_STARTED, ""))
    return int(tags[EXPIRES]) > now_ms()


def wait_for(tracker: Tracker, run_id: str) -> None:
    """Until the claim ends (its run is no longer RUNNING) or its holder is gone."""
    while True:
        run = tracker.get_run(run_id)
        if run.info.status != Status.RUNNING or run.info.lifecycle_stage != "active":
            return
        if not live(run):
            return
        time.sleep(_POLL_SECONDS)


@contextlib.contextmanager
def renewing(tracker: Tracker, held: Held) -> Iterator[None]:
    """The claim's lease renewed while the block runs (a fit longer than a third of it)."""
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(_RENEW_EVERY):
            with contextlib.suppress(Exception):  # the next renewal tries again
                tracker.set_tag(held.run_id, EXPIRES, str(_expiry()))

    thread = threading.Thread(target=renew, name="claim lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _holder() -> dict[str, str]:
    pid = os.getpid()
    return {
        HOST: socket.gethostname(),
        PID: str(pid),
        PID_STARTED: started(pid),
        EXPIRES: str(_expiry()),
    }


def _same_holder(run: Run) -> bool:
    tags, holder = run.data.tags, _holder()
    return all(tags.get(k) == holder[k] for k in (HOST, PID, PID_STARTED))


def _expiry() -> int:
    return now_ms() + int(LEASE_SECONDS * 1000)


def _order(run: Run) -> tuple[int, str]:
    return run.info.start_time, run.info.run_id
