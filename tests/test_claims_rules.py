"""The claim rules (tracking.claims), one by one, on a real SQLite store in this process: which
claim is live, and what a claimant does with the runs it finds for its trial's key. Several
processes claiming at once: tests/test_claims.py."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import pytest

from sweeper.core.processes import started
from sweeper.core.records import Status, TrialRecord, now_ms
from sweeper.tracking import claims
from sweeper.tracking.tracker import Tracker

pytestmark = pytest.mark.unit

OTHER_HOST = "another-host.example"
NO_SUCH_PID = 4_194_000  # above any pid this machine has given (pid_max is 4,194,304 at most)


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    folder = tmp_path_factory.mktemp("claims")
    return Tracker(f"sqlite:///{folder / 'mlflow.db'}", "claims")


@pytest.fixture
def sweep(tracker: Tracker, request: pytest.FixtureRequest) -> str:
    """A sweep run of its own for each test, so that trial keys never meet across tests."""
    return tracker.start_sweep(request.node.name, {})


def record(key: str) -> TrialRecord:
    return TrialRecord(name=f"lasso {key}", params={"model": "lasso"}, key=key, split_key="s")


def holder(host: str, pid: int, pid_started: str, expires_in_s: float) -> dict[str, str]:
    return {
        claims.HOST: host,
        claims.PID: str(pid),
        claims.PID_STARTED: pid_started,
        claims.EXPIRES: str(now_ms() + int(expires_in_s * 1000)),
    }


def claim_run(
    tracker: Tracker, parent: str, key: str, tags: Mapping[str, str] | None, age_s: float = 0
) -> str:
    started_ms = now_ms() - int(age_s * 1000)
    return tracker.open_trial(parent, "someone", record(key), started_ms, tags)


def status(tracker: Tracker, run_id: str) -> tuple[str, str]:
    run = tracker.get_run(run_id)
    return run.info.status, run.info.lifecycle_stage


def test_which_claims_are_live(tracker: Tracker, sweep: str) -> None:
    me = os.getpid()
    here = socket.gethostname()
    cases = {
        "this process": (holder(here, me, started(me), 60), True),
        "a process of this host that is gone": (holder(here, NO_SUCH_PID, "1", 60), False),
        # Same pid, another start time: the pid was given to a later process.
        "a pid reused since": (holder(here, me, "0", 60), False),
        "another host, lease running": (holder(OTHER_HOST, 1, "1", 30), True),
        "another host, lease run out": (holder(OTHER_HOST, 1, "1", -1), False),
    }
    for name, (tags, expected) in cases.items():
        run = tracker.get_run(claim_run(tracker, sweep, name, tags))
        assert claims.live(run) is expected, name
    # A run written whole (log_trial) has no holder: live for one lease from its start.
    fresh = tracker.get_run(claim_run(tracker, sweep, "fresh", None))
    old = tracker.get_run(claim_run(tracker, sweep, "old", None, age_s=claims.LEASE_SECONDS + 5))
    assert claims.live(fresh) and not claims.live(old)


def test_a_free_trial_is_held_and_a_finished_one_is_done(tracker: Tracker, sweep: str) -> None:
    held = claims.claim(tracker, sweep, "sweep", record("free"), this_sweep_only=False)
    assert isinstance(held, claims.Held)
    assert status(tracker, held.run_id) == (Status.RUNNING, "active")

    tracker.close_trial(held.run_id, record("free"))  # finished
    again = claims.claim(tracker, sweep, "sweep", record("free"), this_sweep_only=False)
    assert isinstance(again, claims.Done) and again.run.info.run_id == held.run_id
    # The claimant's own run was given up: one run for the trial.
    assert [r.info.run_id for r in tracker.trial_claims("free")] == [held.run_id]


def test_a_live_claim_elsewhere_is_busy_and_the_claimant_steps_back(
    tracker: Tracker, sweep: str
) -> None:
    other = claim_run(tracker, sweep, "busy", holder(OTHER_HOST, 1, "1", 30))
    busy = claims.claim(tracker, sweep, "sweep", record("busy"), False, wait=False)
    assert isinstance(busy, claims.Busy) and busy.run.info.run_id == other
    assert [r.info.run_id for r in tracker.trial_claims("busy")] == [other]


def test_a_claim_whose_holder_is_gone_is_taken_over(tracker: Tracker, sweep: str) -> None:
    # Another sweep's: kept, as KILLED; this sweep's own (a retry): deleted.
    another_sweep = tracker.start_sweep("another", {})
    theirs = claim_run(tracker, another_sweep, "gone", holder(OTHER_HOST, 1, "1", -1))
    ours = claim_run(tracker, sweep, "gone", holder(socket.gethostname(), NO_SUCH_PID, "1", 60))
    held = claims.claim(tracker, sweep, "sweep", record("gone"), this_sweep_only=False)
    assert isinstance(held, claims.Held)
    assert status(tracker, theirs) == (Status.KILLED, "active")
    assert status(tracker, ours)[1] == "deleted"


def test_a_create_retried_after_a_lost_answer_is_ours_and_dropped(
    tracker: Tracker, sweep: str
) -> None:
    me = os.getpid()
    lost = claim_run(tracker, sweep, "lost", holder(socket.gethostname(), me, started(me), 60))
    held = claims.claim(tracker, sweep, "sweep", record("lost"), this_sweep_only=False)
    assert isinstance(held, claims.Held) and held.run_id != lost
    assert status(tracker, lost)[1] == "deleted"


def test_a_rerun_counts_its_own_sweeps_runs_only(tracker: Tracker, sweep: str) -> None:
    earlier = tracker.start_sweep("earlier", {})
    done = claims.claim(tracker, earlier, "earlier", record("again"), this_sweep_only=False)
    assert isinstance(done, claims.Held)
    tracker.close_trial(done.run_id, record("again"))
    rerun = claims.claim(tracker, sweep, "sweep", record("again"), this_sweep_only=True)
    assert isinstance(rerun, claims.Held) and rerun.run_id != done.run_id
    assert status(tracker, done.run_id) == (Status.FINISHED, "active")


def test_lookups_follow_mlflows_pages_past_one_search(
    tracker: Tracker, sweep: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow answers one search with a page of runs and a token for the next: the finished
    trials of a split (as read through a tracking server, not by key through the store's
    index), a sweep's trial runs and a key's claims are every page's, not the first page's
    (50,000 runs; 3 here)."""
    import sweeper.tracking.tracker as tracker_module

    monkeypatch.setattr(tracker_module, "_MANY", 3)
    keys = [f"paged-{n}" for n in range(7)]
    for key in keys:
        paged = TrialRecord(name=key, params={"model": "lasso"}, key=key, split_key="paged")
        tracker.log_trial(sweep, "someone", paged)
    monkeypatch.setattr(tracker, "by_key", None)
    assert sorted(tracker.finished_trials("paged", [*keys, "not-logged"])) == sorted(keys)
    assert len(tracker.trial_runs(sweep)) == 7
    for key in keys[:2]:
        claim_run(tracker, sweep, key, None)
    assert len(tracker.trial_claims(keys[0])) == 2
